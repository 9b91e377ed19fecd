"""The values a fit carries: its loop state (saved in last.pt), where it runs, its training rows
on the device, and what it returns."""

from __future__ import annotations

import dataclasses
import math
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import torch

from seqrec_cli.config.schema import TrainConfig
from seqrec_cli.data import SequenceSplits
from seqrec_cli.data.batches import SideInputs, training_examples
from seqrec_cli.errors import UserError
from seqrec_cli.training.masking import masked_rows
from seqrec_cli.training.profiling import StepProfile
from seqrec_cli.training.runtime import Distributed


@dataclass
class LoopState:
    """Everything besides weights and optimizer that a resumed run needs to continue exactly."""

    epoch: int = 0
    best_score: float = -math.inf
    best_epoch: int = 0
    bad_evals: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    train_seconds: float = 0.0
    eval_seconds: float = 0.0
    # Wall time of every process of this run up to its last save, so a resumed run's total counts
    # the earlier processes too.
    wall_seconds: float = 0.0
    # [score, epoch] of the evaluations kept under checkpoints/top/ (trainer.save_top_k).
    top: list[list[float]] = field(default_factory=list)


@dataclass
class FitContext:
    """Where a fit runs and what it writes besides the weights (one value instead of many arguments)."""

    run_dir: Path
    dist_info: Distributed = field(default_factory=Distributed)
    side: SideInputs = field(default_factory=SideInputs)
    user_ids: Optional[list] = None  # original ids of the users with vectors, for best.pt
    data: dict[str, Any] = field(default_factory=dict)  # checkpoint.data_fingerprint of the data
    resume: Optional[dict[str, Any]] = None  # a checked last.pt payload to continue from
    resume_path: Optional[Path] = None
    started: float = field(default_factory=time.perf_counter)  # when this process started the run
    item_features: Optional[dict[str, Any]] = None  # vocabularies and scalers, for both checkpoints


@dataclass
class Batches:
    """The training rows, resident on the device; batches are drawn by row index."""

    inputs: torch.Tensor
    targets: torch.Tensor
    lengths: torch.Tensor
    lengths_cpu: np.ndarray
    gaps: Optional[torch.Tensor] = None
    users: Optional[torch.Tensor] = None

    def __len__(self) -> int:
        return len(self.lengths_cpu)


@dataclass
class FitResult:
    state: LoopState
    valid: dict[str, float]
    stopped_early: bool
    train_sequences: int = 0
    train_positions: int = 0
    profile: Optional[StepProfile] = None  # with trainer.profile_steps


def best_valid(state: LoopState) -> dict[str, float]:
    """The validation metrics of the best epoch, read back from the history."""
    row = next((r for r in state.history if r.get("epoch") == state.best_epoch), {})
    return {k[len("valid/") :]: v for k, v in row.items() if k.startswith("valid/")}


def device_batches(splits: SequenceSplits, cfg: TrainConfig, side: SideInputs, device: torch.device) -> Batches:
    """The training rows as device tensors (all at once: a step then only indexes them);
    `trainer.overfit_batches` keeps only the first batches' rows."""
    examples = training_examples(splits.data, splits.train_end, cfg.model.max_len, cfg.trainer.all_windows, side)
    if len(examples.lengths) == 0:
        raise UserError("No training sequences: every user has fewer than two training events.")
    if cfg.objective.name == "masked":
        examples = masked_rows(examples)
    if cfg.trainer.overfit_batches:
        n = cfg.trainer.overfit_batches * cfg.trainer.batch_size
        examples = dataclasses.replace(
            examples,
            **{
                f.name: getattr(examples, f.name)[:n]
                for f in dataclasses.fields(examples)
                if getattr(examples, f.name) is not None
            },
        )
    optional = lambda a: torch.as_tensor(a, device=device) if a is not None else None  # noqa: E731
    return Batches(
        torch.as_tensor(examples.inputs, device=device),
        torch.as_tensor(examples.targets, device=device),
        torch.as_tensor(examples.lengths, device=device),
        examples.lengths,
        optional(examples.gaps),
        optional(examples.users),
    )
