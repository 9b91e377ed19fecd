"""GRU4Rec's ranking losses (Hidasi & Karatzoglou, CIKM 2018), as pure functions of scores.

Both weigh each negative j by s_j, the softmax of the negatives' scores, so that the loss looks
mostly at the negatives scored highest (the "-max" of their names), which keeps the gradient
alive with many negatives where plain BPR / TOP1 averages it away:

- BPR-max: -log sum_j s_j sigmoid(r_pos - r_j) + bpreg * sum_j s_j r_j^2
- TOP1-max: sum_j s_j (sigmoid(r_j - r_pos) + sigmoid(r_j^2))

Negatives equal to the row's positive (`hit`) get no weight; a row left with no negative at all
adds nothing (and does not count in the mean).
"""

from __future__ import annotations

import torch


def _negative_weights(neg: torch.Tensor, hit: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(s [n, k]: softmax over each row's non-hit negatives, 0 on hits; rows with any negative)."""
    keep = ~hit
    logits = neg.float().masked_fill(hit, torch.finfo(torch.float32).min)
    weights = torch.softmax(logits, dim=1) * keep
    return weights, keep.any(dim=1)


def _row_mean(per_row: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    return (per_row * rows).sum() / rows.sum().clamp(min=1)


def bpr_max_from_scores(pos: torch.Tensor, neg: torch.Tensor, hit: torch.Tensor, bpreg: float) -> torch.Tensor:
    """Mean over rows of BPR-max with score regularisation (module docstring). pos [n], neg/hit [n, k]."""
    s, rows = _negative_weights(neg, hit)
    neg32 = neg.float()
    ranked = (s * torch.sigmoid(pos.float()[:, None] - neg32)).sum(dim=1)
    per_row = -torch.log(ranked + 1e-24) + bpreg * (s * neg32**2).sum(dim=1)
    return _row_mean(per_row, rows)


def top1_max_from_scores(pos: torch.Tensor, neg: torch.Tensor, hit: torch.Tensor) -> torch.Tensor:
    """Mean over rows of TOP1-max (module docstring). pos [n], neg/hit [n, k]."""
    s, rows = _negative_weights(neg, hit)
    neg32 = neg.float()
    per_row = (s * (torch.sigmoid(neg32 - pos.float()[:, None]) + torch.sigmoid(neg32**2))).sum(dim=1)
    return _row_mean(per_row, rows)
