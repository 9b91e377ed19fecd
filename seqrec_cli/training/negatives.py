"""Where a sampled loss's negatives come from (loss.sampling) and the log-probability of each.

- `uniform` / `popularity`: drawn from `sampling_distribution` (count ** popularity_alpha), either
  one set for the whole batch (`share_negatives`) or a set per position.
- `in_batch`: the targets of the batch's other positions. An item turns up there as often as it is
  a target, so its sampling probability is its training frequency, and logQ correction subtracts
  log(count / total) (Yi et al., RecSys 2019).
- `mixed`: the batch's targets plus `n_negatives` drawn ~ count ** popularity_alpha, shared by the
  batch (eSASRec's mixed negatives with popularity_alpha=0; GRU4Rec's extra samples with its
  sample_alpha); each column keeps the log-probability of the source it came from.

Columns equal to a row's positive ("accidental hits", including the row's own target among the
in-batch ones) are masked by the losses, never scored as negatives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

from seqrec_cli.config.schema import LossConfig


@dataclass
class Negatives:
    """Negative item ids and their log sampling probabilities: [k] shared by every row, or [n, k]."""

    items: torch.Tensor
    log_q: torch.Tensor

    @property
    def shared(self) -> bool:
        return self.items.ndim == 1


def sampling_distribution(cfg: LossConfig, item_counts: np.ndarray, only_trained: bool = False) -> torch.Tensor:
    """Probability of drawing each item 1..n_items as a negative (index 0 = item 1);
    `only_trained` (models with item features): items without training events are never drawn."""
    n_items = len(item_counts) - 1
    if cfg.sampling == "popularity" or cfg.sampling == "mixed":
        weights = np.maximum(item_counts[1:].astype(np.float64) ** cfg.popularity_alpha, 1e-12)
    else:
        weights = np.ones(n_items)
    if only_trained:
        weights = np.where(item_counts[1:] > 0, weights, 0.0)
    return torch.as_tensor(weights / weights.sum(), dtype=torch.float32)


def target_frequency(item_counts: np.ndarray) -> torch.Tensor:
    """Each item's share of the training targets (index 0 = item 1): the in-batch sampling probability."""
    counts = np.maximum(item_counts[1:].astype(np.float64), 1e-12)
    return torch.as_tensor(counts / counts.sum(), dtype=torch.float32)


class NegativeSampler:
    """Draws the configured negatives for a batch of targets; holds the two distributions."""

    def __init__(
        self,
        cfg: LossConfig,
        item_counts: np.ndarray,
        generator: Optional[torch.Generator] = None,
        only_trained: bool = False,
    ) -> None:
        self.mode, self.k, self.share = cfg.sampling, cfg.n_negatives, cfg.share_negatives
        self.probs = sampling_distribution(cfg, item_counts, only_trained)
        self.freq = target_frequency(item_counts)
        self.generator = generator

    def log_q_positive(self, targets: torch.Tensor) -> torch.Tensor:
        """log q of each positive under the distribution its negatives come from."""
        table = self.freq if self.mode in ("in_batch", "mixed") else self.probs
        return torch.log(table.to(targets.device))[targets - 1]

    def _draw(self, shape: tuple[int, ...], device: torch.device) -> torch.Tensor:
        flat = torch.multinomial(self.probs.to(device), int(np.prod(shape)), replacement=True, generator=self.generator)
        return flat.view(shape) + 1  # item ids

    def __call__(self, targets: torch.Tensor, per_row: bool) -> Negatives:
        """Negatives for `targets` [n]; `per_row` asks for a set per position (drawn modes only)."""
        device = targets.device
        log_probs, log_freq = torch.log(self.probs.to(device)), torch.log(self.freq.to(device))
        if self.mode == "in_batch":
            return Negatives(targets, log_freq[targets - 1])
        if self.mode == "mixed":
            drawn = self._draw((self.k,), device)
            return Negatives(torch.cat([targets, drawn]), torch.cat([log_freq[targets - 1], log_probs[drawn - 1]]))
        items = self._draw((len(targets), self.k) if per_row else (self.k,), device)
        return Negatives(items, log_probs[items - 1])
