"""Items a trained model never saw, scored from their features: `seqrec-recommend item_table=...`.

The table is read with the run's own `dataset.item_features` settings (columns, separator,
format; only the path differs) and encoded with the vocabularies and scalers stored in the
checkpoint, so a value the model never saw maps to the learned "unknown" row. Items of the table
the model already knows keep their trained representation; the others get one from their
features alone (`ItemRepresentation.new_items`), appended after the catalogue's columns.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from seqrec_cli.data import item_features as feats
from seqrec_cli.errors import UserError

log = logging.getLogger(__name__)


@dataclass
class NewItems:
    ids: np.ndarray  # original ids of the new items, typed like the run's item ids
    reprs: torch.Tensor  # [m, dim] their representations
    allowed: Optional[np.ndarray]  # bool [n_items + m] candidates (candidates=in_table), or None: all


def read_new_items(run: Any, path: str, candidates: str) -> NewItems:
    """The table's items the model does not know, ready to be scored; `candidates=in_table`
    restricts recommendations to the table's items (known or new)."""
    items = run.model.item_repr
    if items is None:
        raise UserError(
            "item_table= needs a model trained with item features (model.item_features=true): "
            "this run's items are ids only, so items it never saw cannot be scored."
        )
    if not Path(path).expanduser().is_file():
        raise UserError(f"Item table not found: {path} (item_table).")
    cfg = replace(run.cfg.dataset.item_features, path=str(Path(path).expanduser()))
    if not cfg.categorical and not cfg.multi_valued and not cfg.numeric:  # MovieLens' own metadata
        cfg = feats.movielens_config(cfg)  # columns item_id, genres ("A|B"), year
    table, keys = feats.read_table(cfg, run.cfg.dataset.id_type)
    known = {str(v) for v in run.item_ids.tolist()}
    new_keys = [k for k in keys if k not in known]
    new_ids = _typed(new_keys, run.item_ids)
    encoded = feats.encode_table(items.meta, table, keys, np.asarray(new_keys, dtype=object))
    if items.vectors is not None:
        encoded = _with_run_vectors(encoded, run, new_keys)
    with torch.no_grad():
        reprs = items.new_items(encoded) if new_keys else torch.zeros(0, items.dim, device=items.id_known.device)
    allowed = None
    if candidates == "in_table":
        in_table = set(keys)
        allowed = np.array([str(v) in in_table for v in run.item_ids.tolist()] + [True] * len(new_keys))
    log.info(
        "Item table %s: %d new items scored from their features, %d known.",
        path,
        len(new_keys),
        len(keys) - len(new_keys),
    )
    return NewItems(new_ids, reprs.float(), allowed)


def _typed(keys: list[str], item_ids: np.ndarray) -> np.ndarray:
    """New ids as the run's ids are typed (integers when the run's ids are)."""
    if np.issubdtype(np.asarray(item_ids).dtype, np.integer):
        try:
            return np.asarray([int(k) for k in keys], dtype=np.int64)
        except ValueError:
            pass
    return np.asarray(keys, dtype=str)


def _with_run_vectors(encoded: feats.ItemFeatures, run: Any, new_keys: list[str]) -> feats.ItemFeatures:
    """New items' vectors from the run's vector file (zero for items it lacks)."""
    matrix, vector_ids = feats.read_vectors(run.cfg.dataset.item_features)
    return feats.with_vectors(encoded, matrix, vector_ids, np.asarray(new_keys, dtype=object))
