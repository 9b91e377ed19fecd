"""Item representations from ids and features, on both sides of the model.

`ItemRepresentation.table(id_weight)` is the [n_items + 1, dim] matrix the recommender embeds
its inputs with and scores against (row 0, padding, is zero): the id embedding (unless
`model.item_repr=features`) plus one learned embedding per categorical value, the mean of the
embeddings of a multi-valued cell's values, and linear projections of the standardised numeric
columns and of precomputed vectors; summed, or concatenated and projected
(`model.feature_combine`).

Items without training events (held-out or new items) have no trained id row: their id part is
a learned "unknown id" row shared by all of them (`id_known`), so they are scored from their
features alone, and with
`model.id_dropout` = p a random fraction p of the items lose their id part at each training step
(DropoutNet), which trains the feature path to stand on its own. Items without training events
are also left out of the training softmax (`softmax_items`): nothing pushes their scores down
for never having been a target.

The encoded features are buffers, so `best.pt` / `last.pt` carry them with the weights, and the
vocabularies and scalers that encoded them travel beside (`meta`).
"""

from __future__ import annotations

from typing import Any, Optional

import numpy as np
import torch
from torch import nn

from seqrec_cli.data.item_features import ItemFeatures


def _embedding(rows: int, dim: int, init_std: float) -> nn.Embedding:
    table = nn.Embedding(rows, dim, padding_idx=0)
    nn.init.normal_(table.weight, std=init_std)
    with torch.no_grad():
        table.weight[0].zero_()
    return table


def _projection(width: int, dim: int, init_std: float) -> nn.Linear:
    # Scaled so a standardised input gives outputs about as large as an embedding row's.
    layer = nn.Linear(width, dim)
    nn.init.normal_(layer.weight, std=init_std / max(width, 1) ** 0.5)
    nn.init.zeros_(layer.bias)
    return layer


class ItemRepresentation(nn.Module):
    """Feature embeddings and the encoded features of the catalogue (see the module docstring)."""

    def __init__(
        self,
        meta: dict[str, Any],
        n_items: int,
        dim: int,
        init_std: float,
        *,
        use_id: bool,
        combine: str,
        id_dropout: float,
    ) -> None:
        super().__init__()
        self.meta, self.use_id, self.combine, self.id_dropout = meta, use_id, combine, id_dropout
        cat, multi = list(meta["categorical"]), list(meta["multi_valued"])
        widths = meta.get("multi_width", {})
        self.categorical = nn.ModuleList(_embedding(len(meta["categorical"][c]) + 2, dim, init_std) for c in cat)
        self.multi = nn.ModuleList(_embedding(len(meta["multi_valued"][c]) + 2, dim, init_std) for c in multi)
        n_numeric, vector_width = len(meta["numeric"]), meta.get("vector_width") or 0
        self.numeric = _projection(n_numeric, dim, init_std) if n_numeric else None
        self.vectors = _projection(vector_width, dim, init_std) if vector_width else None
        rows = n_items + 1
        for i in range(len(cat)):
            self.register_buffer(f"cat_codes_{i}", torch.zeros(rows, dtype=torch.int64))
        for i, c in enumerate(multi):
            self.register_buffer(f"multi_codes_{i}", torch.zeros(rows, int(widths.get(c, 1)), dtype=torch.int64))
        self.register_buffer("numeric_values", torch.zeros(rows, n_numeric))
        self.register_buffer("vector_values", torch.zeros(rows, vector_width))
        self.register_buffer("id_known", torch.ones(rows))
        # Recomputed from the training counts by `set_catalogue`; only training uses it.
        self.register_buffer("softmax_items", torch.arange(1, rows), persistent=False)
        self.register_buffer("softmax_index", torch.arange(-1, rows - 1))
        n_parts = int(use_id) + len(cat) + len(multi) + int(n_numeric > 0) + int(vector_width > 0)
        self.project = nn.Linear(n_parts * dim, dim, bias=False) if combine == "concat" else None
        # The id part of an item without a trained id (cold, new, or dropped this step): one learned
        # "unknown id" row, so h . unknown_id lets each user's scores of such items rise or fall
        # together, as often as training positives lacked their id.
        self.unknown_id = nn.Parameter(torch.randn(dim) * init_std) if use_id else None
        self.dim = dim

    def set_catalogue(self, features: ItemFeatures, train_counts: Optional[np.ndarray]) -> None:
        """Load the catalogue's encoded features; items with no training events (`train_counts`
        0) get no id part and stay out of the training softmax."""
        with torch.no_grad():
            for i, codes in enumerate(features.categorical.values()):
                getattr(self, f"cat_codes_{i}").copy_(torch.as_tensor(codes))
            for i, codes in enumerate(features.multi.values()):
                getattr(self, f"multi_codes_{i}").copy_(torch.as_tensor(codes))
            if features.numeric is not None:
                self.numeric_values.copy_(torch.as_tensor(features.numeric))
            if features.vectors is not None:
                self.vector_values.copy_(torch.as_tensor(features.vectors))
            if train_counts is not None:
                known = torch.as_tensor(np.asarray(train_counts) > 0)
                known[0] = False
                self.id_known.copy_(known.float())
                trained = torch.nonzero(known).flatten()
                index = torch.full_like(self.softmax_index, -1)
                index[trained] = torch.arange(len(trained))
                self.softmax_items = trained.to(self.softmax_items.device)
                self.softmax_index.copy_(index)

    def feature_parts(
        self, cat: list[torch.Tensor], multi: list[torch.Tensor], numeric: torch.Tensor, vectors: torch.Tensor
    ) -> list[torch.Tensor]:
        """One [rows, dim] tensor per feature for the given encoded rows."""
        parts = [emb(codes) for emb, codes in zip(self.categorical, cat)]
        for emb, codes in zip(self.multi, multi):
            present = (codes > 0).to(emb.weight.dtype)
            parts.append((emb(codes) * present[..., None]).sum(1) / present.sum(1, keepdim=True).clamp(min=1.0))
        if self.numeric is not None:
            parts.append(self.numeric(numeric))
        if self.vectors is not None:
            parts.append(self.vectors(vectors))
        return parts

    def _combine(self, parts: list[torch.Tensor]) -> torch.Tensor:
        if self.project is not None:
            return self.project(torch.cat(parts, dim=1))
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total

    def table(self, id_weight: torch.Tensor) -> torch.Tensor:
        """[n_items + 1, dim]: every item's representation, row 0 zero."""
        cat = [getattr(self, f"cat_codes_{i}") for i in range(len(self.categorical))]
        multi = [getattr(self, f"multi_codes_{i}") for i in range(len(self.multi))]
        parts = self.feature_parts(cat, multi, self.numeric_values, self.vector_values)
        if self.use_id:
            keep = self.id_known
            if self.training and self.id_dropout > 0:
                keep = keep * (torch.rand_like(keep) >= self.id_dropout).to(keep.dtype)
            keep = keep[:, None].to(id_weight.dtype)
            parts.insert(0, id_weight * keep + self.unknown_id * (1.0 - keep))
        not_padding = torch.ones(len(self.id_known), 1, device=id_weight.device, dtype=id_weight.dtype)
        not_padding[0] = 0.0
        return self._combine(parts) * not_padding

    def new_items(self, features: ItemFeatures) -> torch.Tensor:
        """[m, dim] representations of items the model never saw (rows 1.. of `features`), from
        their features alone."""
        device = self.id_known.device
        cat = [torch.as_tensor(c[1:], device=device) for c in features.categorical.values()]
        multi = [torch.as_tensor(c[1:], device=device) for c in features.multi.values()]
        m = features.n_rows - 1
        numeric = torch.as_tensor(features.numeric[1:], device=device) if features.numeric is not None else None
        vectors = torch.as_tensor(features.vectors[1:], device=device) if features.vectors is not None else None
        parts = self.feature_parts(cat, multi, numeric, vectors)
        if self.use_id:
            parts.insert(0, self.unknown_id.expand(m, -1))
        return self._combine(parts)


def features_of(items: ItemRepresentation) -> ItemFeatures:
    """The catalogue's encoded features as the model holds them (for the feature-only baseline)."""
    cat = {c: getattr(items, f"cat_codes_{i}").cpu().numpy() for i, c in enumerate(items.meta["categorical"])}
    multi = {c: getattr(items, f"multi_codes_{i}").cpu().numpy() for i, c in enumerate(items.meta["multi_valued"])}
    numeric = items.numeric_values.cpu().numpy() if items.numeric is not None else None
    vectors = items.vector_values.cpu().numpy() if items.vectors is not None else None
    return ItemFeatures(cat, multi, numeric, vectors, items.meta)
