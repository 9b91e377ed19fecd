"""Item features at the start of a run: loaded for the model (or for the feature-only baseline),
and checked against the checkpoint a resume continues from."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Optional

from seqrec_cli.config.feature_checks import uses_features
from seqrec_cli.config.schema import TrainConfig
from seqrec_cli.data import SequenceSplits
from seqrec_cli.data.item_features import ItemFeatures, dataset_features
from seqrec_cli.errors import UserError

log = logging.getLogger(__name__)


def load_for_run(
    cfg: TrainConfig, splits: SequenceSplits, resume: Optional[dict[str, Any]], resume_from: Optional[Path]
) -> Optional[ItemFeatures]:
    """The catalogue's features when the model uses them, or when they are at hand for the
    feature-only baseline (a configured table, or MovieLens under the item hold-out); else None."""
    d = cfg.dataset
    item_ids = splits.data.item_ids
    if uses_features(cfg.model):
        if cfg.trainer.init_from:
            raise UserError(
                "trainer.init_from does not carry item-feature weights yet: train a model with features anew."
            )
        features = dataset_features(d, item_ids)
        if resume is not None:
            check_resumed_features(resume, features.meta, resume_from)
        return features
    if d.item_features.path or d.item_features.vectors:
        return dataset_features(d, item_ids)
    if d.split.cold_items > 0 and d.source in ("bundled", "movielens"):
        try:
            return dataset_features(d, item_ids)
        except UserError as exc:  # the baseline is a nicety for an id-only model
            log.warning("No feature-only baseline: %s", exc)
    return None


def check_resumed_features(resume: dict[str, Any], meta: dict[str, Any], path: Optional[Path]) -> None:
    """A resume must encode items as its checkpoint did: same vocabularies, scalers, widths."""
    saved = resume.get("item_features")
    if saved is None:
        raise UserError(f"Cannot resume from {path}: its run had no item features, and this one has.")
    changed = differing_keys(saved, meta)
    if changed:
        raise UserError(
            f"Cannot resume from {path}: the item features have changed since that run started "
            f"({', '.join(changed)}): resume needs the same item table; start a new run for the new one."
        )


def differing_keys(saved: Any, now: Any, prefix: str = "") -> list[str]:
    """Dotted names of the entries of two nested dicts that differ."""
    if not isinstance(saved, dict) or not isinstance(now, dict):
        return [prefix.rstrip(".") or "item_features"] if saved != now else []
    out: list[str] = []
    for key in sorted(set(saved) | set(now), key=str):
        out += differing_keys(saved.get(key), now.get(key), f"{prefix}{key}.")
    return out
