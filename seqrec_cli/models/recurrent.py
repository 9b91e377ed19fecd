"""GRU and LSTM encoders (GRU4Rec-style, trained on every position like SASRec).

Dropout on the input embeddings and on the outputs, optional stacking, and a projection back to
the embedding size when the recurrent state is wider or narrower, so scores can always use the
tied item embeddings. Rows are right-padded: a recurrent step only looks back, so padding at the
end never changes a real position's output.
"""

from __future__ import annotations

import torch
from torch import nn


class RecurrentEncoder(nn.Module):
    def __init__(self, kind: str, dim: int, hidden_size: int, num_layers: int, dropout: float) -> None:
        super().__init__()
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[kind]
        self.rnn = rnn(dim, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0)
        self.in_drop = nn.Dropout(dropout)
        self.out_drop = nn.Dropout(dropout)
        self.proj = nn.Linear(hidden_size, dim) if hidden_size != dim else nn.Identity()

    def forward(self, emb: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.in_drop(emb))
        return self.proj(self.out_drop(out))
