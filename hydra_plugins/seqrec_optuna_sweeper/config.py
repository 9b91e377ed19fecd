"""Structured configs of the sweeper and its samplers, stored in Hydra's ConfigStore.

The settings keep the names of the released Hydra Optuna sweeper, so `hydra.sweeper.*` overrides
users already type keep working. Nothing here imports Optuna: Hydra imports this module on every
command while scanning plugins.
"""

import importlib.util
from dataclasses import dataclass, field
from typing import Any, Dict, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import MISSING

SWEEPER_TARGET = "hydra_plugins.seqrec_optuna_sweeper.optuna_sweeper.SeqrecOptunaSweeper"


@dataclass
class SamplerConfig:
    _target_: str = MISSING
    seed: Optional[int] = None


@dataclass
class TPESamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.TPESampler"
    n_startup_trials: int = 10
    n_ei_candidates: int = 24
    multivariate: bool = False
    # Optuna's default: running trials count as "lied" results, so parallel workers spread out.
    constant_liar: bool = True


@dataclass
class RandomSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.RandomSampler"


@dataclass
class GridSamplerConfig(SamplerConfig):
    # The grid is built at run time from hydra.sweeper.params (only choice / range / int interval).
    _target_: str = "optuna.samplers.GridSampler"
    _partial_: bool = True


@dataclass
class CmaEsSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.CmaEsSampler"
    n_startup_trials: int = 1
    sigma0: Optional[float] = None
    restart_strategy: Optional[str] = None
    use_separable_cma: bool = False


@dataclass
class NSGAIISamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.NSGAIISampler"
    population_size: int = 50
    mutation_prob: Optional[float] = None
    crossover_prob: float = 0.9
    swapping_prob: float = 0.5


@dataclass
class QMCSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.QMCSampler"
    qmc_type: str = "sobol"
    scramble: bool = False


@dataclass
class GPSamplerConfig(SamplerConfig):
    _target_: str = "optuna.samplers.GPSampler"
    n_startup_trials: int = 10
    deterministic_objective: bool = False


SAMPLERS = {
    "tpe": TPESamplerConfig,
    "random": RandomSamplerConfig,
    "grid": GridSamplerConfig,
    "cmaes": CmaEsSamplerConfig,
    "nsgaii": NSGAIISamplerConfig,
    "qmc": QMCSamplerConfig,
    "gp": GPSamplerConfig,
}


@dataclass
class SeqrecOptunaSweeperConf:
    _target_: str = SWEEPER_TARGET
    # The sampler reaches the sweeper as config, not as an object: the sweeper builds it itself,
    # after opening the study (its seed depends on the trials already there, see `_impl`).
    _recursive_: bool = False
    defaults: List[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])
    sampler: SamplerConfig = MISSING
    # "minimize" | "maximize", or a list of them for a multi-objective study.
    direction: Any = "minimize"
    # SQLAlchemy URL (sqlite:///study.db, postgresql://user:pw@host/db); null: in memory.
    storage: Optional[str] = None
    # With a storage, the name that a re-run (or another machine) uses to find the study.
    study_name: Optional[str] = None
    # The study's size: trials already in a stored study count toward it (see README).
    n_trials: int = 20
    # Trials asked for and launched together (parallel only with a parallel launcher, e.g. joblib).
    n_jobs: int = 1
    # Stop asking for trials once more than this share of this run's trials failed (1.0: never).
    max_failure_rate: float = 1.0
    # key: sweep expression (interval, int(interval), tag(log, ...), choice, range) or a fixed value.
    params: Optional[Dict[str, str]] = None
    # Optional dotted path of a function (cfg, optuna.trial.Trial) -> None suggesting more params.
    custom_search_space: Optional[str] = None


def _old_plugin_installed() -> bool:
    """The released plugin registers `hydra/sweeper/sampler/*` too; storing ours over it (or it over
    ours, depending on scan order) would make the samplers' settings depend on import order."""
    try:
        return importlib.util.find_spec("hydra_plugins.hydra_optuna_sweeper") is not None
    except (ImportError, ValueError):
        return False


def register() -> None:
    store = ConfigStore.instance()
    store.store(group="hydra/sweeper", name="seqrec_optuna", node=SeqrecOptunaSweeperConf, provider="seqrec_cli")
    if _old_plugin_installed():
        return  # its `optuna` sweeper and samplers stay as they are; ours is `seqrec_optuna`
    # `hydra/sweeper=optuna` keeps working for commands written for the released plugin.
    store.store(group="hydra/sweeper", name="optuna", node=SeqrecOptunaSweeperConf, provider="seqrec_cli")
    for name, node in SAMPLERS.items():
        store.store(group="hydra/sweeper/sampler", name=name, node=node, provider="seqrec_cli")


register()
