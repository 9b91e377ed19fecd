"""Top-K next items for given histories: what `seqrec-recommend` serves.

Histories are in model ids (1..n_items). The model sees the last `max_len` items of each history,
as in training; the items to exclude (by default the whole history, however long) are set to
-inf before ranking. Ties are ordered by item id, the same rule the ranking metrics use, so the
item at position r of a list is exactly the item the metrics would give rank r.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from seqrec_cli.data.batches import gather_windows
from seqrec_cli.models import SequentialRecommender, autocast


@dataclass
class TopK:
    items: np.ndarray  # int64 [n, k] model item ids, best first; 0 where fewer than k items remain
    scores: np.ndarray  # float32 [n, k]; -inf where items is 0


def histories_matrix(histories: Sequence[np.ndarray], max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The last `max_len` items of each history as a right-padded matrix, and the lengths."""
    flat = np.concatenate([np.asarray(h, dtype=np.int64) for h in histories]) if histories else np.zeros(0, np.int64)
    ends = np.cumsum([len(h) for h in histories]).astype(np.int64)
    starts = ends - np.array([len(h) for h in histories], dtype=np.int64)
    return gather_windows(flat, starts, ends, max_len)


@dataclass
class _Rows:
    """The model's input for every history: right-padded windows, lengths, optional side inputs."""

    items: np.ndarray  # [n, max_len]
    lengths: np.ndarray  # [n]
    gaps: np.ndarray | None  # [n, max_len] time-gap buckets, for models that use them
    users: np.ndarray | None  # [n] model user rows

    def batch(self, rows: slice, device: torch.device) -> list[torch.Tensor | None]:
        """(items, lengths, gaps, users) of `rows` on `device`, as `last_hidden` takes them."""
        return [
            torch.as_tensor(a[rows], device=device) if a is not None else None
            for a in (self.items, self.lengths, self.gaps, self.users)
        ]


def top_k(
    model: SequentialRecommender,
    histories: Sequence[np.ndarray],
    k: int,
    *,
    exclude: Sequence[np.ndarray] | None,
    max_len: int,
    batch_size: int = 256,
    amp: bool = False,
    gaps: Sequence[np.ndarray] | None = None,
    users: np.ndarray | None = None,
    extra: torch.Tensor | None = None,
    allowed: np.ndarray | None = None,
) -> TopK:
    """The k best items after each history (each non-empty), best first.

    `exclude[i]` lists the items never to recommend after history i (None: exclude nothing);
    `max_len` is the input window the model was trained with (`model.max_len`). Models with
    time-gap features need `gaps` (bucket per history event); `users` gives model user rows
    (0 or None: the history alone). `extra` [m, dim] adds items the model never saw as ids
    n_items + 1.. (scored by the same dot product); `allowed` (bool, one per column) restricts
    the candidates.
    """
    if any(len(h) == 0 for h in histories):
        raise ValueError("every history needs at least one item")
    if model.uses_time_gaps and gaps is None:
        raise ValueError("this model uses time-gap features: pass gaps")
    device = next(model.parameters()).device
    items, lengths = histories_matrix(histories, max_len)
    gap_rows = histories_matrix(gaps, max_len)[0] if model.uses_time_gaps and gaps is not None else None
    rows = _Rows(items, lengths, gap_rows, users)
    n_items = model.n_items + (len(extra) if extra is not None else 0)
    blocked = torch.as_tensor(~allowed, device=device) if allowed is not None else None
    out = TopK(np.zeros((len(histories), k), dtype=np.int64), np.full((len(histories), k), -np.inf, dtype=np.float32))
    was_training = model.training
    model.eval()
    try:
        with model.precomputed_items():
            for start in range(0, len(histories), batch_size):
                batch = slice(start, min(start + batch_size, len(histories)))
                scores = _scores(model, rows.batch(batch, device), amp, extra)
                if blocked is not None:
                    scores[:, blocked] = float("-inf")
                if exclude is not None:
                    _exclude(scores, exclude, batch)
                _keep_best(scores, min(k, n_items), out, batch)
    finally:
        model.train(was_training)
    return out


def _scores(
    model: SequentialRecommender, inputs: list[torch.Tensor | None], amp: bool, extra: torch.Tensor | None
) -> torch.Tensor:
    """Float32 scores [b, n_items (+ len(extra))] of one batch of model inputs."""
    with torch.no_grad():
        with autocast(inputs[0].device, amp):
            hidden = model.last_hidden(*inputs)
        scores = model.scores(hidden.float())  # float32 as in evaluation: bf16 would tie items
    if extra is not None:
        scores = torch.cat([scores, hidden.float() @ extra.T], dim=1)
    return scores


def _exclude(scores: torch.Tensor, exclude: Sequence[np.ndarray], batch: slice) -> None:
    """-inf for every item a row of the batch must never get (`exclude[i]`, model ids)."""
    rows = np.concatenate([np.full(len(exclude[i]), i - batch.start) for i in range(batch.start, batch.stop)])
    cols = np.concatenate([np.asarray(exclude[i], dtype=np.int64) for i in range(batch.start, batch.stop)]) - 1
    device = scores.device
    scores[torch.as_tensor(rows.astype(np.int64), device=device), torch.as_tensor(cols, device=device)] = float("-inf")


def _keep_best(scores: torch.Tensor, k: int, out: TopK, batch: slice) -> None:
    """The `k` best columns of each row into `out` (ids from 1; 0 and -inf where none is left)."""
    # A stable descending sort keeps equal scores in item-id order (the metrics' tie rule).
    values, order = torch.sort(scores, dim=1, descending=True, stable=True)
    values, order = values[:, :k].cpu().numpy(), order[:, :k].cpu().numpy() + 1
    order[~np.isfinite(values)] = 0
    out.items[batch, :k] = order
    out.scores[batch, :k] = np.where(order > 0, values, -np.inf)
