"""The exported computation: padded histories in, the top-K item rows and their scores out.

Everything a serving process would otherwise do in Python around the model lives in the graph, so
a bundle answers the same question whoever runs it: history exclusion (`exclude`, the rows never
to recommend, 0 = nothing), an optional candidate restriction (`candidates`, the only rows that
may be recommended; a row of zeros restricts nothing) and the ranking. Rows are the model's item
ids: 1..n_items, 0 for padding. Output rows are 0 (score -inf) where fewer than K items were left.

The encoder runs exactly as `SequentialRecommender.last_hidden` (`encode_last`, which also appends
the mask token of a masked-objective model), without its padding of short
batches to MIN_ROWS: that padding is control flow on the batch size, which an exported graph
with a dynamic batch cannot hold. Scores then differ from eager ones only by float rounding.
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from seqrec_cli.models import SequentialRecommender

# Graph inputs, in the order the exported program takes them; gaps / users only for the models
# that use them (encoder.time_features=gap, model.user_embedding=true).
BASE_INPUTS = ("items", "lengths", "exclude", "candidates")
OUTPUTS = ("rows", "scores")


class TopKGraph(nn.Module):
    """`model` + exclusion + candidate mask + top-k, as one module to export."""

    def __init__(self, model: SequentialRecommender, k: int) -> None:
        super().__init__()
        self.model = model
        self.k = k

    def forward(
        self,
        items: torch.Tensor,
        lengths: torch.Tensor,
        exclude: torch.Tensor,
        candidates: torch.Tensor,
        gaps: Optional[torch.Tensor] = None,
        users: Optional[torch.Tensor] = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.model
        # The private steps of last_hidden, minus its batch-size-dependent padding (module docstring).
        hidden = m.encode_last(items, lengths, gaps, users)
        scores = hidden @ m.item_embedding.weight[1:].T  # column j is item row j + 1
        banned = _row_mask(scores, exclude)
        allowed = _row_mask(scores, candidates)
        restricted = (candidates > 0).any(dim=1, keepdim=True)
        scores = scores.masked_fill(banned | (restricted & ~allowed), float("-inf"))
        values, cols = torch.topk(scores, self.k, dim=1)
        rows = torch.where(torch.isfinite(values), cols + 1, torch.zeros_like(cols))
        return rows, values


def _row_mask(scores: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
    """[batch, n_items] bool: True at the item rows listed in `rows` (0 entries are padding)."""
    marks = scores.new_zeros((scores.shape[0], scores.shape[1] + 1))
    return marks.scatter(1, rows, 1.0)[:, 1:] > 0


def input_names(model: SequentialRecommender) -> list[str]:
    names = list(BASE_INPUTS)
    if model.uses_time_gaps:
        names.append("gaps")
    if model.uses_users:
        names.append("users")
    return names


def example_inputs(model: SequentialRecommender, max_len: int) -> dict[str, torch.Tensor]:
    """Inputs to trace with: every dynamic size at least 2, since export fixes sizes 0 and 1."""
    batch, length = 3, max(2, min(max_len, 5))
    inputs = {
        "items": torch.randint(1, model.n_items + 1, (batch, length)),
        "lengths": torch.tensor([length, length - 1, 1][:batch]).clamp(min=1),
        "exclude": torch.randint(0, model.n_items + 1, (batch, 3)),
        "candidates": torch.zeros((batch, 2), dtype=torch.long),
    }
    if model.uses_time_gaps:
        inputs["gaps"] = torch.ones((batch, length), dtype=torch.long)
    if model.uses_users:
        inputs["users"] = torch.zeros(batch, dtype=torch.long)
    return inputs


def dynamic_shapes(names: list[str], max_len: int) -> dict[str, dict[int, torch.export.Dim]]:
    """Batch, history length (up to max_len), exclusion and candidate widths: all dynamic."""
    Dim = torch.export.Dim
    batch, length = Dim("batch"), Dim("length", max=max_len)
    shapes = {
        "items": {0: batch, 1: length},
        "lengths": {0: batch},
        "exclude": {0: batch, 1: Dim("n_exclude")},
        "candidates": {0: batch, 1: Dim("n_candidates")},
        "gaps": {0: batch, 1: length},
        "users": {0: batch},
    }
    return {name: shapes[name] for name in names}
