"""Item embedding -> encoder -> a score for every item through the same (tied) embedding table.

Two optional inputs join the item ids: time-gap buckets (`encoder.time_features=gap`), embedded
and added to the item embeddings so every encoder sees them, and a user row
(`model.user_embedding=true`), whose learned vector is added to the encoder's output before
scoring. Row 0 of both tables is a fixed zero vector: padding for gaps, and "no user vector" for
users the model never trained on, who are then scored from their sequence alone.

A model trained with objective=masked (BERT4Rec) has a learned mask token, item id
`n_items + 1`, whose vector lives apart from the item table so that it is never scored. It
predicts the next item from a mask appended to the history: `last_hidden` (and so evaluation,
recommendation and the exported graph) rewrites each row as its last `max_len - 1` items plus the
mask, always `max_len` wide, so a row's numbers never depend on the width of its batch.

`input_width` gives the encoder an input table of its own instead of the tied item embeddings:
GRU4Rec's one-hot input (encoder.input=one_hot), whose first recurrent layer reads this table's
row as its gate inputs.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator, Optional

import torch
import torch.nn.functional as F
from torch import nn


# BLAS libraries pick other kernels, which round differently, for products with few rows (oneDNN /
# MKL sgemm on this project's CPUs: 1-3 rows on one thread, 1-11 on two). `last_hidden` and
# `scores` give every product at least MIN_ROWS rows, repeating the batch's last row, so a row's
# numbers are bit for bit the same whatever batch it is evaluated or recommended in (tested with
# batch sizes 1, 5 and 4,096); without it one user's recommendations could order near-ties
# differently from the same user's evaluation.
MIN_ROWS = 16


def at_least_rows(x: torch.Tensor, rows: int = MIN_ROWS) -> torch.Tensor:
    """`x` with its last row repeated until it has `rows` rows (`x` itself when it has enough)."""
    short = rows - len(x)
    return torch.cat([x, x[-1:].expand(short, *x.shape[1:])]) if short > 0 and len(x) else x


def with_mask_appended(items: torch.Tensor, lengths: torch.Tensor, mask_id: int, width: int) -> tuple:
    """Each row's last `width - 1` items followed by `mask_id`, right-padded to `width` columns;
    returns (items [b, width], lengths + 1 capped at width)."""
    keep = lengths.clamp(max=width - 1)
    cols = torch.arange(width, device=items.device)[None, :]
    source = ((lengths - keep)[:, None] + cols).clamp(max=items.shape[1] - 1)
    out = torch.gather(items, 1, source)
    out = torch.where(cols < keep[:, None], out, torch.zeros_like(out))
    out = torch.where(cols == keep[:, None], torch.full_like(out, mask_id), out)
    return out, keep + 1


def _zero_padded_embedding(rows: int, dim: int, init_std: float) -> nn.Embedding:
    table = nn.Embedding(rows, dim, padding_idx=0)
    # Small init keeps the first logits near zero, so the first loss is about ln(n_items).
    nn.init.normal_(table.weight, std=init_std)
    with torch.no_grad():
        table.weight[0].zero_()
    return table


class SequentialRecommender(nn.Module):
    """Scores the next item at every position of a right-padded item-id matrix.

    Item 0 is padding: its embedding row stays zero and it is never a valid prediction.
    """

    def __init__(
        self,
        n_items: int,
        dim: int,
        encoder: nn.Module,
        init_std: float,
        *,
        n_gap_buckets: int = 0,
        n_user_rows: int = 0,
        mask_len: int = 0,
        input_width: int = 0,
        item_repr: Optional[nn.Module] = None,
    ) -> None:
        """`mask_len` > 0: a masked-objective model whose inference inputs are `mask_len` wide."""
        super().__init__()
        self.n_items = n_items
        self.mask_len = mask_len
        self.item_embedding = _zero_padded_embedding(n_items + 1, dim, init_std)
        self.mask_embedding = nn.Parameter(torch.randn(dim) * init_std) if mask_len else None
        self.input_embedding = _zero_padded_embedding(n_items + 1, input_width, init_std) if input_width else None
        self.gap_embedding = _zero_padded_embedding(n_gap_buckets, dim, init_std) if n_gap_buckets else None
        self.user_embedding = _zero_padded_embedding(n_user_rows, dim, init_std) if n_user_rows else None
        self.encoder = encoder
        # Item features (models/item_repr.py); None: an item is its id embedding alone.
        self.item_repr = item_repr
        self._frozen_items: Optional[torch.Tensor] = None

    def item_table(self) -> torch.Tensor:
        """[n_items + 1, dim]: what each item is, on the input and the scoring side alike."""
        if self.item_repr is None:
            return self.item_embedding.weight
        if self._frozen_items is not None:
            return self._frozen_items
        return self.item_repr.table(self.item_embedding.weight)

    @contextmanager
    def precomputed_items(self) -> Iterator[None]:
        """Inside, the item table is computed once (no gradient) and reused by every batch: an
        evaluation or recommendation pass scores through features at the cost of ids."""
        if self.item_repr is None or self._frozen_items is not None:
            yield
            return
        with torch.no_grad():
            self._frozen_items = self.item_repr.table(self.item_embedding.weight)
        try:
            yield
        finally:
            self._frozen_items = None

    @property
    def uses_time_gaps(self) -> bool:
        return self.gap_embedding is not None

    @property
    def uses_users(self) -> bool:
        return self.user_embedding is not None

    @property
    def mask_id(self) -> int:
        """The item id of the mask token (masked-objective models only)."""
        return self.n_items + 1

    def forward(
        self,
        items: torch.Tensor,
        lengths: torch.Tensor,
        gaps: Optional[torch.Tensor] = None,
        users: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """Hidden states [batch, length, dim]; position t summarises items[:, : t + 1].

        `gaps` [batch, length] and `users` [batch] are required when the model was built with
        them; a user row of 0 means "no user vector"."""
        hidden = self.encoder(self._embed(items, gaps), lengths)
        return self._with_user(hidden, users[:, None] if users is not None else None)

    def _embed(self, items: torch.Tensor, gaps: Optional[torch.Tensor]) -> torch.Tensor:
        if self.input_embedding is not None:
            lookup = self.input_embedding
        elif self.item_repr is not None:
            lookup = lambda ids: F.embedding(ids, self.item_table())  # noqa: E731
        else:
            lookup = self.item_embedding
        if self.mask_embedding is None:
            emb = lookup(items)
        else:
            masked = (items == self.mask_id).unsqueeze(-1)
            emb = lookup(items.masked_fill(masked.squeeze(-1), 0))
            emb = torch.where(masked, self.mask_embedding.to(emb.dtype), emb)
        if self.gap_embedding is not None:
            if gaps is None:
                raise ValueError("this model was built with time-gap features: pass gaps")
            emb = emb + self.gap_embedding(gaps)
        return emb

    def _with_user(self, hidden: torch.Tensor, users: Optional[torch.Tensor]) -> torch.Tensor:
        if self.user_embedding is not None and users is not None:
            hidden = hidden + self.user_embedding(users)
        return hidden

    def last_hidden(
        self,
        items: torch.Tensor,
        lengths: torch.Tensor,
        gaps: Optional[torch.Tensor] = None,
        users: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """The state after each row's last real item: what predicts the next one. Encoders
        compute only what that state needs (`encoder.last`), which is what makes evaluation and
        recommendation cheaper than a training forward pass. Short batches are padded to MIN_ROWS."""
        n = len(items)
        if n < MIN_ROWS:
            items, lengths = at_least_rows(items), at_least_rows(lengths)
            gaps = at_least_rows(gaps) if gaps is not None else None
            users = at_least_rows(users) if users is not None else None
        return self.encode_last(items, lengths, gaps, users)[:n]

    def encode_last(
        self,
        items: torch.Tensor,
        lengths: torch.Tensor,
        gaps: Optional[torch.Tensor] = None,
        users: Optional[torch.Tensor] = None,
    ) -> torch.Tensor:
        """`last_hidden` without its padding of short batches (the exported graph runs this). A
        masked-objective model reads its histories with a mask token appended (module docstring)."""
        if self.mask_len:
            items, lengths = with_mask_appended(items, lengths, self.mask_id, self.mask_len)
        return self._with_user(self.encoder.last(self._embed(items, gaps), lengths), users)

    def scores(self, hidden: torch.Tensor, out: Optional[torch.Tensor] = None) -> torch.Tensor:
        """Scores for items 1..n_items (column j is item j + 1), into `out` when given. Short
        batches are padded to MIN_ROWS."""
        table = self.item_table()[1:].T
        if len(hidden) >= MIN_ROWS or len(hidden) == 0:
            return torch.matmul(hidden, table, out=out)
        padded = torch.matmul(at_least_rows(hidden), table)[: len(hidden)]
        return out.copy_(padded) if out is not None else padded
