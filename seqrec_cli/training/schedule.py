"""Learning-rate schedules with warmup, stepped once per optimizer step.

The schedule is a pure function of the optimizer step (plus, for `plateau`, a reduction factor
that evaluations lower), so its whole state is two numbers saved in last.pt: a resumed run sets
exactly the lr the uninterrupted run would have, and a resume with a new `optimizer.lr` scales the
same curve from the new base. torch's scheduler classes keep their own copy of the base lr and
fight each other when warmup and plateau reductions are combined, hence this small class.

    lr(step) = optimizer.lr * warmup(step) * decay(step) * plateau_factor

warmup rises linearly from 1/(warmup+1) to 1 over the warmup steps; decay is 1 (`none`,
`plateau`), a cosine or a straight line from 1 down to `min_lr_ratio` over the steps after warmup
(`cosine`, `linear`), or `gamma` to the power of the completed `step_epochs` (`step`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch

from seqrec_cli.config.schema import SchedulerConfig


@dataclass
class LrSchedule:
    cfg: SchedulerConfig
    base_lr: float
    steps_per_epoch: int
    total_steps: int
    step: int = 0  # optimizer steps taken
    plateau_factor: float = 1.0
    plateau_best: float = -math.inf
    plateau_bad: int = 0

    @property
    def warmup_steps(self) -> int:
        if self.cfg.warmup_epochs:
            return int(round(self.cfg.warmup_epochs * self.steps_per_epoch))
        return self.cfg.warmup_steps

    def factor(self, step: int) -> float:
        c, warm = self.cfg, self.warmup_steps
        f = (step + 1) / (warm + 1) if step < warm else 1.0
        if c.name in ("cosine", "linear"):
            span = max(self.total_steps - warm, 1)
            progress = min(max(step - warm, 0) / span, 1.0)
            shape = 0.5 * (1 + math.cos(math.pi * progress)) if c.name == "cosine" else 1.0 - progress
            f *= c.min_lr_ratio + (1 - c.min_lr_ratio) * shape
        elif c.name == "step":
            f *= c.gamma ** (step // max(c.step_epochs * self.steps_per_epoch, 1))
        return f * self.plateau_factor

    def apply(self, optimizer: torch.optim.Optimizer) -> None:
        """Set the lr of the coming optimizer step."""
        lr = self.base_lr * self.factor(self.step)
        for group in optimizer.param_groups:
            group["lr"] = lr

    def advance(self) -> None:
        self.step += 1

    def after_evaluation(self, score: float) -> None:
        """`plateau`: cut the lr by `gamma` after `plateau_patience` evaluations without a new best."""
        if self.cfg.name != "plateau":
            return
        if score > self.plateau_best:
            self.plateau_best, self.plateau_bad = score, 0
            return
        self.plateau_bad += 1
        if self.plateau_bad >= self.cfg.plateau_patience:
            self.plateau_factor = max(self.plateau_factor * self.cfg.gamma, self.cfg.min_lr_ratio)
            self.plateau_bad = 0

    def state_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "plateau_factor": self.plateau_factor,
            "plateau_best": self.plateau_best,
            "plateau_bad": self.plateau_bad,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])
        self.plateau_factor = float(state.get("plateau_factor", 1.0))
        self.plateau_best = float(state.get("plateau_best", -math.inf))
        self.plateau_bad = int(state.get("plateau_bad", 0))
