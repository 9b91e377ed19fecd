"""Losses over sampled negatives, for catalogues too large to score in full (and to reproduce
the papers that used them): sampled softmax with logQ correction, BCE (SASRec's original), gBCE
(gSASRec), BPR, and GRU4Rec's BPR-max and TOP1-max (seqrec_cli/training/gru4rec_losses.py).
Negatives are drawn or taken from the batch (seqrec_cli/training/negatives.py).

Each loss is split into a pure function of scores (tested on cases small enough to compute by
hand) and the sampling that feeds it. Negatives never count when they equal the positive at that
position: such "accidental hits" are masked out rather than resampled, so sampling stays one
vectorised draw.
"""

from __future__ import annotations

from typing import Callable, Optional

import numpy as np
import torch
import torch.nn.functional as F

from seqrec_cli.config.schema import LossConfig
from seqrec_cli.training.gru4rec_losses import bpr_max_from_scores, top1_max_from_scores
from seqrec_cli.training.negatives import NegativeSampler, sampling_distribution

__all__ = ["SampledLoss", "build_sampled_loss", "gbce_beta", "sampling_distribution"]

# A loss gets the model's item-embedding table, the hidden states at real positions and their
# target ids (1..n_items), and returns a scalar.
SampledLoss = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def sampled_softmax_from_scores(
    pos: torch.Tensor, neg: torch.Tensor, hit: torch.Tensor, log_q_pos: torch.Tensor, log_q_neg: torch.Tensor
) -> torch.Tensor:
    """Mean over rows of -log softmax([pos - logQ(pos), neg - logQ(neg)])[0]; `hit` masks negatives
    equal to the row's positive. pos [n], neg [n, k], hit [n, k] bool, log_q_* broadcastable."""
    logits = torch.cat([(pos - log_q_pos)[:, None], neg - log_q_neg], dim=1).float()
    logits[:, 1:] = logits[:, 1:].masked_fill(hit, float("-inf"))
    return (torch.logsumexp(logits, dim=1) - logits[:, 0]).mean()


def bce_from_scores(pos: torch.Tensor, neg: torch.Tensor, hit: torch.Tensor, beta: float = 1.0) -> torch.Tensor:
    """Mean over rows of -beta*log sigma(pos) - sum_j log(1 - sigma(neg_j)) over non-hit negatives.
    beta = 1 is SASRec's BCE; beta < 1 is gSASRec's generalised BCE."""
    pos_term = -beta * F.logsigmoid(pos.float())
    neg_term = (-F.logsigmoid(-neg.float())).masked_fill(hit, 0.0).sum(dim=1)
    return (pos_term + neg_term).mean()


def bpr_from_scores(pos: torch.Tensor, neg: torch.Tensor, hit: torch.Tensor) -> torch.Tensor:
    """Mean over rows and non-hit negatives of -log sigma(pos - neg)."""
    per_pair = -F.logsigmoid((pos[:, None] - neg).float())
    keep = (~hit).float()
    return ((per_pair * keep).sum(dim=1) / keep.sum(dim=1).clamp(min=1.0)).mean()


def gbce_beta(n_negatives: int, n_items: int, t: float) -> float:
    """gSASRec's beta = alpha * (t * (1 - 1/alpha) + 1/alpha), alpha = k / (n_items - 1) the
    sampling rate; t = 0 gives plain BCE (beta = 1), t = 1 gives beta = alpha."""
    alpha = n_negatives / max(n_items - 1, 1)
    return alpha * (t * (1.0 - 1.0 / alpha) + 1.0 / alpha)


def build_sampled_loss(
    cfg: LossConfig, item_counts: np.ndarray, generator: Optional[torch.Generator] = None, only_trained: bool = False
) -> SampledLoss:
    """The configured sampled loss; negatives come from `NegativeSampler` (seqrec_cli/training/negatives.py);
    `only_trained`: items without training events are never drawn."""
    sampler = NegativeSampler(cfg, item_counts, generator, only_trained=only_trained)
    n_items, k = len(item_counts) - 1, cfg.n_negatives
    beta = gbce_beta(k, n_items, cfg.gbce_t) if cfg.name == "gbce" else 1.0
    # Drawn negatives per position for BCE / gBCE / BPR (as their papers draw them) and for sampled
    # softmax with share_negatives=false; one set shared by the batch (one [n, k] matmul) otherwise:
    # GRU4Rec shares its extra samples across the mini-batch. In-batch and mixed are always shared.
    per_row = cfg.name in ("bce", "gbce", "bpr") or (cfg.name == "sampled_softmax" and not cfg.share_negatives)

    def loss(weight: torch.Tensor, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        pos = (hidden * weight[targets]).sum(dim=1)
        negatives = sampler(targets, per_row)
        if negatives.shared:
            neg = hidden @ weight[negatives.items].T
            hit = negatives.items[None, :] == targets[:, None]
        else:
            neg = torch.einsum("nd,nkd->nk", hidden, weight[negatives.items])
            hit = negatives.items == targets[:, None]
        if cfg.name == "sampled_softmax":
            log_q_pos = sampler.log_q_positive(targets) if cfg.logq_correction else torch.zeros_like(pos)
            log_q_neg = negatives.log_q.expand_as(neg) if cfg.logq_correction else torch.zeros_like(neg)
            return sampled_softmax_from_scores(pos, neg, hit, log_q_pos, log_q_neg)
        if cfg.name == "bpr":
            return bpr_from_scores(pos, neg, hit)
        if cfg.name == "bpr_max":
            return bpr_max_from_scores(pos, neg, hit, cfg.bpreg)
        if cfg.name == "top1_max":
            return top1_max_from_scores(pos, neg, hit)
        return bce_from_scores(pos, neg, hit, beta)

    return loss
