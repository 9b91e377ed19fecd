"""Typed configuration: from Hydra's composed config to checked plain dataclasses.

The schemas live in `config_schema` and the value checks in `config_checks`; this module joins
them (Hydra registration, conversion, the unknown-key check) and re-exports both, so callers
import every configuration name from `seqrec_cli.config`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from seqrec_cli.config_checks import (  # noqa: F401  (re-exported)
    dataset_has_times, metric_names, require, require_choice, validate, validate_dataset,
)
from seqrec_cli.config_schema import *  # noqa: F401,F403  (re-exported)
from seqrec_cli.config_schema import TrainConfig
from seqrec_cli.errors import UserError


def register_schemas() -> None:
    """Make the schemas known to Hydra so `conf/train.yaml` can build on `train_schema`."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)


def to_train_config(cfg: DictConfig | TrainConfig) -> TrainConfig:
    """Turn Hydra's composed config into plain dataclasses and check every value."""
    if isinstance(cfg, TrainConfig):
        typed = cfg
    else:
        plain = OmegaConf.to_container(cfg, resolve=False)
        plain.pop("hydra", None)
        unknown = _unknown_keys(plain, TrainConfig, "")
        if unknown:
            raise UserError(f"Unknown config key {unknown[0]}: it is not a setting of seqrec-train (see --cfg job).")
        schema = OmegaConf.structured(TrainConfig)
        merged = OmegaConf.merge(schema, {k: v for k, v in cfg.items() if k != "hydra"})
        typed = OmegaConf.to_object(merged)
    validate(typed)
    return typed


def _unknown_keys(node: Any, schema: type, prefix: str) -> list[str]:
    """Keys in `node` that the dataclass `schema` does not define (Hydra lets `+key=...` add them)."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = []
    for key, value in node.items():
        if key not in fields:
            unknown.append(prefix + str(key))
        elif isinstance(value, dict) and dataclasses.is_dataclass(fields[key].default_factory if fields[key].default_factory is not dataclasses.MISSING else None):
            unknown += _unknown_keys(value, fields[key].default_factory, f"{prefix}{key}.")
    return unknown


def flat_dict(node: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys (`{"optimizer": {"lr": 0.1}}` -> `{"optimizer.lr": 0.1}`),
    the form trackers and report tables take settings in; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flat_dict(value, name))
        else:
            out[name] = value
    return out


