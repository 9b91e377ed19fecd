"""Checks of the item-feature settings (`dataset.item_features`, `model.item_repr`,
`model.id_dropout`, `dataset.split.cold_items`): one sentence naming the key, before any data is read."""

from __future__ import annotations

from seqrec_cli.config.schema import (
    FEATURE_COMBINE,
    FEATURE_FILL,
    ITEM_REPRS,
    MOVIELENS,
    ItemFeaturesConfig,
    ModelConfig,
    TrainConfig,
)
from seqrec_cli.errors import UserError


def item_repr(m: ModelConfig) -> str:
    """The item representation a model config asks for: `model.item_repr`, else `id`, or
    `id+features` when `model.item_features` is on."""
    if m.item_repr is not None:
        return m.item_repr
    return "id+features" if m.item_features else "id"


def uses_features(m: ModelConfig) -> bool:
    return item_repr(m) != "id"


def has_configured_features(f: ItemFeaturesConfig) -> bool:
    return bool(f.categorical or f.multi_valued or f.numeric or f.vectors)


def _choice(key: str, value: object, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise UserError(f"Invalid config value {key}={value!r}: expected one of {', '.join(allowed)}.")


def _fraction(key: str, value: float) -> None:
    if not 0.0 <= value < 1.0:
        raise UserError(f"Invalid config value {key}={value!r}: expected a number in [0, 1).")


def validate_features(cfg: TrainConfig) -> None:
    """Reject item-feature settings that cannot work, naming the key."""
    m, d = cfg.model, cfg.dataset
    if m.item_repr is not None:
        _choice("model.item_repr", m.item_repr, ITEM_REPRS)
    if m.item_repr == "id" and m.item_features:
        raise UserError("model.item_features=true asks for features but model.item_repr=id leaves them out: drop one.")
    _choice("model.feature_combine", m.feature_combine, FEATURE_COMBINE)
    _choice("dataset.item_features.fill", d.item_features.fill, FEATURE_FILL)
    _fraction("model.id_dropout", m.id_dropout)
    _fraction("dataset.split.cold_items", d.split.cold_items)
    if d.split.cold_items > 0 and d.split.kind != "leave_one_out":
        raise UserError(
            "dataset.split.cold_items is an item hold-out on top of leave-one-out: "
            "set dataset.split.kind=leave_one_out."
        )
    _validate_table(cfg)


def _validate_table(cfg: TrainConfig) -> None:
    m, d = cfg.model, cfg.dataset
    f = d.item_features
    if f.multi_valued and not f.multi_sep:
        raise UserError(
            f"dataset.item_features.multi_valued={list(f.multi_valued)} needs the separator inside its cells: "
            'set dataset.item_features.multi_sep (e.g. "|").'
        )
    unknown_log = [c for c in f.log_numeric if c not in f.numeric]
    if unknown_log:
        raise UserError(
            f"dataset.item_features.log_numeric names {unknown_log[0]!r}, "
            "which is not in dataset.item_features.numeric."
        )
    if not uses_features(m):
        return
    movielens = d.source in ("bundled", "movielens") and d.name in MOVIELENS
    if f.path is None and not movielens and not f.vectors:
        raise UserError(
            f"model.item_repr={item_repr(m)} needs item features, and none are configured: set "
            "dataset.item_features.path (with categorical / multi_valued / numeric columns) or "
            "dataset.item_features.vectors (MovieLens datasets read genres and year themselves)."
        )
    if f.path is not None and not has_configured_features(f):
        raise UserError(
            f"model.item_repr={item_repr(m)} needs item features, and dataset.item_features names no column: set "
            "dataset.item_features.categorical, multi_valued, numeric or vectors."
        )
    if m.id_dropout > 0 and item_repr(m) == "features":
        raise UserError("model.id_dropout drops id embeddings, and model.item_repr=features has none: set it to 0.")
