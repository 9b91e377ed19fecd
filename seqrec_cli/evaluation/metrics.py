"""Full-ranking metrics with the tie and masking rules of docs/ARCHITECTURE.md.

The rank of a target is the number of items scoring strictly higher plus the number scoring
exactly the same with a smaller item id, so ties are broken deterministically and a model that
scores everything equal gets no credit for it. Items in the user's history (except the target
itself) can be masked out. No sort of the catalogue is needed: counting is O(items) per user.
Ranks are integers, so metrics computed from them do not depend on how users were batched.
"""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np
import torch


def target_ranks(
    scores: torch.Tensor,
    targets: torch.Tensor,
    history_rows: Optional[torch.Tensor] = None,
    history_cols: Optional[torch.Tensor] = None,
    buffer: Optional[torch.Tensor] = None,
) -> torch.Tensor:
    """0-based rank of each row's target column among all columns.

    `scores` [batch, n]: higher is better (it is modified in place when a history is given).
    `targets` [batch]: the target column per row. `history_rows` / `history_cols`: (row, column)
    pairs to exclude from the ranking, e.g. the user's already-seen items. `buffer`: optional
    float32 scratch space shaped like `scores`, for callers that rank many batches.
    """
    target_scores = scores.gather(1, targets[:, None])
    if history_rows is not None and len(history_rows):
        scores.index_put_(
            (history_rows, history_cols), torch.tensor(float("-inf"), device=scores.device, dtype=scores.dtype)
        )
        scores.scatter_(1, targets[:, None], target_scores)
    # Comparisons are written into a float buffer and summed: a CPU reduction over a bool tensor
    # is several times slower (docs/PERFORMANCE.md). Sums of 0/1 are exact in float32 up to 2**24 columns.
    if buffer is None or scores.shape[1] >= 2**24:
        buffer = torch.empty(
            scores.shape, dtype=torch.float32 if scores.shape[1] < 2**24 else torch.float64, device=scores.device
        )
    ranks = torch.gt(scores, target_scores, out=buffer).sum(1).long()
    ties = torch.eq(scores, target_scores, out=buffer).sum(1)
    tied = torch.nonzero(ties > 1).flatten()  # rows where another item equals the target's score
    if len(tied):
        columns = torch.arange(scores.shape[1], device=scores.device)
        before = (scores[tied] == target_scores[tied]) & (columns[None, :] < targets[tied, None])
        ranks[tied] += before.sum(1)
    return ranks


def ranking_metrics(ranks: np.ndarray, ks: Sequence[int]) -> dict[str, float]:
    """HR@K, NDCG@K (one relevant item) and untruncated MRR, averaged over rows."""
    ranks = np.asarray(ranks, dtype=np.float64)
    if len(ranks) == 0:
        return {}
    out: dict[str, float] = {}
    gain = 1.0 / np.log2(ranks + 2.0)
    for k in ks:
        out[f"hr@{k}"] = float(np.mean(ranks < k))
    for k in ks:
        out[f"ndcg@{k}"] = float(np.mean(np.where(ranks < k, gain, 0.0)))
    out["mrr"] = float(np.mean(1.0 / (ranks + 1.0)))
    return out
