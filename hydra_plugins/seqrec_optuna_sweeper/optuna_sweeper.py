"""The Sweeper class Hydra instantiates for `hydra/sweeper=seqrec_optuna`.

A thin shell: the work lives in `_impl` (with `_study` and `_trials`), imported on first use so that
Hydra's plugin scan (run by every command, `--help` included) does not pay for importing Optuna and
SQLAlchemy.
"""

from __future__ import annotations

from typing import Any, List, Optional

from hydra.plugins.sweeper import Sweeper
from hydra.types import HydraContext, TaskFunction
from omegaconf import DictConfig


class SeqrecOptunaSweeper(Sweeper):
    """Hydra sweeper running an Optuna study with ask/tell; see `_impl.StudySweep`."""

    # Keyword-only: Hydra instantiates the sweeper with its config's keys as keyword arguments.
    def __init__(
        self,
        *,
        sampler: Any,
        direction: Any,
        storage: Optional[str],
        study_name: Optional[str],
        n_trials: int,
        n_jobs: int,
        max_failure_rate: float,
        params: Optional[DictConfig],
        custom_search_space: Optional[str] = None,
    ) -> None:
        from ._impl import StudySweep
        from ._study import StudySettings

        settings = StudySettings(
            sampler=sampler,
            direction=direction,
            storage=storage,
            study_name=study_name,
            n_trials=n_trials,
            n_jobs=n_jobs,
            max_failure_rate=max_failure_rate,
            params=params,
            custom_search_space=custom_search_space,
        )
        self.sweeper = StudySweep(settings)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.sweeper.setup(hydra_context=hydra_context, task_function=task_function, config=config)

    def sweep(self, arguments: List[str]) -> None:
        return self.sweeper.sweep(arguments)
