"""A bundle: everything needed to recommend from a trained run, without this package.

```
model.onnx | model.pt2   TopKGraph (graph.py): padded item rows in, top-K rows + scores out
items.json               {"ids": [null, id of row 1, ...], "titles": [...] | null}: row -> original id
histories.npz            each user's full history (item rows, gap buckets, user-vector row), by original id
metadata.json            encoder, max_len, K range, graph inputs, source run + test metrics, versions,
                         SHA-256 of every other file
```

A bundle is written into a temporary folder beside `out` and renamed into place, so a reader
never sees a half-written one. Opening it checks every file against metadata.json first; nothing
in it is a pickle (`histories.npz` is read with `allow_pickle=False`, a pt2 archive is refused
when it holds pickled payloads).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from dataclasses import asdict
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any, Iterator, Optional

import numpy as np
import torch

from seqrec_cli.data.metadata import item_titles
from seqrec_cli.errors import UserError
from seqrec_cli.reporting.runs import TrainedRun, load_splits, open_run, side_inputs_for
from seqrec_cli.serving import graph
from seqrec_cli.serving.files import FORMAT_VERSION, HISTORIES_FILE, ITEMS_FILE, METADATA_FILE, MODEL_FILES, sha256
from seqrec_cli.io.artifacts import write_json

log = logging.getLogger(__name__)

QUIET_LOGGERS = ("onnx_ir", "onnxscript", "torch.onnx", "torch.export", "torch._export")
VERSIONED_PACKAGES = ("seqrec-cli", "torch", "numpy", "onnx", "onnxruntime", "onnxscript")


def open_finished_run(path: str | Path) -> tuple[TrainedRun, dict[str, Any]]:
    """The run and its metrics.json; a run still training (or stopped before testing) is refused."""
    run = open_run(path, "cpu")
    if run.model.item_repr is not None:
        raise UserError(
            f"{run.run_dir} was trained with item features, which seqrec-export does not bundle yet: "
            "serve it with seqrec-recommend, or export an id-only run."
        )
    metrics_file = run.run_dir / "metrics.json"
    if not metrics_file.is_file():
        raise UserError(f"{run.run_dir} has not finished training (no metrics.json): export a finished run.")
    try:
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"{metrics_file} is unreadable or corrupt ({exc}).") from None
    return run, metrics


def export_bundle(
    run_path: str | Path,
    out: str | Path,
    fmt: str = "onnx",
    k_max: int = 100,
    histories: bool = True,
    overwrite: bool = False,
) -> Path:
    """Write the bundle of a finished run to `out` (see the module docstring); returns its path."""
    if fmt not in MODEL_FILES:
        raise UserError(f"Unknown bundle format {fmt!r}: expected onnx or pt2.")
    target = Path(out).expanduser()
    if target.exists() and not (overwrite and target.is_dir()):
        raise UserError(f"{target} already exists: choose another out= or pass overwrite=true.")
    run, metrics = open_finished_run(run_path)
    torch.manual_seed(0)  # the tracing inputs are random; the graph does not depend on them
    k = min(k_max, run.model.n_items)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.tmp-"))
    try:
        started = time.perf_counter()
        names = _write_model(run, k, fmt, tmp / MODEL_FILES[fmt])
        _write_items(run, tmp / ITEMS_FILE)
        if histories:
            _write_histories(run, tmp / HISTORIES_FILE)
        meta = _metadata(run, metrics, fmt, k, names)
        meta["files"] = {p.name: sha256(p) for p in sorted(tmp.iterdir())}
        write_json(tmp / METADATA_FILE, meta)
        os.chmod(tmp, 0o755)  # mkdtemp makes an owner-only folder; a bundle is meant to be shared
        _move_into_place(tmp, target)
        log.info("Exported %s (%s, top-%d, %.1f s) to %s", run.run_dir, fmt, k, time.perf_counter() - started, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target


def _move_into_place(tmp: Path, target: Path) -> None:
    """Rename `tmp` to `target`; an existing bundle there is moved aside first, then removed."""
    old = None
    if target.exists():
        old = target.with_name(f".{target.name}.old-{os.getpid()}")
        os.rename(target, old)
    os.rename(tmp, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _write_model(run: TrainedRun, k: int, fmt: str, path: Path) -> list[str]:
    model = run.model.cpu().eval()
    module = graph.TopKGraph(model, k).eval()
    names = graph.input_names(model)
    inputs = graph.example_inputs(model, run.cfg.model.max_len)
    shapes = graph.dynamic_shapes(names, run.cfg.model.max_len)
    with _quiet_exporters(), _dynamic_rnn_loops(), torch.no_grad():
        program = torch.export.export(module, (), kwargs=inputs, dynamic_shapes=shapes, strict=False)
        if fmt == "pt2":
            torch.export.save(program, path)
            return names
        onnx_program = torch.onnx.export(
            program, dynamo=True, input_names=names, output_names=list(graph.OUTPUTS), verbose=False, report=False
        )
        onnx_program.save(str(path))
    return names


@contextlib.contextmanager
def _dynamic_rnn_loops() -> Iterator[None]:
    """GRU / LSTM layers as a while loop over time steps: torch.export otherwise unrolls them, which
    fixes the history length. torch.onnx.export applies the same patches for the same reason."""
    try:
        from torch.export._patches import register_gru_while_loop_decomposition, register_lstm_while_loop_decomposition
    except ImportError:  # older torch: the export fails later with its own message
        yield
        return
    with register_lstm_while_loop_decomposition(), register_gru_while_loop_decomposition():
        yield


@contextlib.contextmanager
def _quiet_exporters() -> Iterator[None]:
    """The exporters log every graph pass at INFO and warn about options this graph does not use
    (and, on every export, that torchvision's operators are skipped when it is not installed)."""
    loggers = [logging.getLogger(name) for name in QUIET_LOGGERS]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)


def _write_items(run: TrainedRun, path: Path) -> None:
    ids = [None] + [_plain(v) for v in run.item_ids.tolist()]
    titles = item_titles(run.cfg.dataset)
    shown = None if titles is None else [None] + [titles.get(v, "") for v in run.item_ids.tolist()]
    path.write_text(json.dumps({"ids": ids, "titles": shown}, ensure_ascii=False) + "\n", encoding="utf-8")


def _plain(value: Any) -> Any:
    return value if isinstance(value, (int, str)) else str(value)


def _write_histories(run: TrainedRun, path: Path) -> None:
    """Every user's full history, in model rows: what `{"user": id}` requests are answered from."""
    splits, _ = load_splits(run)
    data = splits.data
    side = side_inputs_for(run, data)
    arrays = {
        "user_ids": _no_objects(data.user_ids),
        "offsets": data.offsets.astype(np.int64),
        "items": data.items.astype(np.int32),
    }
    if side.gaps is not None:
        arrays["gaps"] = side.gaps.astype(np.int8)
    if side.user_rows is not None:
        arrays["user_rows"] = side.user_rows.astype(np.int64)
    with open(path, "wb") as fh:
        np.savez(fh, **arrays)


def _no_objects(ids: np.ndarray) -> np.ndarray:
    """Ids as int64 or fixed-width text: an object array would need a pickle to read back."""
    ids = np.asarray(ids)
    return ids.astype(str) if ids.dtype == object else ids


def _metadata(run: TrainedRun, metrics: dict[str, Any], fmt: str, k: int, names: list[str]) -> dict[str, Any]:
    return {
        "format_version": FORMAT_VERSION,
        "format": fmt,
        "model_file": MODEL_FILES[fmt],
        "encoder": asdict(run.cfg.encoder),
        "model": asdict(run.cfg.model),
        "max_len": run.cfg.model.max_len,
        "n_items": run.model.n_items,
        "k_range": [1, k],
        "inputs": names,
        "outputs": list(graph.OUTPUTS),
        "uses_time_gaps": run.model.uses_time_gaps,
        "uses_users": run.model.uses_users,
        "source_run": {
            "path": str(run.run_dir.resolve()),
            "dataset": run.cfg.dataset.name,
            "best_epoch": run.epoch,
            "test": metrics.get("test", {}),
        },
        "versions": _versions(),
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def _versions() -> dict[str, Optional[str]]:
    out: dict[str, Optional[str]] = {}
    for name in VERSIONED_PACKAGES:
        try:
            out[name] = importlib_metadata.version(name)
        except importlib_metadata.PackageNotFoundError:
            out[name] = None
    return out
