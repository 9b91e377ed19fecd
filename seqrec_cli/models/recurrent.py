"""GRU and LSTM encoders (GRU4Rec-style, trained on every position like SASRec), and a GRU with
causal attention over its own earlier states (the NARM-like "RNN with attention on top").

Dropout on the input embeddings and on the outputs, optional stacking, and a projection back to
the embedding size when the recurrent state is wider or narrower, so scores can always use the
tied item embeddings. Rows are right-padded: a recurrent step only looks back, so padding at the
end never changes a real position's output.

GRU4Rec's own options (Hidasi & Czapp 2023 list them among what third-party copies miss):
`embedding_dropout` apart from the dropout on the hidden state, and `one_hot` input, where the
first layer reads an item's one-hot vector. One-hot times the input weights is one column of
them, so the model hands this encoder an input table `gates x hidden` wide (one row per item:
that column) and the layer's own input weights are a fixed identity.
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn


def at_last(states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """The state [b, dim] at each row's last real position."""
    return states[torch.arange(states.shape[0], device=states.device), lengths - 1]


GATES = {"gru": 3, "lstm": 4}


def one_hot_width(kind: str, hidden_size: int) -> int:
    """The width of a one-hot encoder's input table: the first layer's gate inputs."""
    return GATES[kind] * hidden_size


class RecurrentEncoder(nn.Module):
    def __init__(
        self,
        kind: str,
        dim: int,
        hidden_size: int,
        num_layers: int,
        dropout: float,
        *,
        embedding_dropout: Optional[float] = None,
        one_hot: bool = False,
    ) -> None:
        super().__init__()
        rnn = {"gru": nn.GRU, "lstm": nn.LSTM}[kind]
        width = one_hot_width(kind, hidden_size) if one_hot else dim
        self.rnn = rnn(width, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0)
        if one_hot:
            # The input table's row is the gate input itself: identity input weights, not trained.
            with torch.no_grad():
                self.rnn.weight_ih_l0.copy_(torch.eye(width))
            self.rnn.weight_ih_l0.requires_grad_(False)
        self.in_drop = nn.Dropout(dropout if embedding_dropout is None else embedding_dropout)
        self.out_drop = nn.Dropout(dropout)
        self.proj = nn.Linear(hidden_size, dim) if hidden_size != dim else nn.Identity()

    def forward(self, emb: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(self.in_drop(emb))
        return self.proj(self.out_drop(out))

    def last(self, emb: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The state after each row's last real item; the projection runs on that row only."""
        out, _ = self.rnn(self.in_drop(emb))
        return self.proj(self.out_drop(at_last(out, lengths)))


class RecurrentAttentionEncoder(nn.Module):
    """A GRU whose state at each position is joined by an attention summary of the states so far.

    The GRU state h_t carries the sequence's recent drift; attention with h_t as the query over
    h_1..h_t picks out the earlier items that matter for the next one (NARM's local encoder, made
    causal so every position trains). The two are concatenated and projected to the embedding
    size. The causal mask keeps right padding invisible to real positions.
    """

    def __init__(self, dim: int, hidden_size: int, num_layers: int, num_heads: int, dropout: float) -> None:
        super().__init__()
        self.num_heads = num_heads
        self.rnn = nn.GRU(dim, hidden_size, num_layers, batch_first=True, dropout=dropout if num_layers > 1 else 0.0)
        self.in_drop = nn.Dropout(dropout)
        self.query = nn.Linear(hidden_size, hidden_size)
        self.key = nn.Linear(hidden_size, hidden_size)
        self.out_drop = nn.Dropout(dropout)
        self.proj = nn.Linear(2 * hidden_size, dim)

    def forward(self, emb: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h, _ = self.rnn(self.in_drop(emb))
        b, length, size = h.shape

        def heads(x: torch.Tensor) -> torch.Tensor:
            return x.view(b, length, self.num_heads, size // self.num_heads).transpose(1, 2)

        context = F.scaled_dot_product_attention(heads(self.query(h)), heads(self.key(h)), heads(h), is_causal=True)
        context = context.transpose(1, 2).reshape(b, length, size)
        return self.proj(self.out_drop(torch.cat([h, context], dim=-1)))

    def last(self, emb: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The state after each row's last real item."""
        return at_last(self(emb, lengths), lengths)
