"""Item embedding -> encoder -> a score for every item through the same (tied) embedding table."""

from __future__ import annotations

import torch
from torch import nn


class SequentialRecommender(nn.Module):
    """Scores the next item at every position of a right-padded item-id matrix.

    Item 0 is padding: its embedding row stays zero and it is never a valid prediction.
    """

    def __init__(self, n_items: int, dim: int, encoder: nn.Module, init_std: float) -> None:
        super().__init__()
        self.n_items = n_items
        self.item_embedding = nn.Embedding(n_items + 1, dim, padding_idx=0)
        # Small init keeps the first logits near zero, so the first loss is about ln(n_items).
        nn.init.normal_(self.item_embedding.weight, std=init_std)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()
        self.encoder = encoder

    def forward(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Hidden states [batch, length, dim]; position t summarises items[:, : t + 1]."""
        return self.encoder(self.item_embedding(items), lengths)

    def last_hidden(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The state after each row's last real item: what predicts the next one."""
        hidden = self(items, lengths)
        return hidden[torch.arange(len(items), device=items.device), lengths - 1]

    def scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """Scores for items 1..n_items (column j is item j + 1)."""
        return hidden @ self.item_embedding.weight[1:].T
