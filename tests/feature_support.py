"""Shared test helper: a small encoded item catalogue with every kind of feature column."""

from __future__ import annotations

import numpy as np

from seqrec_cli.data.item_features import ItemFeatures

N_ITEMS = 30


def catalogue(n_items: int = N_ITEMS) -> ItemFeatures:
    """A brand (3 values), genres (4 values, up to 2 per item), one number, 3-wide vectors."""
    rng = np.random.default_rng(0)
    brand = np.concatenate([[0], 2 + np.arange(n_items) % 3])
    genres = np.zeros((n_items + 1, 2), dtype=np.int64)
    genres[1:, 0] = 2 + np.arange(n_items) % 4
    genres[1::2, 1] = 2 + (np.arange(0, n_items, 2) + 1) % 4
    numeric = rng.normal(size=(n_items + 1, 1)).astype(np.float32)
    vectors = rng.normal(size=(n_items + 1, 3)).astype(np.float32)
    numeric[0] = vectors[0] = 0
    meta = {
        "categorical": {"brand": ["a", "b", "c"]},
        "multi_valued": {"genres": ["w", "x", "y", "z"]},
        "multi_sep": "|",
        "numeric": {"price": {"mean": 0.0, "std": 1.0, "log": False, "fill": 0.0}},
        "multi_width": {"genres": 2},
        "vector_width": 3,
    }
    return ItemFeatures({"brand": brand}, {"genres": genres}, numeric, vectors, meta)
