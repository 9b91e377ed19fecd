"""Model construction from config: one function, so callers never import encoder classes."""

from __future__ import annotations

from torch import nn

from seqrec_cli.config.schema import EncoderConfig, ModelConfig
from seqrec_cli.data.batches import N_GAP_BUCKETS
from seqrec_cli.models.attention import AttentionEncoder
from seqrec_cli.models.recommender import MIN_ROWS, SequentialRecommender, at_least_rows
from seqrec_cli.models.recurrent import RecurrentAttentionEncoder, RecurrentEncoder, one_hot_width

__all__ = ["MIN_ROWS", "SequentialRecommender", "at_least_rows", "build", "count_parameters"]


def build(
    model: ModelConfig, encoder: EncoderConfig, n_items: int, n_user_rows: int = 0, objective: str = "next"
) -> SequentialRecommender:
    """The configured model; `n_user_rows` (trained users + 1) sizes the user table when
    `model.user_embedding` is on; `objective="masked"` makes BERT4Rec's (bidirectional attention
    and a mask token)."""
    dim = model.embedding_dim
    hidden = encoder.hidden_size or dim
    masked = objective == "masked"
    if masked and (encoder.name != "attention" or encoder.time_features != "none"):
        raise ValueError("objective=masked needs encoder=attention without time features")
    one_hot = encoder.input == "one_hot"
    if one_hot and encoder.name not in ("gru", "lstm"):
        raise ValueError("encoder.input=one_hot needs encoder=gru or lstm")
    if encoder.name == "attention":
        enc: nn.Module = AttentionEncoder(
            dim,
            model.max_len,
            encoder.num_layers,
            encoder.num_heads,
            encoder.ffn_size or dim,
            encoder.dropout,
            encoder.pre_norm,
            encoder.block,
            causal=not masked,
            embedding_dropout=encoder.embedding_dropout,
        )
    elif encoder.name == "gru_attention":
        enc = RecurrentAttentionEncoder(dim, hidden, encoder.num_layers, encoder.num_heads, encoder.dropout)
    else:
        enc = RecurrentEncoder(
            encoder.name, dim, hidden, encoder.num_layers, encoder.dropout, encoder.embedding_dropout, one_hot
        )
    gap_buckets = N_GAP_BUCKETS if encoder.time_features == "gap" else 0
    user_rows = n_user_rows if model.user_embedding else 0
    if model.user_embedding and n_user_rows < 1:
        raise ValueError("model.user_embedding needs n_user_rows >= 1")
    input_width = one_hot_width(encoder.name, hidden) if one_hot else 0
    mask_len = model.max_len if masked else 0
    return SequentialRecommender(n_items, dim, enc, model.init_std, gap_buckets, user_rows, mask_len, input_width)


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
