"""Model construction from config: one function, so callers never import encoder classes."""

from __future__ import annotations

from torch import nn

from typing import Any, Optional

from seqrec_cli.config.feature_checks import item_repr as item_repr_name
from seqrec_cli.config.schema import EncoderConfig, ModelConfig
from seqrec_cli.data.batches import N_GAP_BUCKETS
from seqrec_cli.models.attention import AttentionEncoder
from seqrec_cli.models.precision import autocast
from seqrec_cli.models.recommender import MIN_ROWS, SequentialRecommender, at_least_rows
from seqrec_cli.models.recurrent import RecurrentAttentionEncoder, RecurrentEncoder, one_hot_width

__all__ = ["MIN_ROWS", "SequentialRecommender", "at_least_rows", "autocast", "build", "count_parameters"]


def build(
    model: ModelConfig,
    encoder: EncoderConfig,
    n_items: int,
    n_user_rows: int = 0,
    *,
    objective: str = "next",
    feature_meta: Optional[dict[str, Any]] = None,
) -> SequentialRecommender:
    """The configured model; `n_user_rows` (trained users + 1) sizes the user table when
    `model.user_embedding` is on; `objective="masked"` makes BERT4Rec's (bidirectional attention
    and a mask token); `feature_meta` (`ItemFeatures.meta`) sizes the feature embeddings when
    `model.item_repr` uses features (load the catalogue with `model.item_repr.set_catalogue`, or a
    state dict)."""
    dim = model.embedding_dim
    hidden = encoder.hidden_size or dim
    masked = objective == "masked"
    if masked and (encoder.name != "attention" or encoder.time_features != "none"):
        raise ValueError("objective=masked needs encoder=attention without time features")
    one_hot = encoder.input == "one_hot"
    if one_hot and encoder.name not in ("gru", "lstm"):
        raise ValueError("encoder.input=one_hot needs encoder=gru or lstm")
    enc = _encoder(model, encoder, causal=not masked, one_hot=one_hot)
    gap_buckets = N_GAP_BUCKETS if encoder.time_features == "gap" else 0
    user_rows = n_user_rows if model.user_embedding else 0
    if model.user_embedding and n_user_rows < 1:
        raise ValueError("model.user_embedding needs n_user_rows >= 1")
    input_width = one_hot_width(encoder.name, hidden) if one_hot else 0
    mask_len = model.max_len if masked else 0
    return SequentialRecommender(
        n_items,
        dim,
        enc,
        model.init_std,
        n_gap_buckets=gap_buckets,
        n_user_rows=user_rows,
        mask_len=mask_len,
        input_width=input_width,
        item_repr=_item_representation(model, feature_meta, n_items),
    )


def _encoder(model: ModelConfig, encoder: EncoderConfig, *, causal: bool, one_hot: bool) -> nn.Module:
    """The configured sequence encoder: attention, GRU / LSTM, or a GRU with attention over its states."""
    dim = model.embedding_dim
    hidden = encoder.hidden_size or dim
    if encoder.name == "attention":
        return AttentionEncoder(
            dim,
            model.max_len,
            encoder.num_layers,
            encoder.num_heads,
            encoder.ffn_size or dim,
            encoder.dropout,
            pre_norm=encoder.pre_norm,
            block=encoder.block,
            causal=causal,
            embedding_dropout=encoder.embedding_dropout,
        )
    if encoder.name == "gru_attention":
        return RecurrentAttentionEncoder(dim, hidden, encoder.num_layers, encoder.num_heads, encoder.dropout)
    return RecurrentEncoder(
        encoder.name,
        dim,
        hidden,
        encoder.num_layers,
        encoder.dropout,
        embedding_dropout=encoder.embedding_dropout,
        one_hot=one_hot,
    )


def _item_representation(
    model: ModelConfig, feature_meta: Optional[dict[str, Any]], n_items: int
) -> Optional[nn.Module]:
    repr_name = item_repr_name(model)
    if repr_name == "id":
        return None
    if feature_meta is None:
        raise ValueError(f"model.item_repr={repr_name} needs the item features' meta")
    from seqrec_cli.models.item_repr import ItemRepresentation

    return ItemRepresentation(
        feature_meta,
        n_items,
        model.embedding_dim,
        model.init_std,
        use_id=repr_name == "id+features",
        combine=model.feature_combine,
        id_dropout=model.id_dropout,
    )


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
