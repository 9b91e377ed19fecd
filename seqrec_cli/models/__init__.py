"""Model construction from config: one function, so callers never import encoder classes."""

from __future__ import annotations

from torch import nn

from seqrec_cli.config import EncoderConfig, ModelConfig
from seqrec_cli.models.attention import AttentionEncoder
from seqrec_cli.models.recommender import SequentialRecommender
from seqrec_cli.models.recurrent import RecurrentEncoder

__all__ = ["SequentialRecommender", "build", "count_parameters"]


def build(model: ModelConfig, encoder: EncoderConfig, n_items: int) -> SequentialRecommender:
    dim = model.embedding_dim
    if encoder.name == "attention":
        enc: nn.Module = AttentionEncoder(
            dim, model.max_len, encoder.num_layers, encoder.num_heads,
            encoder.ffn_size or dim, encoder.dropout, encoder.pre_norm,
        )
    else:
        enc = RecurrentEncoder(encoder.name, dim, encoder.hidden_size or dim, encoder.num_layers, encoder.dropout)
    return SequentialRecommender(n_items, dim, enc, model.init_std)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
