"""Training losses over the hidden states at real (non-padding) positions."""

from __future__ import annotations

from typing import Any, Callable, Optional

import numpy as np
import torch

from seqrec_cli.config.schema import LossConfig
from seqrec_cli.models import SequentialRecommender
from seqrec_cli.training.sampled_losses import build_sampled_loss

Loss = Callable[[SequentialRecommender, torch.Tensor, torch.Tensor], torch.Tensor]

# Logit elements per chunk: ~16 MB of float32 on the CPU (stays in cache-friendly, reused
# allocations), ~256 MB on a GPU (large enough to keep its matmuls efficient).
CPU_CHUNK_ELEMENTS = 4 * 2**20
GPU_CHUNK_ELEMENTS = 64 * 2**20


class _ChunkedSoftmaxCrossEntropy(torch.autograd.Function):
    """Mean softmax cross-entropy whose gradients are computed chunk by chunk during the forward.

    Plain `F.cross_entropy(hidden @ W.T, targets)` materialises and keeps the whole
    [positions, items] logit matrix for the backward pass (about 190 MB per batch on
    MovieLens latest-small, 2.8 GB on ML-20M), and on the CPU most of its time goes to faulting in
    those fresh pages. Here each chunk of positions computes its logits, loss and the two
    gradients (d hidden = (softmax - onehot) W, d W = (softmax - onehot)^T hidden) and frees the
    logits before the next chunk; backward only scales the stored gradients. Same three matmuls
    per element as autograd, peak memory bounded by one chunk. Measured on 2 CPU cores (13k
    positions x 3,650 items): see docs/PERFORMANCE.md.
    """

    @staticmethod
    def forward(
        ctx: Any, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int
    ) -> torch.Tensor:
        n = hidden.shape[0]
        needs_grad = hidden.requires_grad or weight.requires_grad
        grad_hidden = torch.empty(hidden.shape, dtype=torch.float32, device=hidden.device) if needs_grad else None
        grad_weight = torch.zeros(weight.shape, dtype=torch.float32, device=weight.device) if needs_grad else None
        total = torch.zeros((), dtype=torch.float32, device=hidden.device)
        for start in range(0, n, chunk):
            h, t = hidden[start : start + chunk], targets[start : start + chunk]
            logits = (h @ weight.T).float()
            lse = torch.logsumexp(logits, dim=1)
            total += (lse - logits.gather(1, t[:, None]).squeeze(1)).sum()
            if needs_grad:
                probs = logits.sub_(lse[:, None]).exp_()
                probs[torch.arange(len(t), device=t.device), t] -= 1.0
                probs = probs.to(h.dtype)
                grad_hidden[start : start + chunk] = probs @ weight
                grad_weight += (probs.T @ h).float()
        if needs_grad:
            ctx.save_for_backward(grad_hidden.div_(n), grad_weight.div_(n))
            ctx.dtypes = (hidden.dtype, weight.dtype)
        return total / n

    @staticmethod
    def backward(ctx: Any, grad_out: torch.Tensor) -> tuple:
        grad_hidden, grad_weight = ctx.saved_tensors
        h_dtype, w_dtype = ctx.dtypes
        return (grad_hidden * grad_out).to(h_dtype), (grad_weight * grad_out).to(w_dtype), None, None


def chunked_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Mean CE of `hidden @ weight.T` against `targets` (column indices), chunked (see above)."""
    budget = GPU_CHUNK_ELEMENTS if hidden.is_cuda else CPU_CHUNK_ELEMENTS
    chunk = max(1, budget // max(weight.shape[0], 1))
    if hidden.shape[0] == 0:
        return hidden.sum() * 0.0
    return _ChunkedSoftmaxCrossEntropy.apply(hidden, weight, targets, chunk)


def full_cross_entropy(model: SequentialRecommender, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Softmax cross-entropy over the whole catalogue (SASRec+ / "CE"), mean over positions.

    `hidden` is [n, dim] for the real positions only and `targets` their item ids (1..n_items).
    Scoring the full catalogue beats BCE with one sampled negative by 20-70% on the published
    benchmarks, which is why it is the default. Logits are float32 even under bf16 autocast.
    """
    if model.item_repr is None:
        return chunked_cross_entropy(hidden, model.item_embedding.weight[1:], targets - 1)
    # With features, only items with training events are in the softmax (models/item_repr.py).
    items = model.item_repr
    return chunked_cross_entropy(hidden, model.item_table()[items.softmax_items], items.softmax_index[targets])


def build_loss(cfg: LossConfig, item_counts: Optional[np.ndarray] = None, only_trained: bool = False) -> Loss:
    """The configured loss. Sampled losses need the training item counts (popularity sampling,
    logQ correction); negatives are drawn from torch's global RNG, so a seeded or resumed run
    draws the same ones. `only_trained` (models with item features): negatives are drawn only
    among items with training events, and are scored through the model's item table."""
    if cfg.name == "ce":
        return full_cross_entropy
    if item_counts is None:
        raise ValueError(f"loss {cfg.name!r} needs the training item counts")
    sampled = build_sampled_loss(cfg, item_counts, only_trained=only_trained)
    return lambda model, hidden, targets: sampled(model.item_table(), hidden, targets)
