"""Typed configuration of the commands that work on a finished run (`seqrec-eval`,
`seqrec-recommend`): their schemas for Hydra's ConfigStore and their value checks.

Kept apart from `config.py`, which describes a training run, because these commands only read a
run directory and never build one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig

from seqrec_cli.config.require import require, require_choice
from seqrec_cli.config.convert import to_typed
from seqrec_cli.errors import UserError


@dataclass
class EvalDataConfig:
    """Another interaction file to evaluate on, read and filtered like the run's own data.

    Null fields keep the run's own reader settings (columns, separator).
    """

    path: Optional[str] = None
    user_col: Optional[str] = None
    item_col: Optional[str] = None
    time_col: Optional[str] = None
    sep: Optional[str] = None


@dataclass
class EvalAppConfig:
    """`seqrec-eval`: re-evaluate a finished run's best checkpoint."""

    run: Optional[str] = None
    split: str = "test"
    # Cut-offs for HR/NDCG; null = the run's eval.ks.
    k: Optional[List[int]] = None
    # null = the run's eval.mask_history.
    mask_history: Optional[bool] = None
    data: EvalDataConfig = field(default_factory=EvalDataConfig)
    # Where the JSON goes; null = <run>/eval_<split>.json (eval_<split>_<file stem>.json with data.path).
    out: Optional[str] = None
    device: str = "auto"
    # null = the run's trainer.eval_batch_size.
    batch_size: Optional[int] = None


@dataclass
class RecommendAppConfig:
    """`seqrec-recommend`: top-K unseen items per user (or per ad-hoc history), in original ids."""

    run: Optional[str] = None
    users: List[str] = field(default_factory=list)
    # A text file with one original user id per line (the first comma-separated field is read).
    users_file: Optional[str] = None
    # An ad-hoc history in original item ids, oldest first.
    history: List[str] = field(default_factory=list)
    k: int = 10
    exclude_seen: bool = True
    # `error`: stop at the first unknown user/item id; `skip`: warn and go on without it.
    on_unknown: str = "error"
    # A CSV file to write; null = print the table only.
    out: Optional[str] = None
    device: str = "auto"
    batch_size: int = 256
    # Per recommended item, the history items that raised its score most (occlusion), in a `because` column.
    explain: bool = False
    # An item table (the run's dataset.item_features columns) whose items the model never saw are
    # scored from their features; candidates: all (catalogue + table) or in_table (the table's only).
    item_table: Optional[str] = None
    candidates: str = "all"


# Per command: its name in messages, and the settings naming a user's file or folder.
_COMMANDS = {
    "EvalAppConfig": ("seqrec-eval", ("run", "data.path", "out")),
    "RecommendAppConfig": ("seqrec-recommend", ("run", "users_file", "out", "item_table")),
}


def to_app_config(cfg: DictConfig, schema: type) -> Any:
    """Hydra's composed config of a non-training command as its plain dataclass (`schema`), through
    the same conversion as seqrec-train's (`config.to_typed`): unknown keys and values the schema
    refuses are one-sentence `UserError`s, relative paths survive `hydra.job.chdir=true`."""
    command, path_keys = _COMMANDS.get(schema.__name__, (schema.__name__, ()))
    return to_typed(cfg, schema, command, path_keys)


def _require_run(run: Optional[str], command: str) -> None:
    if not run:
        raise UserError(f"Name the run directory: {command} run=outputs/<date>/<time>.")


def validate_eval(cfg: EvalAppConfig) -> None:
    _require_run(cfg.run, "seqrec-eval")
    require_choice("split", cfg.split, ("valid", "test"))
    if cfg.k is not None:
        require(len(cfg.k) > 0 and all(k > 0 for k in cfg.k), "k", cfg.k, "a list of integers > 0")
    require(cfg.batch_size is None or cfg.batch_size > 0, "batch_size", cfg.batch_size, "null or an integer > 0")


def validate_recommend(cfg: RecommendAppConfig) -> None:
    _require_run(cfg.run, "seqrec-recommend")
    require(cfg.k > 0, "k", cfg.k, "an integer > 0")
    require(cfg.batch_size > 0, "batch_size", cfg.batch_size, "an integer > 0")
    require_choice("on_unknown", cfg.on_unknown, ("error", "skip"))
    require_choice("candidates", cfg.candidates, ("all", "in_table"))
    if cfg.candidates == "in_table" and not cfg.item_table:
        raise UserError("candidates=in_table restricts recommendations to an item table: set item_table=<file>.")
    if not (cfg.users or cfg.users_file or cfg.history):
        raise UserError("Say whom to recommend for: users=[...], users_file=<file> or history=[...] (original ids).")


def register_app_schemas() -> None:
    """Make `eval_schema` and `recommend_schema` known to Hydra (conf/eval.yaml, conf/recommend.yaml)."""
    cs = ConfigStore.instance()
    cs.store(name="eval_schema", node=EvalAppConfig)
    cs.store(name="recommend_schema", node=RecommendAppConfig)
