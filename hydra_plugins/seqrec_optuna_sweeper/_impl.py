"""The study loop: ask Optuna for trials, launch them as Hydra jobs, tell Optuna how they ended.

Rules that make a long study survivable:
- a trial that fails (an exception, a NaN objective — seqrec-train returns NaN for a failed job
  under a sweep — or a config that does not compose) is told FAIL with its error as a user
  attribute, and the study goes on; results are written however the study ends;
- `n_trials` is the size of the study, not of this run: trials already in a stored study (finished,
  failed, or running in another process) count toward it, so re-running the same command resumes;
- a trial cut short (Ctrl-C, SIGTERM, its process killed on this machine) is told FAIL and queued
  again with the same parameters, and does not count: the re-run (or another worker) runs it again;
- mistakes in the settings or the search space are found before the first trial: one sentence,
  exit code 2, no traceback.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import os
import random
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence

import optuna
import yaml
from hydra.core.plugins import Plugins
from hydra.core.utils import JobReturn, JobStatus
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method, instantiate
from omegaconf import DictConfig, OmegaConf, open_dict
from optuna.trial import FrozenTrial, Trial, TrialState

from ._space import (
    SearchSpace,
    SearchSpaceError,
    grid_values,
    override_value,
    parse_search_space,
    representative,
)

log = logging.getLogger(__name__)

DIRECTIONS = ("minimize", "maximize")
RESULTS_FILE = "optimization_results.yaml"


class SetupError(SearchSpaceError):
    """A sweeper setting that cannot work (storage, direction, sampler); one sentence."""


@dataclass
class StudySettings:
    """`hydra.sweeper.*` as the user set them (see config.SeqrecOptunaSweeperConf)."""

    sampler: Any
    direction: Any
    storage: Optional[str]
    study_name: Optional[str]
    n_trials: int
    n_jobs: int
    max_failure_rate: float
    params: Optional[DictConfig]
    custom_search_space: Optional[str] = None


@dataclass
class RunRecord:
    """What this process did, for the log and optimization_results.yaml."""

    trials: List[int]
    failed: List[int]
    stopped_early: bool = False


class StudySweep:
    def __init__(self, settings: StudySettings) -> None:
        self.settings = settings
        self.job_idx = 0

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.hydra_context = hydra_context
        self.launcher = Plugins.instance().instantiate_launcher(
            config=config, hydra_context=hydra_context, task_function=task_function
        )
        self.sweep_dir = Path(str(config.hydra.sweep.dir))

    def sweep(self, arguments: List[str]) -> None:
        try:
            study, space = self._prepare(arguments)
        except SearchSpaceError as exc:
            log.error("%s", exc)
            sys.exit(2)
        record = RunRecord(trials=[], failed=[])
        path = self.sweep_dir / RESULTS_FILE
        try:
            self._run_trials(study, space, record)
        except BaseException:  # also when interrupted: what the study holds so far is worth having
            try:
                write_results(study, path, self.settings, record)
            except Exception:  # the database may be why we stopped; the original error is the one to see
                log.warning("Could not write %s.", path, exc_info=True)
            raise
        write_results(study, path, self.settings, record)

    def _prepare(self, arguments: List[str]) -> tuple[optuna.study.Study, SearchSpace]:
        s = self.settings
        if s.n_trials < 1 or s.n_jobs < 1 or not 0.0 <= s.max_failure_rate <= 1.0:
            raise SetupError("hydra.sweeper needs n_trials >= 1, n_jobs >= 1 and max_failure_rate in [0, 1].")
        _warn_about_old_plugin()
        lines = [f"{k}={v}" for k, v in (s.params or {}).items()] + list(arguments)
        space = parse_search_space(lines)
        if not space.distributions and s.custom_search_space is None:
            raise SetupError("hydra.sweeper.params holds no sweep (interval, choice or range): nothing to search.")
        self._check_composes(space)
        if _is_grid(s.sampler):  # before the study exists: a refused grid leaves no empty study behind
            size = math.prod(len(grid_values(k, d)) for k, d in space.distributions.items())
            if size < s.n_trials:
                log.info("The grid holds %d points: the study stops there (n_trials=%d).", size, s.n_trials)
                s.n_trials = size
        study = open_study(s, directions(s.direction))
        recover_stale_trials(study)
        study.sampler = build_sampler(s.sampler, space, seed_offset=len(study.trials) if s.storage else 0)
        log.info(
            "Study %s in %s: %s, sampler %s, %d of n_trials=%d already counted.",
            study.study_name,
            redact(s.storage) if s.storage else "memory",
            "/".join(directions(s.direction)),
            type(study.sampler).__name__,
            counted_trials(study),
            s.n_trials,
        )
        return study, space

    def _check_composes(self, space: SearchSpace) -> None:
        """Compose one config from the search space's first values before asking for any trial: a
        misspelt key or a type the schema refuses would otherwise fail every trial the same way."""
        overrides = [f"{k}={override_value(representative(d))}" for k, d in space.distributions.items()]
        error = self._compose_error(overrides + space.fixed_overrides())
        if error:
            raise SearchSpaceError(f"The search space does not compose with the config: {error}.")

    def _compose_error(self, overrides: Sequence[str]) -> Optional[str]:
        try:
            self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        except Exception as exc:  # ConfigCompositionException, OmegaConf validation errors
            cause = exc.__cause__
            return _first_line(exc) + (f" ({_first_line(cause)})" if cause and str(cause).strip() else "")
        return None

    def _run_trials(self, study: optuna.study.Study, space: SearchSpace, record: RunRecord) -> None:
        s = self.settings
        while True:
            left = s.n_trials - counted_trials(study)
            if left <= 0:
                break
            if record.trials and len(record.failed) / len(record.trials) > s.max_failure_rate:
                log.error(
                    "Stopping: %d of this run's %d trials failed (max_failure_rate=%s).",
                    len(record.failed),
                    len(record.trials),
                    s.max_failure_rate,
                )
                record.stopped_early = True
                break
            trials = [study.ask() for _ in range(min(s.n_jobs, left))]
            self._run_batch(study, space, trials, record)
        if not record.trials:
            log.info(
                "Study %s already holds its n_trials=%d trials: nothing to run (raise "
                "hydra.sweeper.n_trials to run more).",
                study.study_name,
                s.n_trials,
            )

    def _run_batch(self, study: optuna.study.Study, space: SearchSpace, trials: List[Trial], record: RunRecord) -> None:
        pending = list(trials)  # asked, not yet told: queued again if this batch is cut short
        try:
            launchable, overrides = [], []
            for trial in trials:
                record.trials.append(trial.number)
                trial_overrides = self._suggest(trial, space)
                error = self._compose_error(trial_overrides)
                if error:
                    fail(study, trial, f"its config does not compose: {error}", record)
                    pending.remove(trial)
                else:
                    launchable.append(trial)
                    overrides.append(trial_overrides)
            returns = self.launcher.launch(overrides, initial_job_idx=self.job_idx) if launchable else []
            self.job_idx += len(returns)
            for trial, ret in zip(launchable, returns):
                tell(study, trial, ret, record)
                pending.remove(trial)
        except BaseException:  # Ctrl-C, SIGTERM (SystemExit), a launcher or database error
            for trial in pending:
                requeue(study, trial, "was interrupted")
            raise

    def _suggest(self, trial: Trial, space: SearchSpace) -> List[str]:
        for key, dist in space.distributions.items():
            trial._suggest(key, dist)  # Optuna's generic suggest: the distribution is already built
        if self.settings.custom_search_space:
            get_method(self.settings.custom_search_space)(self.config, trial)
        trial.set_user_attr("host", socket.gethostname())
        trial.set_user_attr("pid", os.getpid())
        params = [f"{k}={override_value(v)}" for k, v in trial.params.items()]
        return params + space.fixed_overrides()


def directions(direction: Any) -> List[str]:
    names = list(direction) if isinstance(direction, Sequence) and not isinstance(direction, str) else [direction]
    names = [getattr(d, "name", d) for d in names]  # also the released plugin's Direction enum
    if not names or any(str(d) not in DIRECTIONS for d in names):
        raise SetupError(f"hydra.sweeper.direction must be minimize or maximize (or a list of them), not {direction}.")
    return [str(d) for d in names]


def open_study(s: StudySettings, dirs: List[str]) -> optuna.study.Study:
    """Create the study, or load it when the storage already holds one of that name."""
    storage: Any = None
    if s.storage is not None:
        if not isinstance(s.storage, str):
            raise SetupError("hydra.sweeper.storage must be a database URL such as sqlite:///study.db.")
        if s.study_name is None:
            log.warning(
                "hydra.sweeper.storage is set without study_name: this run starts a new study "
                "that a re-run will not find."
            )
        storage = rdb_storage(s.storage)
    try:
        study = optuna.create_study(storage=storage, study_name=s.study_name, directions=dirs, load_if_exists=True)
    except Exception as exc:
        raise SetupError(f"Cannot open study {s.study_name} in {redact(s.storage)}: {_first_line(exc)}.") from None
    stored = [d.name.lower() for d in study.directions]
    if stored != dirs:
        raise SetupError(
            f"Study {study.study_name} in {redact(s.storage)} was created to {'/'.join(stored)}, "
            f"not to {'/'.join(dirs)}: change hydra.sweeper.direction or study_name."
        )
    return study


def rdb_storage(url: str) -> optuna.storages.RDBStorage:
    """SQL storage. Long trials leave the connection idle for hours; `pool_pre_ping` reconnects
    instead of failing the tell when a server or firewall has dropped it. A bare postgresql:// URL
    gets the psycopg (3) driver that the tune extra installs (SQLAlchemy 2.0 would pick psycopg2)."""
    if url.startswith("postgresql://") or url.startswith("postgres://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    kwargs: Dict[str, Any] = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else {"pool_pre_ping": True}
    try:
        return _retrying(lambda: optuna.storages.RDBStorage(url, engine_kwargs=kwargs))
    except ImportError as exc:  # Optuna re-raises a missing driver as ImportError
        raise SetupError(
            f"The storage {redact(url)} needs a database driver that is not installed "
            f"({_first_line(exc.__cause__ or exc)}; PostgreSQL: pip install 'psycopg[binary]')."
        ) from None
    except Exception as exc:  # bad URL, server down, wrong password: SQLAlchemy errors
        raise SetupError(f"Cannot open the Optuna storage {redact(url)}: {_first_line(exc)}.") from None


def _retrying(make: Any, delays: Sequence[float] = (0.5, 1.0, 2.0)) -> Any:
    """Database errors are retried a few times: workers started together on an empty database race to
    create Optuna's tables (PostgreSQL: duplicate key in pg_type), and a server may be restarting."""
    from sqlalchemy.exc import DBAPIError

    for delay in delays:
        try:
            return make()
        except DBAPIError as exc:
            log.info("Storage not ready (%s); retrying in %.1f s.", _first_line(exc.orig or exc), delay)
            time.sleep(delay + random.uniform(0, delay))  # jitter: racing workers do not collide again
    return make()


def build_sampler(cfg: Any, space: SearchSpace, seed_offset: int) -> optuna.samplers.BaseSampler:
    """The configured sampler. In a stored study its seed is offset by the trials already there: the
    same seed would otherwise propose a resumed study's first trials again."""
    cfg = OmegaConf.create(OmegaConf.to_container(cfg, resolve=True)) if isinstance(cfg, DictConfig) else cfg
    if isinstance(cfg, DictConfig) and cfg.get("seed") is not None and seed_offset:
        with open_dict(cfg):
            cfg.seed = int(cfg.seed) + seed_offset
        log.info("Sampler seed %d (the configured seed + %d trials already in the study).", cfg.seed, seed_offset)
    try:
        sampler = instantiate(cfg) if isinstance(cfg, DictConfig) else cfg
        if isinstance(sampler, functools.partial):  # the grid sampler takes the search space
            sampler = sampler({k: grid_values(k, d) for k, d in space.distributions.items()})
    except SearchSpaceError:
        raise
    except Exception as exc:
        raise SetupError(f"Cannot build the sampler from hydra.sweeper.sampler: {_first_line(exc)}.") from None
    if not isinstance(sampler, optuna.samplers.BaseSampler):
        raise SetupError(f"hydra.sweeper.sampler must build an Optuna sampler, not {type(sampler).__name__}.")
    return sampler


def _is_grid(cfg: Any) -> bool:
    return isinstance(cfg, DictConfig) and str(cfg.get("_target_", "")).endswith("GridSampler")


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
        fail(study, trial, _first_line(ret._return_value), record)
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


def redact(url: Optional[str]) -> str:
    """A storage URL without its password, fit for logs and result files."""
    if not url:
        return str(url)
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


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


def _warn_about_old_plugin() -> None:
    from .config import _old_plugin_installed

    if _old_plugin_installed():
        log.warning(
            "hydra-optuna-sweeper is installed too; it needs optuna < 3 and owns "
            "hydra/sweeper/sampler: pip uninstall hydra-optuna-sweeper."
        )


def _first_line(exc: Any) -> str:
    text = str(exc).strip().splitlines()
    return text[0].rstrip(".") if text else type(exc).__name__
