"""What the Trainer keeps under a run's checkpoints/ and takes back on a resume.

last.pt after every epoch (and before the first) holds everything a resume needs, the best weights
so far included; best.pt is rewritten at each new best; with `trainer.save_top_k` the k best
epochs stay as top/epoch-NNN.pt. `RunCheckpoints.restore` loads a checked last.pt back into the
objects it came from. The payloads' format is `checkpoint.py`'s; this module only says which of
the fit's objects go into them, so `trainer.py` stays about steps and epochs.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seqrec_cli.config.schema import TrainConfig
from seqrec_cli.models import SequentialRecommender
from seqrec_cli.training import checkpoint
from seqrec_cli.training.checkpoint import load_checkpoint, save_checkpoint
from seqrec_cli.training.optim import apply_optimizer_settings
from seqrec_cli.training.rng import restore_rng, rng_state
from seqrec_cli.training.schedule import LrSchedule
from seqrec_cli.training.state import FitContext, LoopState, best_valid

log = logging.getLogger(__name__)


@dataclass
class Resumable:
    """The objects of a fit that last.pt saves and a resume loads back, besides the loop state."""

    model: SequentialRecommender
    optimizer: torch.optim.Optimizer
    schedule: LrSchedule
    scaler: torch.amp.GradScaler
    np_rng: np.random.Generator


@dataclass
class RunCheckpoints:
    """One run's checkpoints/ folder, with what every payload carries besides weights: the config,
    the data fingerprint, the original ids and the item features' vocabularies."""

    folder: Path
    cfg: TrainConfig
    ctx: FitContext
    item_ids: Any  # the catalogue's original ids (an array), as best.pt records them

    def save_last(self, parts: Resumable, state: LoopState, best_weights: dict) -> None:
        """last.pt: the whole training state, with the best weights so far travelling along."""
        best = {"model": best_weights, "epoch": state.best_epoch, "valid": best_valid(state)}
        payload = checkpoint.resume_payload(
            parts.model.state_dict(),
            parts.optimizer.state_dict(),
            asdict(state),
            rng=rng_state(parts.np_rng),
            config=asdict(self.cfg),
            best=best,
            data=self.ctx.data,
        )
        payload["schedule"] = parts.schedule.state_dict()
        if self.ctx.item_features is not None:  # vocabularies and scalers of the item features
            payload["item_features"] = self.ctx.item_features
        if parts.scaler.is_enabled():
            payload["grad_scaler"] = parts.scaler.state_dict()
        save_checkpoint(self.folder / "last.pt", payload)

    def save_best(self, weights: dict, epoch: int, valid: dict, name: str = "best.pt") -> None:
        payload = checkpoint.best_payload(
            weights,
            epoch,
            valid,
            config=asdict(self.cfg),
            item_ids=self.item_ids.tolist(),
            user_ids=self.ctx.user_ids,
            data=self.ctx.data,
        )
        if self.ctx.item_features is not None:
            payload["item_features"] = self.ctx.item_features
        save_checkpoint(self.folder / name, payload)

    def keep_top_k(self, top: list, score: float, epoch: int, valid: dict, weights: dict) -> list:
        """top/epoch-NNN.pt for the k best evaluations so far (ties: the earlier epoch); returns
        the [score, epoch] pairs kept, the loop state's new `top`."""
        k = self.cfg.trainer.save_top_k
        ranked = sorted([*top, [score, epoch]], key=lambda se: (-se[0], se[1]))
        keep, drop = ranked[:k], ranked[k:]
        if [score, epoch] in keep:
            self.save_best(weights, epoch, valid, name=f"top/epoch-{epoch:03d}.pt")
        for _, old in drop:
            (self.folder / "top" / f"epoch-{old:03d}.pt").unlink(missing_ok=True)
        return keep

    def restore(self, parts: Resumable, device: torch.device) -> tuple[LoopState, dict]:
        """Continue from `ctx.resume` (already checked by `checkpoint.check_resume`): weights,
        optimizer, RNG streams, schedule, loss scaler go back into `parts`, with this run's
        optimizer hyperparameters; returns the loop state and the best weights it names (best.pt
        is rewritten when a kill left it ahead)."""
        ckpt = self.ctx.resume
        parts.model.load_state_dict(ckpt["model"])
        parts.optimizer.load_state_dict(ckpt["optimizer"])
        apply_optimizer_settings(parts.optimizer, self.cfg, ckpt["config"].get("optimizer", {}))
        known = {f.name for f in dataclasses.fields(LoopState)}
        state = LoopState(**{k: v for k, v in ckpt["loop"].items() if k in known})
        restore_rng(ckpt["rng"], parts.np_rng)
        # A last.pt from before schedules existed: its run had a constant lr, so only the step count matters.
        parts.schedule.load_state_dict(ckpt.get("schedule", {"step": state.epoch * parts.schedule.steps_per_epoch}))
        if parts.scaler.is_enabled() and "grad_scaler" in ckpt:
            parts.scaler.load_state_dict(ckpt["grad_scaler"])
        return state, self._resumed_best(ckpt, state, parts.model, device)

    def _resumed_best(self, ckpt: dict, state: LoopState, model: SequentialRecommender, device: torch.device) -> dict:
        best_path = self.folder / "best.pt"
        if "best" in ckpt:
            best_weights = {k: v.to(device) for k, v in ckpt["best"]["model"].items()}
            on_disk = load_checkpoint(best_path, device).get("epoch") if best_path.is_file() else None
            if self.ctx.dist_info.is_main and state.best_epoch and on_disk != state.best_epoch:
                log.warning("best.pt held epoch %s, the state says %d: rewriting it.", on_disk, state.best_epoch)
                self.save_best(best_weights, state.best_epoch, ckpt["best"].get("valid", {}))
            return best_weights
        if best_path.is_file():  # a last.pt of an older version: best.pt is the only copy of the best weights
            return load_checkpoint(best_path, device)["model"]
        return model.state_dict()
