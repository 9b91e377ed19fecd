"""Sweep summaries: one table of every job of a multirun, written when the sweep ends.

Each job leaves either `metrics.json` (finished) or `error.json` (failed) in its own directory; the
`SweepSummary` Hydra callback reads them back in the launcher's process, so it works the same for
the basic, joblib and submitit launchers and for the Optuna sweeper. A sweep with a failed job
exits non-zero after the summary is written, so scripts and CI notice.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig
from rich.console import Console
from rich.table import Table

from seqrec_cli.training.artifacts import write_csv
from seqrec_cli.training.progress import stdout_console

log = logging.getLogger(__name__)

SHOWN_METRICS = ("hr@10", "ndcg@10", "mrr")


def job_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job directory (any folder under `sweep_dir` holding `.hydra/`)."""
    rows = []
    for hydra_dir in sorted(sweep_dir.rglob(".hydra"), key=lambda p: _job_sort_key(p.parent, sweep_dir)):
        job_dir = hydra_dir.parent
        overrides_file = hydra_dir / "overrides.yaml"
        overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
        row: dict[str, Any] = {
            "job": str(job_dir.relative_to(sweep_dir)),
            "overrides": " ".join(overrides or []),
        }
        metrics_file, error_file = job_dir / "metrics.json", job_dir / "error.json"
        if metrics_file.is_file():
            metrics = json.loads(metrics_file.read_text())
            row.update(status="ok", monitor=metrics["monitor"], objective=metrics["objective"], best_epoch=metrics["best_epoch"])
            for split in ("valid", "test"):
                row.update({f"{split}/{k}": metrics[split].get(k) for k in SHOWN_METRICS})
            row["seconds"] = metrics.get("total_seconds")
            row["error"] = ""
        else:
            error = json.loads(error_file.read_text())["error"] if error_file.is_file() else "no metrics.json (job did not finish)"
            row.update(status="failed", error=error)
        rows.append(row)
    return rows


def _job_sort_key(job_dir: Path, root: Path) -> tuple:
    parts = job_dir.relative_to(root).parts
    return tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts)


def rank_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Finished jobs by objective (best first, NaN last), failed jobs after them; marks the best."""
    def key(row: dict[str, Any]) -> tuple:
        value = row.get("objective")
        finite = isinstance(value, (int, float)) and value == value
        return (row["status"] != "ok", not finite, -(value if finite else 0.0))

    ranked = sorted(rows, key=key)
    for i, row in enumerate(ranked):
        row["best"] = i == 0 and row["status"] == "ok"
    return ranked


def write_summary(sweep_dir: Path, rows: list[dict[str, Any]]) -> Path:
    path = sweep_dir / "summary.csv"
    write_csv(path, rows, first_columns=("job", "best", "status", "overrides", "monitor", "objective", "best_epoch"))
    return path


def summary_table(rows: list[dict[str, Any]], title: str) -> Table:
    """Ranked jobs; only the overrides that differ between jobs are shown, to keep rows short."""
    monitor = next((r["monitor"] for r in rows if r.get("monitor")), "objective")
    split = [r["overrides"].split() for r in rows]
    common = set.intersection(*(set(o) for o in split)) if split else set()
    table = Table(title=title)
    table.add_column("")
    table.add_column("job")
    table.add_column("overrides")
    table.add_column("status")
    for name in ("best epoch", monitor, "test/ndcg@10", "test/hr@10", "seconds"):
        table.add_column(name, justify="right")
    for row, overrides in zip(rows, split):
        varying = " ".join(o for o in overrides if o not in common)
        if row["status"] == "ok":
            cells = [_fmt(row.get("best_epoch")), _fmt(row.get("objective")), _fmt(row.get("test/ndcg@10")),
                     _fmt(row.get("test/hr@10")), _fmt(row.get("seconds"), 1)]
        else:
            cells = ["-"] * 5
        table.add_row("★" if row.get("best") else "", row["job"], varying, row["status"], *cells)
    return table


def _fmt(value: Any, digits: int = 4) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return str(value)


def summarize(sweep_dir: Path, console: Optional[Console] = None) -> list[dict[str, Any]]:
    """Collect, rank, write summary.csv and print the table; returns the ranked rows."""
    rows = rank_rows(job_rows(sweep_dir))
    if not rows:
        return rows
    path = write_summary(sweep_dir, rows)
    failed = sum(r["status"] != "ok" for r in rows)
    console = console or stdout_console()
    console.print(summary_table(rows, f"Sweep {sweep_dir}: {len(rows)} jobs, {failed} failed"))
    for row in rows:
        if row["status"] != "ok":
            console.print(f"job {row['job']} failed: {row['error']}", markup=False, soft_wrap=True)
    log.info("Sweep summary written to %s", path)
    return rows


class SweepSummary(Callback):
    """Hydra callback (conf/train.yaml: hydra.callbacks.summary) run once when a multirun ends."""

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        rows = summarize(Path(config.hydra.sweep.dir))
        failed = [r for r in rows if r["status"] != "ok"]
        if failed:
            log.error("%d of %d sweep jobs failed (see summary.csv).", len(failed), len(rows))
            raise SystemExit(1)
