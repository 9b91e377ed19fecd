"""SASRec-style causal self-attention encoder.

Learned position embeddings indexed from the end of the window (as SASRec's left padding does:
the most recent item always sits at position max_len - 1), blocks of multi-head causal
self-attention and a point-wise feed-forward net with residuals and layer norm (pre-LN or post-LN),
and a final layer norm. Rows are right-padded, so with the causal mask a real position never
attends to padding; padding positions are zeroed after every block so they carry nothing.

`block="ligr"` swaps in the LiGR layer that eSASRec uses (Borisyuk et al. 2025, "From Features to
Transformers"; Tikhonovich et al., RecSys 2025): pre-LN, each residual branch scaled by a learned
sigmoid gate of the block's input, and a SwiGLU feed-forward net. eSASRec's best Amazon Beauty
HR@10 (the bar in docs/REFERENCES.md) came from these layers.

`causal=False` is BERT4Rec's encoder (objective=masked): every position attends to every real
position of its row, before and after it. Right padding must then be hidden explicitly, so the
attention gets a key mask of the real positions instead of the causal mask.

`last` serves evaluation and recommendation, which need only the state after each row's last
item: after the final block's attention, its output projection, layer norms and feed-forward net
run on that one position per row (with one block, about half the encoder's work). The operations
are the same as in `forward`, so the result equals it at that position: bit for bit for a
validation batch of 943 ML-100K users, and within float rounding where the BLAS library picks
another kernel for a handful of rows (tested).
"""

from __future__ import annotations

from typing import Optional

import torch
import torch.nn.functional as F
from torch import nn

from seqrec_cli.config.schema import ATTENTION_BLOCKS


class SwiGLU(nn.Module):
    """LiGR's feed-forward net: silu(x W) * (x V), then back to `dim` (no biases, as in LiGR)."""

    def __init__(self, dim: int, ffn_size: int, dropout: float) -> None:
        super().__init__()
        self.up = nn.Linear(dim, 2 * ffn_size, bias=False)
        self.drop = nn.Dropout(dropout)
        self.down = nn.Linear(ffn_size, dim, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, value = self.up(x).chunk(2, dim=-1)
        return self.down(self.drop(F.silu(gate) * value))


class AttentionBlock(nn.Module):
    def __init__(
        self, dim: int, num_heads: int, ffn_size: int, dropout: float, pre_norm: bool, block: str = "sasrec"
    ) -> None:
        super().__init__()
        if block not in ATTENTION_BLOCKS:
            raise ValueError(f"unknown attention block {block!r}")
        if block == "ligr" and not pre_norm:
            raise ValueError("the LiGR block is pre-LN only")
        self.num_heads = num_heads
        self.pre_norm = pre_norm
        self.dropout = dropout
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        gated = block == "ligr"
        self.ffn: nn.Module = (
            SwiGLU(dim, ffn_size, dropout)
            if gated
            else nn.Sequential(nn.Linear(dim, ffn_size), nn.GELU(), nn.Dropout(dropout), nn.Linear(ffn_size, dim))
        )
        # LiGR's residual gates; None in SASRec's block.
        self.gate_attn = nn.Linear(dim, dim) if gated else None
        self.gate_ffn = nn.Linear(dim, dim) if gated else None
        self.norm_attn = nn.LayerNorm(dim)
        self.norm_ffn = nn.LayerNorm(dim)
        self.drop = nn.Dropout(dropout)

    def _residual(self, x: torch.Tensor, branch: torch.Tensor, gate: Optional[nn.Module]) -> torch.Tensor:
        """x + branch, the branch scaled by LiGR's sigmoid gate of x when the block has one."""
        if gate is None:
            return x + self.drop(branch)
        return x + torch.sigmoid(gate(x)) * self.drop(branch)

    def _attention(self, x: torch.Tensor, keys: Optional[torch.Tensor]) -> torch.Tensor:
        """Multi-head attention [b, heads, length, head size]: causal when `keys` is None, else over
        the real positions `keys` [b, 1, 1, length] (bool) in both directions."""
        b, length, dim = x.shape
        q, k, v = self.qkv(x).view(b, length, 3, self.num_heads, dim // self.num_heads).permute(2, 0, 3, 1, 4)
        # SDPA picks a fused kernel (flash / memory-efficient) where the device has one.
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=keys, is_causal=keys is None, dropout_p=self.dropout if self.training else 0.0
        )

    def attend(self, x: torch.Tensor, keys: Optional[torch.Tensor] = None) -> torch.Tensor:
        b, length, dim = x.shape
        return self.out(self._attention(x, keys).transpose(1, 2).reshape(b, length, dim))

    def attend_last(self, x: torch.Tensor, last: torch.Tensor, keys: Optional[torch.Tensor] = None) -> torch.Tensor:
        """`attend`'s output [b, dim] at position `last[i]` of each row only. The projections and
        the attention run exactly as in `attend` (a single-query kernel would round differently);
        only the output projection is skipped for the other positions."""
        b, length, dim = x.shape
        y = self._attention(x, keys)
        y_last = y.transpose(1, 2)[torch.arange(b, device=x.device), last]  # [b, heads, head size]
        return self.out(y_last.reshape(b, dim))

    def forward(self, x: torch.Tensor, keys: Optional[torch.Tensor] = None) -> torch.Tensor:
        if self.pre_norm:
            x = self._residual(x, self.attend(self.norm_attn(x), keys), self.gate_attn)
            return self._residual(x, self.ffn(self.norm_ffn(x)), self.gate_ffn)
        x = self.norm_attn(x + self.drop(self.attend(x, keys)))
        return self.norm_ffn(x + self.drop(self.ffn(x)))

    def forward_last(self, x: torch.Tensor, last: torch.Tensor, keys: Optional[torch.Tensor] = None) -> torch.Tensor:
        """`forward`'s output [b, dim] at position `last[i]` of each row only."""
        x_last = x[torch.arange(x.shape[0], device=x.device), last]
        if self.pre_norm:
            y = self._residual(x_last, self.attend_last(self.norm_attn(x), last, keys), self.gate_attn)
            return self._residual(y, self.ffn(self.norm_ffn(y)), self.gate_ffn)
        y = self.norm_attn(x_last + self.drop(self.attend_last(x, last, keys)))
        return self.norm_ffn(y + self.drop(self.ffn(y)))


class AttentionEncoder(nn.Module):
    def __init__(
        self,
        dim: int,
        max_len: int,
        num_blocks: int,
        num_heads: int,
        ffn_size: int,
        dropout: float,
        *,
        pre_norm: bool,
        block: str = "sasrec",
        causal: bool = True,
        embedding_dropout: Optional[float] = None,
    ) -> None:
        super().__init__()
        self.max_len = max_len
        self.causal = causal
        self.scale = dim**0.5
        self.positions = nn.Embedding(max_len, dim)
        self.drop = nn.Dropout(dropout if embedding_dropout is None else embedding_dropout)
        self.blocks = nn.ModuleList(
            AttentionBlock(dim, num_heads, ffn_size, dropout, pre_norm, block) for _ in range(num_blocks)
        )
        self.final_norm = nn.LayerNorm(dim) if pre_norm else nn.Identity()

    def _inputs(self, emb: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        steps = torch.arange(emb.shape[1], device=emb.device)
        real = (steps[None, :] < lengths[:, None]).unsqueeze(-1)
        pos = (steps[None, :] + (self.max_len - lengths)[:, None]).clamp(0, self.max_len - 1)
        return self.drop(emb * self.scale + self.positions(pos)) * real, real

    def _keys(self, real: torch.Tensor) -> Optional[torch.Tensor]:
        """The key mask of bidirectional attention ([b, 1, 1, length]: the real positions); None
        (the causal mask, which already hides right padding) when causal."""
        return None if self.causal else real.squeeze(-1)[:, None, None, :]

    def forward(self, emb: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        h, real = self._inputs(emb, lengths)
        keys = self._keys(real)
        for block in self.blocks:
            h = block(h, keys) * real
        return self.final_norm(h)

    def last(self, emb: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """The state [b, dim] after each row's last real item (`forward` at position lengths - 1)."""
        h, real = self._inputs(emb, lengths)
        keys = self._keys(real)
        for block in self.blocks[:-1]:
            h = block(h, keys) * real
        return self.final_norm(self.blocks[-1].forward_last(h, lengths - 1, keys))
