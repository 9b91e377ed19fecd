"""Model and popularity metrics of one split: the one evaluation that seqrec-train's test step
and seqrec-eval share, so that `seqrec-eval` reproduces `metrics.json` by construction.

In one process the split goes through `cold_start.evaluate_split`, which adds the warm / cold
groups, the beyond-accuracy metrics and (with a feature matrix) the feature-only baseline. Under
torch.distributed each process ranks its shard of the users (`rank::world_size`) and `gather`
joins the ranks, so every process computes the same plain metrics.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Sequence

import numpy as np
import torch

from seqrec_cli.data import SequenceSplits
from seqrec_cli.data.batches import SideInputs
from seqrec_cli.evaluation import cold_start, ranking
from seqrec_cli.evaluation.ranking import Gather
from seqrec_cli.models import SequentialRecommender


@dataclass(frozen=True)
class SplitEval:
    """How a split is ranked: the model's input window, history masking, batch size, cut-offs,
    autocast (`trainer.amp` on CUDA), the device and the side inputs the model needs."""

    max_len: int
    mask_history: bool
    batch_size: int
    ks: Sequence[int]
    amp: bool
    device: torch.device
    side: SideInputs = field(default_factory=SideInputs)


@dataclass
class SplitMetrics:
    model: dict[str, float]  # empty when no model was given
    popularity: dict[str, float]
    # `cold_start.evaluate_split`'s result (metrics of every scorer, warm / cold groups, beyond
    # accuracy) in one process with a model; None otherwise.
    details: Optional[dict[str, dict]] = None


def evaluate_split(
    splits: SequenceSplits,
    split_name: str,
    how: SplitEval,
    model: Optional[SequentialRecommender] = None,
    *,
    matrix: Optional[np.ndarray] = None,
    rank: int = 0,
    world_size: int = 1,
    gather: Optional[Gather] = None,
) -> SplitMetrics:
    """The popularity baseline's metrics on `split_name` ("valid" / "test"), and the model's when
    given; `matrix` (`cold_start.feature_matrix`) adds the feature-only baseline and diversity.
    Popularity counts the items seen before the split's targets; warm targets are those of items
    with training events."""
    split = ranking.shard(getattr(splits, split_name), rank, world_size)
    inputs = ranking.prepare(splits, split, how.max_len, how.mask_history, how.device, how.side)
    visible = splits.seen_item_counts(split_name)
    if model is not None and world_size == 1:
        details = cold_start.evaluate_split(
            model=model,
            inputs=inputs,
            train_counts=splits.seen_item_counts("valid"),
            visible_counts=visible,
            batch_size=how.batch_size,
            ks=how.ks,
            amp=how.amp,
            matrix=matrix,
        )
        return SplitMetrics(details["metrics"]["model"], details["metrics"]["popularity"], details)
    gather = gather or (lambda ranks: ranks)
    metrics: dict[str, float] = {}
    if model is not None:
        metrics = ranking.evaluate_model(model, inputs, how.batch_size, how.ks, how.amp, gather)
    scorer = ranking.popularity_scorer(visible, how.device)
    return SplitMetrics(metrics, ranking.evaluate(inputs, scorer, how.batch_size, how.ks, gather))
