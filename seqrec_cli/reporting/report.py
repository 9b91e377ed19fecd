"""`seqrec-report DIR [DIR ...]`: one table, one CSV and one plot comparing every run found.

A run directory is a folder where training started: it holds `metrics.json` (finished),
`history.csv` (an epoch done) or `checkpoints/` (a training that saved its state). A folder with
only `.hydra/`, `train.log` or `error.json` is a run rejected before training (a refused value, a
missing file) and is skipped with a note: it has no results to compare. A sweep directory is
searched below for runs.
The table shows what people compare first: the encoder, the loss, the key hyperparameters plus
every setting that differs between the runs found (what a sweep varied), the tags, the best epoch,
the validation and test metrics, the warm / cold test metrics when a run has them, and the time
taken. On a narrow terminal the run name and the metrics always stay; the other columns are left
out, least telling first, until the table fits, and a note line names them (the layout:
`reporting/layout.py`). `report.csv` holds the same rows with every metric and setting.
`curves.png` draws validation NDCG@10 and the train loss per epoch, one line per run.

Reads only small text files (no torch), so it starts fast.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional, Sequence

from omegaconf import OmegaConf
from rich.console import Console

from seqrec_cli.config.convert import flat_dict
from seqrec_cli.errors import UserError
from seqrec_cli.evaluation import warm_cold
from seqrec_cli.io.artifacts import plot_runs, write_csv
from seqrec_cli.io.console import console_handler
from seqrec_cli.reporting.layout import KEY_PARAMS, report_table

log = logging.getLogger("seqrec_cli")

# Settings that never explain a difference in results.
IGNORED_PARAMS = (
    "trainer.resume",
    "trainer.progress",
    "trainer.num_threads",
    "dataset.cache_dir",
    "dataset.use_cache",
    "logger.",
)


@dataclass
class RunRecord:
    path: Path
    label: str
    params: dict[str, Any]  # flattened config, e.g. {"optimizer.lr": 0.001}
    metrics: Optional[dict[str, Any]]  # metrics.json, None while unfinished
    history: list[dict[str, str]] = field(default_factory=list)
    # The warm / cold figures under their flat names (`test/cold/ndcg@10`; old nested form read too).
    groups: dict[str, Any] = field(default_factory=dict)

    @property
    def complete(self) -> bool:
        return self.metrics is not None

    def metric(self, key: str) -> Optional[float]:
        """`valid/ndcg@10`, `test/mrr`, `popularity/test/hr@10`, `test/cold/hr@10`, ... from metrics.json."""
        if key in self.groups:
            return self.groups[key]
        node: Any = self.metrics or {}
        for part in key.split("/"):
            node = node.get(part) if isinstance(node, dict) else None
        return node if isinstance(node, (int, float)) else None


def is_run_dir(path: Path) -> bool:
    """Training started here: finished (metrics.json), an epoch done (history.csv) or state saved."""
    return (path / "metrics.json").is_file() or (path / "history.csv").is_file() or (path / "checkpoints").is_dir()


def is_rejected_run(path: Path) -> bool:
    """A run directory Hydra (or seqrec-train) made for a run stopped before training started."""
    return not is_run_dir(path) and any((path / name).exists() for name in (".hydra", "error.json", "train.log"))


def find_runs(roots: Sequence[Path]) -> list[Path]:
    """Every run directory at or below `roots`, in natural order (job 10 after job 9); folders of
    runs rejected before training are logged and left out."""
    found: list[Path] = []
    rejected: list[Path] = []
    for root in roots:
        if not root.is_dir():
            raise UserError(f"No run or sweep directory at {root}.")
        for folder, subdirs, _files in os.walk(root):
            here = Path(folder)
            if is_run_dir(here) or is_rejected_run(here):
                (found if is_run_dir(here) else rejected).append(here)
                subdirs.clear()  # checkpoints/, tensorboard/ ... hold no runs
            else:
                subdirs[:] = [d for d in subdirs if not d.startswith(".")]
    if rejected:
        log.info(
            "Skipped %d folder%s where no training started (rejected before the first epoch): %s",
            len(rejected),
            "s" if len(rejected) > 1 else "",
            ", ".join(map(str, rejected)),
        )
    unique = list(dict.fromkeys(p.resolve() for p in found))
    return sorted(unique, key=lambda p: natural_key(str(p)))


def natural_key(text: str) -> list[Any]:
    """Sort key: numbers as numbers, so job 10 comes after job 9."""
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
    return RunRecord(path, label, params, metrics, history, warm_cold.from_metrics(metrics or {}))


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
    shown = {k for k, _ in KEY_PARAMS} | {"tags"}  # tags have their own column
    return [
        k
        for k in keys
        if k not in shown
        and not k.startswith(IGNORED_PARAMS)
        and len({json.dumps(r.params.get(k), sort_keys=True, default=str) for r in runs}) > 1
    ]


def report_rows(runs: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One flat row per run: settings, status, best epoch, every metric, timings."""
    params = [k for k, _ in KEY_PARAMS] + varying_params(runs)
    metric_keys: list[str] = []
    for run in runs:
        for split in ("valid", "test"):
            names = [f"{split}/{m}" for m in (run.metrics or {}).get(split, {})]
            metric_keys += [k for k in names if k not in metric_keys]
    group_keys = list(dict.fromkeys(k for run in runs for k in run.groups))  # the warm / cold names
    rows = []
    for run in runs:
        m = run.metrics or {}
        status = "done" if run.complete else "failed" if (run.path / "error.json").is_file() else "incomplete"
        row: dict[str, Any] = {"run": run.label, "status": status}
        row.update({k: run.params.get(k) for k in params})
        tags = m.get("tags") or run.params.get("tags") or []
        row["tags"] = ",".join(map(str, tags)) or None
        for key in ("encoder", "loss"):  # metrics.json names them too (a run without .hydra/)
            row[f"{key}.name"] = row[f"{key}.name"] or m.get(key)
        row["best_epoch"] = m.get("best_epoch")
        row["epochs_run"] = m.get("epochs_run", len(run.history) or None)
        row.update({k: run.metric(k) for k in metric_keys})
        row["popularity/test/ndcg@10"] = run.metric("popularity/test/ndcg@10")
        row.update({k: run.groups.get(k) for k in group_keys})
        row.update({k: m.get(k) for k in ("n_params", "device", "train_seconds", "total_seconds")})
        row["path"] = str(run.path)
        rows.append(row)
    return rows


def build_report(
    roots: Sequence[Path], out_dir: Path, metric: str = "ndcg@10", console: Optional[Console] = None
) -> list[dict[str, Any]]:
    """Find the runs under `roots`, print the table, write report.csv and curves.png to `out_dir`."""
    paths = find_runs(roots)
    if not paths:
        raise UserError(
            f"No runs found under {', '.join(map(str, roots))}: a run directory holds metrics.json, history.csv "
            "or checkpoints/ (a run rejected before training has none)."
        )
    runs = [load_run(p, label) for p, label in zip(paths, labels_for(paths, roots))]
    rows = report_rows(runs)
    console = console or Console()
    console.print(report_table(rows, varying_params(runs), console.width))
    write_csv(out_dir / "report.csv", rows)
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
