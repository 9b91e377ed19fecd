"""From a composed config to checked plain dataclasses: the one conversion path of every command.

Every command (train, eval, recommend, export, serve) turns Hydra's composition into its dataclass
schema here, so a mistyped key or a value of the wrong type is one `UserError` sentence for all of
them. Importing this module does not load Hydra (data and models import config names cheaply).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Optional

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import ConfigKeyError, OmegaConfBaseException

from seqrec_cli.config.checks import validate
from seqrec_cli.config.schema import TrainConfig
from seqrec_cli.errors import UserError


# Settings naming a file or folder the user gave: relative to where the command was typed.
TRAIN_PATH_KEYS = (
    "dataset.path",
    "dataset.data_dir",
    "dataset.cache_dir",
    "trainer.resume",
    "trainer.init_from",
    "logger.log_dir",
)


def to_train_config(cfg: DictConfig | TrainConfig) -> TrainConfig:
    """Turn Hydra's composed config into plain dataclasses and check every value."""
    typed = cfg if isinstance(cfg, TrainConfig) else to_typed(cfg, TrainConfig, "seqrec-train", TRAIN_PATH_KEYS)
    validate(typed)
    return typed


def to_typed(cfg: DictConfig, schema: type, command: str, path_keys: tuple[str, ...] = ()) -> Any:
    """Hydra's composed config (less `hydra`) as the dataclass `schema`: the one conversion of every command.

    A key added with `+key=...` or a value the schema cannot take is a `UserError` naming it, so
    every command answers a mistyped override with one sentence and exit 2, not a traceback.
    The `path_keys` that are relative are resolved against the directory the command was started
    in when `hydra.job.chdir=true` moved the process into its run directory.
    """
    plain = OmegaConf.to_container(cfg, resolve=False)
    plain.pop("hydra", None)
    unknown = _unknown_keys(plain, schema, "")
    if unknown:
        # Hydra composes onto the schema but lets `+key=...` add keys to it, and the merge below
        # keeps them; so they are looked for here.
        raise UserError(f"Unknown config key {unknown[0]}: it is not a setting of {command} (see --cfg job).")
    try:
        merged = OmegaConf.merge(OmegaConf.structured(schema), {k: v for k, v in cfg.items() if k != "hydra"})
        typed = OmegaConf.to_object(merged)
    except ConfigKeyError as exc:
        # The structured schema is closed: a key added with `+key=...` is refused by the merge itself.
        raise UserError(
            f"Unknown config key {exc.full_key}: it is not a setting of {command} (see --cfg job)."
        ) from None
    except OmegaConfBaseException as exc:
        key = f" for {exc.full_key}" if getattr(exc, "full_key", None) else ""
        raise UserError(f"Invalid config value{key}: {str(exc).splitlines()[0]} (see {command} --help).") from None
    resolve_user_paths(typed, path_keys)
    return typed


def resolve_user_paths(typed: Any, path_keys: tuple[str, ...]) -> None:
    """Make the relative `path_keys` of `typed` absolute against the original working directory, but
    only when Hydra changed directory (`hydra.job.chdir=true`): otherwise they already mean what the
    user typed, and the recorded config keeps them as typed."""
    origin = _original_cwd()
    if origin is None:
        return
    for dotted in path_keys:
        *parents, leaf = dotted.split(".")
        node = typed
        for part in parents:
            node = getattr(node, part)
        value = getattr(node, leaf)
        if isinstance(value, str) and value and not Path(value).expanduser().is_absolute():
            setattr(node, leaf, str(origin / value))


def _original_cwd() -> Optional[Path]:
    """Where the command was started, when Hydra has since moved the process elsewhere; else None."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    origin = Path(HydraConfig.get().runtime.cwd)
    return origin if origin.resolve() != Path.cwd().resolve() else None


def _unknown_keys(node: Any, schema: type, prefix: str) -> list[str]:
    """Keys in `node` that the dataclass `schema` does not define (Hydra lets `+key=...` add them)."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = []
    for key, value in node.items():
        if key not in fields:
            unknown.append(prefix + str(key))
        elif isinstance(value, dict) and dataclasses.is_dataclass(
            fields[key].default_factory if fields[key].default_factory is not dataclasses.MISSING else None
        ):
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
