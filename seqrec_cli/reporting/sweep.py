"""Sweep summaries: one table of every job of a multirun, written when the sweep ends.

Each job leaves either `metrics.json` (finished) or `error.json` (failed) in its own directory; the
`SweepSummary` Hydra callback reads them back in the launcher's process, so it works the same for
the basic, joblib and submitit launchers and for the Optuna sweeper. A sweep with a failed job
exits non-zero after the summary is written, so scripts and CI notice.

Re-running a multirun with `hydra.sweep.dir=<that sweep>` continues it: each job gets the same
directory as before, and `reuse_job_dir` (called by seqrec-train before any work) skips a job that
already finished with the same settings and resumes one that was interrupted. A Hydra callback
cannot do this, since `on_job_start` has no way to skip the job.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any, Optional

import yaml
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf
from rich.console import Console
from rich.table import Table

from seqrec_cli.io.artifacts import write_csv, write_json
from seqrec_cli.io.console import stdout_console
from seqrec_cli.reporting.layout import cell
from seqrec_cli.reporting.report import natural_key

log = logging.getLogger(__name__)

SHOWN_METRICS = ("hr@10", "ndcg@10", "mrr")
# Settings that may differ between two attempts at the same job without making it another job.
ATTEMPT_SETTINGS = ("resume", "num_threads", "progress")


def reuse_job_dir(cfg: DictConfig, typed: Any, run_dir: Path) -> Optional[float]:
    """What a re-run sweep job finds in its directory: the objective recorded by a finished run of the
    same settings (the job need not train again), or None, after pointing `typed.trainer.resume` at
    an interrupted one (checkpoints/last.pt, no metrics.json). A directory holding a run of other
    settings (the sweep command changed) is trained afresh."""
    recorded = run_dir / ".hydra" / "config.yaml"
    if not recorded.is_file() or not _same_job(OmegaConf.load(recorded), cfg):
        if (run_dir / "metrics.json").is_file():
            log.warning("Job %s holds a run with other settings: training it again.", run_dir.name)
        return None
    metrics_file = run_dir / "metrics.json"
    if metrics_file.is_file():
        try:
            objective = float(json.loads(metrics_file.read_text(encoding="utf-8"))["objective"])
        except (OSError, ValueError, KeyError, TypeError):
            objective = None  # unreadable: train it again
        if objective is not None:
            log.info(
                "Job %s already finished with these settings (objective %.4f): not trained again.",
                run_dir.name,
                objective,
            )
            return objective
    if (run_dir / "checkpoints" / "last.pt").is_file() and not typed.trainer.resume:
        log.info("Job %s was interrupted: resuming it from %s.", run_dir.name, run_dir / "checkpoints" / "last.pt")
        typed.trainer.resume = str(run_dir)
    (run_dir / "error.json").unlink(missing_ok=True)  # an earlier attempt's failure is not this one's
    return None


def _same_job(recorded: DictConfig, cfg: DictConfig) -> bool:
    """Equal composed configs (interpolations unresolved), less the settings of one attempt."""

    def plain(node: DictConfig) -> dict:
        out = OmegaConf.to_container(node, resolve=False)
        out.pop("hydra", None)
        for key in ATTEMPT_SETTINGS:
            out.get("trainer", {}).pop(key, None)
        return out

    return plain(recorded) == plain(cfg)


def job_rows(sweep_dir: Path) -> list[dict[str, Any]]:
    """One row per job directory: any folder under `sweep_dir` holding `.hydra/`, or `error.json`
    (a job refused before training has no `.hydra/`; `SweepSummary.on_job_end` kept its overrides)."""
    rows = []
    found = {p.parent for name in (".hydra", "error.json") for p in sweep_dir.rglob(name)} - {sweep_dir}
    for job_dir in sorted(found, key=lambda p: natural_key(str(p.relative_to(sweep_dir)))):
        overrides = _job_overrides(job_dir)
        row: dict[str, Any] = {
            "job": str(job_dir.relative_to(sweep_dir)),
            "overrides": " ".join(overrides or []),
        }
        metrics_file, error_file = job_dir / "metrics.json", job_dir / "error.json"
        if metrics_file.is_file():
            metrics = json.loads(metrics_file.read_text())
            row.update(
                status="ok",
                monitor=metrics["monitor"],
                objective=metrics["objective"],
                best_epoch=metrics["best_epoch"],
            )
            for split in ("valid", "test"):
                row.update({f"{split}/{k}": metrics[split].get(k) for k in SHOWN_METRICS})
            row["seconds"] = metrics.get("total_seconds")
            row["error"] = ""
        else:
            error = (
                json.loads(error_file.read_text())["error"]
                if error_file.is_file()
                else "no metrics.json (job did not finish)"
            )
            row.update(status="failed", error=error)
        rows.append(row)
    return rows


def _job_overrides(job_dir: Path) -> list[str]:
    overrides_file = job_dir / ".hydra" / "overrides.yaml"
    if overrides_file.is_file():
        return yaml.safe_load(overrides_file.read_text()) or []
    try:
        return list(json.loads((job_dir / "error.json").read_text()).get("overrides", []))
    except (OSError, ValueError, AttributeError):
        return []


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
            cells = [
                cell(row.get("best_epoch")),
                cell(row.get("objective"), ".4f"),
                cell(row.get("test/ndcg@10"), ".4f"),
                cell(row.get("test/hr@10"), ".4f"),
                cell(row.get("seconds"), ".1f"),
            ]
        else:
            cells = ["-"] * 5
        table.add_row("★" if row.get("best") else "", row["job"], varying, row["status"], *cells)
    return table


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

    def on_job_end(self, config: DictConfig, job_return: Any, **kwargs: Any) -> None:
        """A job refused before training leaves error.json and no .hydra/ (seqrec-train records a run
        only once its checks pass): add the job's overrides to it, so summary.csv can name the job."""
        job_dir = Path(config.hydra.runtime.output_dir)
        error_file = job_dir / "error.json"
        if not error_file.is_file() or (job_dir / ".hydra" / "overrides.yaml").is_file():
            return
        try:
            error = json.loads(error_file.read_text(encoding="utf-8"))
            error.setdefault("overrides", [str(o) for o in config.hydra.overrides.task])
            write_json(error_file, error)
        except (OSError, ValueError, AttributeError) as exc:  # the summary then lacks the overrides only
            log.warning("Could not add the overrides to %s: %s", error_file, exc)

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        rows = summarize(Path(config.hydra.sweep.dir))
        failed = [r for r in rows if r["status"] != "ok"]
        if failed:
            log.error("%d of %d sweep jobs failed (see summary.csv).", len(failed), len(rows))
            raise SystemExit(1)
