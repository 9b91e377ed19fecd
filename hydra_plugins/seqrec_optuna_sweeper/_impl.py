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

Opening the study (storage, directions, sampler) is `_study.py`; how a trial is told, queued
again and counted, and the results file, `_trials.py`.
"""

from __future__ import annotations

import logging
import math
import os
import socket
import sys
from pathlib import Path
from typing import List, Optional, Sequence

import optuna
from hydra.core.plugins import Plugins
from hydra.types import HydraContext, TaskFunction
from hydra.utils import get_method
from omegaconf import DictConfig
from optuna.trial import Trial

from ._space import SearchSpace, SearchSpaceError, grid_values, override_value, parse_search_space, representative
from ._study import SetupError, StudySettings, build_sampler, directions, first_line, is_grid, open_study, redact
from ._trials import RunRecord, counted_trials, fail, recover_stale_trials, requeue, tell, write_results

log = logging.getLogger(__name__)

RESULTS_FILE = "optimization_results.yaml"


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
        if is_grid(s.sampler):  # before the study exists: a refused grid leaves no empty study behind
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
            return first_line(exc) + (f" ({first_line(cause)})" if cause and str(cause).strip() else "")
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


def _warn_about_old_plugin() -> None:
    from .config import _old_plugin_installed

    if _old_plugin_installed():
        log.warning(
            "hydra-optuna-sweeper is installed too; it needs optuna < 3 and owns "
            "hydra/sweeper/sampler: pip uninstall hydra-optuna-sweeper."
        )
