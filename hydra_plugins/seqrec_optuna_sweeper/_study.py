"""Opening the study: the sweeper's settings, the storage (SQL, with retries and a password-free
name for logs), the direction(s) and the sampler, each refused with one sentence (`SetupError`)
when it cannot work. Run before the first trial, so a bad setting costs no training.
"""

from __future__ import annotations

import functools
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Dict, List, Optional, Sequence

import optuna
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf, open_dict

from ._space import SearchSpace, SearchSpaceError, grid_values

log = logging.getLogger(__name__)

DIRECTIONS = ("minimize", "maximize")


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
        raise SetupError(f"Cannot open study {s.study_name} in {redact(s.storage)}: {first_line(exc)}.") from None
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
            f"({first_line(exc.__cause__ or exc)}; PostgreSQL: pip install 'psycopg[binary]')."
        ) from None
    except Exception as exc:  # bad URL, server down, wrong password: SQLAlchemy errors
        raise SetupError(f"Cannot open the Optuna storage {redact(url)}: {first_line(exc)}.") from None


def _retrying(make: Any, delays: Sequence[float] = (0.5, 1.0, 2.0)) -> Any:
    """Database errors are retried a few times: workers started together on an empty database race to
    create Optuna's tables (PostgreSQL: duplicate key in pg_type), and a server may be restarting."""
    from sqlalchemy.exc import DBAPIError

    for delay in delays:
        try:
            return make()
        except DBAPIError as exc:
            log.info("Storage not ready (%s); retrying in %.1f s.", first_line(exc.orig or exc), delay)
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
        raise SetupError(f"Cannot build the sampler from hydra.sweeper.sampler: {first_line(exc)}.") from None
    if not isinstance(sampler, optuna.samplers.BaseSampler):
        raise SetupError(f"hydra.sweeper.sampler must build an Optuna sampler, not {type(sampler).__name__}.")
    return sampler


def is_grid(cfg: Any) -> bool:
    return isinstance(cfg, DictConfig) and str(cfg.get("_target_", "")).endswith("GridSampler")


def redact(url: Optional[str]) -> str:
    """A storage URL without its password, fit for logs and result files."""
    if not url:
        return str(url)
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def first_line(exc: Any) -> str:
    text = str(exc).strip().splitlines()
    return text[0].rstrip(".") if text else type(exc).__name__
