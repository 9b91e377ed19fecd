"""BERT4Rec's cloze task (objective=masked): which training items are hidden behind the mask token.

A training row is the last `max_len` items of a window (the `targets` row of the next-item
examples: the same window without its first item), so a row ends with the most recent training
item as the inference input does. Each real item is masked with probability `mask_prob`; a row in
which no item was drawn gets its last item masked, so every row trains, and at least some rows
look exactly like inference (the mask after the history). Masked items are always replaced by
the mask token (no BERT-style 10% random / 10% kept). The draw uses torch's global RNG on the
batch's device, which last.pt saves and restores, so a resumed run masks the same positions.
"""

from __future__ import annotations

import dataclasses

import torch

from seqrec_cli.data.batches import TrainingExamples


def masked_rows(examples: TrainingExamples) -> TrainingExamples:
    """The next-item rows turned into masked-objective rows (inputs = the items to reconstruct)."""
    return dataclasses.replace(examples, inputs=examples.targets.copy())


def mask_batch(
    items: torch.Tensor, lengths: torch.Tensor, mask_prob: float, mask_id: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """(inputs with the drawn positions set to `mask_id`, targets: the original item there, 0 elsewhere)."""
    cols = torch.arange(items.shape[1], device=items.device)[None, :]
    real = cols < lengths[:, None]
    drawn = (torch.rand(items.shape, device=items.device) < mask_prob) & real
    none = ~drawn.any(dim=1)
    drawn |= none[:, None] & (cols == (lengths - 1)[:, None])
    inputs = items.masked_fill(drawn, mask_id)
    targets = items.masked_fill(~drawn, 0)
    return inputs, targets
