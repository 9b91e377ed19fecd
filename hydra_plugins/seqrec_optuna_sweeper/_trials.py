"""How trials end up in the study: COMPLETE with a finite objective, else FAIL with the error as a
user attribute; interrupted or orphaned trials told FAIL and queued again (`retry_of`), which
`counted_trials` counts once; and `optimization_results.yaml`, written however the study ends.
"""

from __future__ import annotations

import json
import logging
import math
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional

import optuna
import yaml
from hydra.core.utils import JobReturn, JobStatus
from optuna.trial import FrozenTrial, Trial, TrialState

from ._study import StudySettings, directions, first_line, redact

log = logging.getLogger(__name__)


@dataclass
class RunRecord:
    """What this process did, for the log and optimization_results.yaml."""

    trials: List[int]
    failed: List[int]
    stopped_early: bool = False


def counted_trials(study: optuna.study.Study) -> int:
    """Trials that use up n_trials: finished, failed or running; not those queued again (a failed
    trial whose parameters were queued again is counted once, through its retry)."""
    trials = study.get_trials(deepcopy=False)
    retried = {t.user_attrs.get("retry_of") for t in trials}
    live = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING)
    return sum(t.state in live or (t.state == TrialState.FAIL and t.number not in retried) for t in trials)


def tell(study: optuna.study.Study, trial: Trial, ret: JobReturn, record: RunRecord) -> None:
    job_dir = _job_dir(ret)
    if job_dir:
        trial.set_user_attr("job_dir", job_dir)
    if ret.status != JobStatus.COMPLETED:
        fail(study, trial, first_line(ret._return_value), record)
        return
    n = len(study.directions)
    raw = ret._return_value
    try:
        values = [float(v) for v in (raw if n > 1 else [raw])]
    except (TypeError, ValueError):
        values = []
    if len(values) != n or not all(math.isfinite(v) for v in values):
        fail(study, trial, _job_error(job_dir) or f"the objective is {raw!r}, not a finite number", record)
        return
    _tell_quietly(study, trial, TrialState.COMPLETE, values)


def fail(study: optuna.study.Study, trial: Trial, error: str, record: RunRecord) -> None:
    log.warning("Trial %d failed: %s", trial.number, error)
    trial.set_user_attr("error", error)
    record.failed.append(trial.number)
    _tell_quietly(study, trial, TrialState.FAIL, None)


def requeue(study: optuna.study.Study, trial: Any, why: str) -> None:
    """Tell FAIL and queue the same parameters again, so a re-run or another worker runs them."""
    number = trial.number
    try:
        study.tell(number, state=TrialState.FAIL, skip_if_finished=True)
        study.enqueue_trial(dict(trial.params), user_attrs={"retry_of": number})
        log.warning("Trial %d %s: its parameters are queued again for the next run.", number, why)
    except Exception:  # the database may be the reason we stopped; never mask the original error
        log.warning("Trial %d %s and could not be queued again.", number, why, exc_info=True)


def recover_stale_trials(study: optuna.study.Study) -> None:
    """Trials left RUNNING by a process of this machine that no longer exists (killed outright)."""
    host = socket.gethostname()
    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") == host and isinstance(pid, int) and not _alive(pid):
            requeue(study, t, f"was left running by process {pid}, which is gone")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _tell_quietly(study: optuna.study.Study, trial: Trial, state: TrialState, values: Optional[List[float]]) -> None:
    try:
        study.tell(trial, values, state=state)
    except RuntimeError as exc:
        # The grid sampler calls study.stop() once the grid is used up, which only works inside
        # study.optimize; the trial is stored before that, and n_trials already ends the loop.
        if "Study.stop" not in str(exc):
            raise


def write_results(study: optuna.study.Study, path: Path, s: StudySettings, record: RunRecord) -> None:
    trials = study.get_trials(deepcopy=False)
    states = {state.name.lower(): sum(t.state == state for t in trials) for state in TrialState}
    results: Dict[str, Any] = {
        "name": "optuna",
        "study_name": study.study_name,
        "storage": redact(s.storage) if s.storage else None,
        "direction": "/".join(directions(s.direction)),
        "trials": {k: v for k, v in states.items() if v},
        "this_run": {"trials": record.trials, "failed": record.failed, "stopped_early": record.stopped_early},
    }
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    if len(study.directions) > 1:
        results["solutions"] = [
            {"trial": t.number, "params": t.params, "values": t.values} for t in (study.best_trials if complete else [])
        ]
    elif complete:
        best: FrozenTrial = study.best_trial
        results.update(
            best_trial=best.number,
            best_params=best.params,
            best_value=best.value,
            best_job_dir=best.user_attrs.get("job_dir"),
        )
        log.info("Best trial %d: value %s, parameters %s", best.number, best.value, best.params)
    else:
        results.update(best_trial=None, best_params=None, best_value=None)
        log.warning("No trial of study %s has finished yet: no best parameters.", study.study_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(results, sort_keys=False))
    log.info("Optimization results written to %s", path)


def _job_dir(ret: JobReturn) -> Optional[str]:
    try:
        return str(ret.hydra_cfg.hydra.runtime.output_dir)  # type: ignore[union-attr]
    except Exception:
        return None


def _job_error(job_dir: Optional[str]) -> Optional[str]:
    """seqrec-train records why a job failed in error.json before returning NaN."""
    path = Path(job_dir) / "error.json" if job_dir else None
    if path is None or not path.is_file():
        return None
    try:
        return str(json.loads(path.read_text())["error"])
    except Exception:
        return None
