"""`seqrec-report DIR [DIR ...]`: one table, one CSV and one plot comparing every run found.

A run directory is any folder holding `metrics.json` or `.hydra/config.yaml` (a run that has not
finished, or failed, is listed as incomplete); a sweep directory is searched below for them.
The table shows what people compare first: the encoder, the loss, the key hyperparameters plus
every setting that differs between the runs found (what a sweep varied), the best epoch, the
validation and test metrics, and the time taken. `report.csv` holds the same rows with every
metric. `curves.png` draws validation NDCG@10 and the train loss per epoch, one line per run.

Reads only small text files (no torch), so it starts fast.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import OmegaConf
from rich import box
from rich.console import Console
from rich.table import Table

from seqrec_cli.config import flat_dict
from seqrec_cli.errors import UserError
from seqrec_cli.training.artifacts import plot_runs, write_text_atomic
from seqrec_cli.training.progress import console_handler

log = logging.getLogger("seqrec_cli")

# Always shown (when present): (config key, column title).
KEY_PARAMS = [
    ("dataset.name", "dataset"),
    ("encoder.name", "encoder"),
    ("loss.name", "loss"),
    ("optimizer.name", "optim"),
    ("optimizer.lr", "lr"),
    ("model.embedding_dim", "dim"),
    ("model.max_len", "max_len"),
    ("encoder.num_layers", "layers"),
    ("encoder.dropout", "dropout"),
    ("trainer.batch_size", "batch"),
]
# Settings that never explain a difference in results.
IGNORED_PARAMS = ("trainer.resume", "trainer.progress", "trainer.num_threads", "dataset.cache_dir",
                  "dataset.use_cache", "logger.")
ALWAYS_SHOWN = ["encoder.name", "loss.name"]
TABLE_METRICS = ["valid/ndcg@10", "test/ndcg@10", "test/hr@10", "test/mrr"]


@dataclass
class RunRecord:
    path: Path
    label: str
    params: dict[str, Any]  # flattened config, e.g. {"optimizer.lr": 0.001}
    metrics: Optional[dict[str, Any]]  # metrics.json, None while unfinished
    history: list[dict[str, str]] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return self.metrics is not None

    def metric(self, key: str) -> Optional[float]:
        """`valid/ndcg@10`, `test/mrr`, `popularity/test/hr@10`, ... from metrics.json."""
        node: Any = self.metrics or {}
        for part in key.split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        return node if isinstance(node, (int, float)) else None


def is_run_dir(path: Path) -> bool:
    return (path / "metrics.json").is_file() or (path / ".hydra" / "config.yaml").is_file()


def find_runs(roots: Sequence[Path]) -> list[Path]:
    """Every run directory at or below `roots`, in natural order (job 10 after job 9)."""
    found: list[Path] = []
    for root in roots:
        if not root.is_dir():
            raise UserError(f"No run or sweep directory at {root}.")
        for folder, subdirs, _files in os.walk(root):
            here = Path(folder)
            if is_run_dir(here):
                found.append(here)
                subdirs.clear()  # checkpoints/, tensorboard/ ... hold no runs
            else:
                subdirs[:] = [d for d in subdirs if not d.startswith(".")]
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return sorted(unique, key=lambda p: _natural_key(str(p)))


def _natural_key(text: str) -> list[Any]:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", text)]


def load_run(path: Path, label: str) -> RunRecord:
    params: dict[str, Any] = {}
    config = path / ".hydra" / "config.yaml"
    if config.is_file():
        try:
            params = flat_dict(OmegaConf.to_container(OmegaConf.load(config), resolve=False))
        except Exception as exc:  # one unreadable run must not hide the others
            log.warning("Cannot read %s (%s); its settings are left blank.", config, exc)
    metrics = None
    if (path / "metrics.json").is_file():
        try:
            metrics = json.loads((path / "metrics.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("Cannot read %s (%s); the run is listed as incomplete.", path / "metrics.json", exc)
    history: list[dict[str, str]] = []
    if (path / "history.csv").is_file():
        with (path / "history.csv").open(newline="", encoding="utf-8") as fh:
            history = list(csv.DictReader(fh))
    return RunRecord(path, label, params, metrics, history)


def labels_for(paths: Sequence[Path], roots: Sequence[Path]) -> list[str]:
    """Short names: the path below the root it was found in, led by the root's own name."""
    resolved = [r.resolve() for r in roots]
    labels = []
    for p in paths:
        root = next((r for r in resolved if p == r or r in p.parents), None)
        labels.append(str(Path(root.name) / p.relative_to(root)) if root is not None else str(p))
    if len(set(labels)) < len(labels):
        return [str(p) for p in paths]
    return labels


def varying_params(runs: Sequence[RunRecord]) -> list[str]:
    """Settings that differ between the runs (besides KEY_PARAMS and noise), in config order."""
    keys: list[str] = []
    for run in runs:
        keys += [k for k in run.params if k not in keys]
    shown = {k for k, _ in KEY_PARAMS}
    return [
        k for k in keys
        if k not in shown and not k.startswith(IGNORED_PARAMS)
        and len({json.dumps(r.params.get(k), sort_keys=True, default=str) for r in runs}) > 1
    ]


def report_rows(runs: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One flat row per run: settings, status, best epoch, every metric, timings."""
    params = [k for k, _ in KEY_PARAMS] + varying_params(runs)
    metric_keys: list[str] = []
    for run in runs:
        for split in ("valid", "test"):
            metric_keys += [f"{split}/{m}" for m in (run.metrics or {}).get(split, {}) if f"{split}/{m}" not in metric_keys]
    rows = []
    for run in runs:
        m = run.metrics or {}
        row: dict[str, Any] = {"run": run.label, "status": "done" if run.complete else "incomplete"}
        row.update({k: run.params.get(k) for k in params})
        for key in ("encoder", "loss"):  # metrics.json names them too (a run without .hydra/)
            row[f"{key}.name"] = row[f"{key}.name"] or m.get(key)
        row["best_epoch"] = m.get("best_epoch")
        row["epochs_run"] = m.get("epochs_run", len(run.history) or None)
        row.update({k: run.metric(k) for k in metric_keys})
        row["popularity/test/ndcg@10"] = run.metric("popularity/test/ndcg@10")
        row.update({k: m.get(k) for k in ("n_params", "device", "train_seconds", "total_seconds")})
        row["path"] = str(run.path)
        rows.append(row)
    return rows


def report_table(runs: Sequence[RunRecord], rows: Sequence[dict[str, Any]]) -> Table:
    """Encoder, loss and the settings that differ get columns; settings all runs share go in the caption."""
    titles = dict(KEY_PARAMS)
    candidates = [k for k, _ in KEY_PARAMS if k not in ALWAYS_SHOWN] + varying_params(runs)
    distinct = {k: {json.dumps(r.get(k), default=str) for r in rows} for k in candidates}
    varying = [k for k in candidates if len(distinct[k]) > 1]
    shared = [f"{titles.get(k, k)}={_cell(rows[0].get(k))}" for k in candidates
              if len(distinct[k]) == 1 and rows[0].get(k) is not None]
    table = Table(
        title=f"{len(rows)} run{'s' if len(rows) != 1 else ''}",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        caption=("all runs: " + ", ".join(shared)) if shared else None,
    )
    table.add_column("run", overflow="fold")
    for key in [*ALWAYS_SHOWN, *varying]:
        table.add_column(titles.get(key, key), justify="right" if key not in ALWAYS_SHOWN else "left")
    table.add_column("best\nepoch", justify="right")
    for key in TABLE_METRICS:
        table.add_column(key.replace("/", "\n"), justify="right")
    table.add_column("sec", justify="right")
    for row in rows:
        label = row["run"] + ("" if row["status"] == "done" else " (incomplete)")
        table.add_row(
            label, *(_cell(row.get(k)) for k in [*ALWAYS_SHOWN, *varying]), _cell(row["best_epoch"]),
            *(_cell(row.get(k), ".4f") for k in TABLE_METRICS), _cell(row["total_seconds"], ".1f"),
        )
    return table


def _cell(value: Any, fmt: str = "") -> str:
    if value is None:
        return "-"
    if fmt and isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, fmt)
    return str(value)


def write_report_csv(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows({k: ("" if v is None else v) for k, v in row.items()} for row in rows)
    write_text_atomic(path, buf.getvalue())


def build_report(roots: Sequence[Path], out_dir: Path, metric: str = "ndcg@10", console: Optional[Console] = None) -> list[dict[str, Any]]:
    """Find the runs under `roots`, print the table, write report.csv and curves.png to `out_dir`."""
    paths = find_runs(roots)
    if not paths:
        raise UserError(
            f"No runs found under {', '.join(map(str, roots))}: a run directory holds metrics.json or .hydra/config.yaml."
        )
    runs = [load_run(p, label) for p, label in zip(paths, labels_for(paths, roots))]
    rows = report_rows(runs)
    (console or Console()).print(report_table(runs, rows))
    write_report_csv(out_dir / "report.csv", rows)
    log.info("Wrote %s", out_dir / "report.csv")
    curves = {_legend(r): r.history for r in runs if r.history}
    if not curves:
        log.info("No run has a history.csv yet: no curves.png.")
    elif plot_runs(out_dir / "curves.png", curves, f"valid/{metric}"):
        log.info("Wrote %s", out_dir / "curves.png")
    else:
        log.info("matplotlib is not installed: skipping curves.png (pip install 'seqrec-cli[plot]').")
    return rows


def _legend(run: RunRecord) -> str:
    encoder = run.params.get("encoder.name") or (run.metrics or {}).get("encoder")
    return f"{run.label} ({encoder})" if encoder else run.label


def parse_args(argv: Optional[Sequence[str]]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="seqrec-report",
        description="Compare training runs: one table, report.csv and curves.png for every run found "
        "in the given run or sweep directories.",
        epilog="Example: seqrec-report outputs/multirun/2026-11-23/10-00-00 outputs/2026-11-23/11-30-00 --out reports/",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("dirs", nargs="+", type=Path, help="run directories or folders holding runs (e.g. a sweep)")
    parser.add_argument("--out", type=Path, default=Path("."), help="where report.csv and curves.png go (default: .)")
    parser.add_argument("--metric", default="ndcg@10", help="validation metric drawn in curves.png (default: ndcg@10)")
    return parser.parse_args(argv)


def main(argv: Optional[Sequence[str]] = None) -> None:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s", handlers=[console_handler()], force=True)
    try:
        build_report(args.dirs, args.out, args.metric)
    except UserError as exc:
        log.error("%s", exc)
        sys.exit(2)


if __name__ == "__main__":
    main()
