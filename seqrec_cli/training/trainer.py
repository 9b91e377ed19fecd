"""The training loop: epochs of index-batched steps, periodic full-ranking validation, early
stopping, best-weights restore, and checkpoints that let a run continue where it stopped."""

from __future__ import annotations

import copy
import logging
import math
import time
from typing import Any, Callable, Optional

import numpy as np
import torch

from seqrec_cli.config.checks import metric_names
from seqrec_cli.config.schema import TrainConfig
from seqrec_cli.data import SequenceSplits
from seqrec_cli.errors import Interrupted, UserError
from seqrec_cli.evaluation import ranking
from seqrec_cli.io.artifacts import write_history
from seqrec_cli.io.console import duration, epoch_progress, format_metrics
from seqrec_cli.io.signals import stop_requests
from seqrec_cli.models import SequentialRecommender, autocast
from seqrec_cli.training.losses import build_loss
from seqrec_cli.training.masking import mask_batch
from seqrec_cli.training.optim import build_optimizer
from seqrec_cli.training.profiling import StepProfiler
from seqrec_cli.training.run_checkpoints import Resumable, RunCheckpoints
from seqrec_cli.training.runtime import all_reduce_sum, any_rank, gather_strided
from seqrec_cli.training.schedule import LrSchedule
from seqrec_cli.training.state import FitContext, FitResult, LoopState, device_batches

__all__ = ["FitContext", "FitResult", "NonFiniteLoss", "Trainer", "TrainingInterrupted", "build_optimizer", "fit"]

log = logging.getLogger(__name__)


class TrainingInterrupted(Interrupted):
    """Raised after SIGINT/SIGTERM once the current step finished; last.pt holds `epochs_done`."""


class NonFiniteLoss(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def fit(
    model: SequentialRecommender,
    splits: SequenceSplits,
    cfg: TrainConfig,
    device: torch.device,
    ctx: FitContext,
    on_epoch_end: Optional[Callable[[dict[str, Any]], None]] = None,
) -> FitResult:
    """Train until `max_epochs` or early stopping; return with the best weights loaded.

    `on_epoch_end` gets a copy of each history row (e.g. for an experiment tracker) after it is
    written to history.csv and last.pt. Under torch.distributed every process draws the same
    global batches (same seed) and trains on its rows `rank::world_size` of each; the loss is
    scaled so the averaged gradient equals the single-process one, validation ranks are gathered
    so every process sees the same metrics (and takes the same early-stopping decision), and only
    rank 0 writes files. `ctx.side` holds the inputs of optional model features (time gaps, user
    rows).
    """
    return Trainer(model, splits, cfg, device, ctx, on_epoch_end).run()


class Trainer:
    """One run's training state (model, optimizer, schedule, loop state, RNG) and its loop; its
    checkpoints/ folder (what is saved there, and restored on a resume) is `self.files`
    (`run_checkpoints.RunCheckpoints`)."""

    def __init__(
        self,
        model: SequentialRecommender,
        splits: SequenceSplits,
        cfg: TrainConfig,
        device: torch.device,
        ctx: FitContext,
        on_epoch_end: Optional[Callable[[dict[str, Any]], None]] = None,
    ) -> None:
        self.model, self.splits, self.cfg, self.device, self.ctx = model, splits, cfg, device, ctx
        self.on_epoch_end = on_epoch_end
        self.write = ctx.dist_info.is_main
        self.files = RunCheckpoints(ctx.run_dir / "checkpoints", cfg, ctx, splits.data.item_ids)
        self.data = device_batches(splits, cfg, ctx.side, device)
        t = cfg.trainer
        valid_split = ranking.shard(splits.valid, ctx.dist_info.rank, ctx.dist_info.world_size)
        self.valid_inputs = ranking.prepare(
            splits, valid_split, cfg.model.max_len, cfg.eval.mask_history, device, ctx.side
        )
        log.info(
            "Training on %d sequences (%d target positions), validating on %d users",
            len(self.data),
            int(self.data.lengths_cpu.sum()),
            len(splits.valid),
        )
        model.to(device)
        self.optimizer = build_optimizer(model, cfg, device)
        # Counts of the training part; with item features, untrained items are never negatives.
        self.loss_fn = build_loss(cfg.loss, splits.seen_item_counts("valid"), model.item_repr is not None)
        self.use_amp = t.amp and device.type == "cuda" and t.precision != "fp32"
        self.amp_dtype = torch.float16 if t.precision == "fp16" else torch.bfloat16
        # fp16 gradients underflow without loss scaling; bf16 and fp32 need none (a no-op scaler).
        self.scaler = torch.amp.GradScaler(device.type, enabled=self.use_amp and t.precision == "fp16")
        self.step_model = self._step_model()
        self.np_rng = np.random.default_rng(t.seed)  # same on every rank: the global batch order
        n_batches = math.ceil(len(self.data) / t.batch_size)
        steps_per_epoch = math.ceil(n_batches / t.accumulate_grad_batches)
        self.schedule = LrSchedule(cfg.scheduler, cfg.optimizer.lr, steps_per_epoch, steps_per_epoch * t.max_epochs)
        self.state = LoopState()
        self.best_weights = copy.deepcopy(model.state_dict())

    @property
    def parts(self) -> Resumable:
        """The objects last.pt saves and a resume loads back, besides the loop state."""
        return Resumable(self.model, self.optimizer, self.schedule, self.scaler, self.np_rng)

    def save(self) -> None:
        """last.pt: the whole training state, with the best weights so far travelling along."""
        self.files.save_last(self.parts, self.state, self.best_weights)

    def restore(self) -> None:
        """Continue from `ctx.resume` (already checked by `checkpoint.check_resume`)."""
        self.state, self.best_weights = self.files.restore(self.parts, self.device)
        log.info("Resumed from %s after epoch %d", self.ctx.resume_path, self.state.epoch)

    def _step_model(self) -> torch.nn.Module:
        step_model: torch.nn.Module = self.model
        if self.ctx.dist_info.enabled:
            ids = [self.device.index] if self.device.type == "cuda" else None
            step_model = torch.nn.parallel.DistributedDataParallel(self.model, device_ids=ids)
        if self.cfg.trainer.compile:
            step_model = torch.compile(step_model)
        return step_model

    def run(self) -> FitResult:
        t = self.cfg.trainer
        if self.ctx.resume is not None:
            self.restore()
        elif self.write:
            self.save()  # an interrupt during the first epoch can then still be resumed
        log.info(
            "A * marks a new best valid/%s (kept in checkpoints/best.pt); training stops after %d evaluation(s) "
            "in a row without one.",
            t.monitor,
            max(t.patience, 1),
        )
        self.wall_before = self.state.wall_seconds
        # The first epoch this process runs is profiled when asked to (trainer.profile_steps).
        self.profiler = StepProfiler(t.profile_steps, self.device) if t.profile_steps else None
        stopped_early = False
        with stop_requests() as stop:
            while self.state.epoch < t.max_epochs and not stopped_early:
                stopped_early = self.epoch(stop)
        self.model.load_state_dict(self.best_weights)
        best_valid = self.validate()
        return FitResult(
            state=self.state,
            valid=best_valid,
            stopped_early=stopped_early,
            train_sequences=len(self.data),
            train_positions=int(self.data.lengths_cpu.sum()),
            profile=self.profiler.result if self.profiler is not None else None,
        )

    def validate(self) -> dict[str, float]:
        t = self.cfg.trainer
        gather = lambda ranks: gather_strided(ranks, self.ctx.dist_info)  # noqa: E731
        return ranking.evaluate_model(
            self.model, self.valid_inputs, t.eval_batch_size, self.cfg.eval.ks, self.use_amp, gather
        )

    def epoch(self, stop: dict[str, Optional[str]]) -> bool:
        """Train one epoch, validate when due, save; True when early stopping says stop."""
        t, state = self.cfg.trainer, self.state
        epoch = state.epoch + 1
        started = time.perf_counter()
        train_loss = self.train_epoch(epoch, stop)
        if self.profiler is not None:
            self.profiler.close()
        state.train_seconds += time.perf_counter() - started
        state.epoch = epoch
        row: dict[str, Any] = {"epoch": epoch, "train_loss": round(train_loss, 6)}
        improved = None
        if epoch % t.eval_every == 0 or epoch == t.max_epochs:
            improved = self._evaluate_epoch(epoch, row)
        self._log_epoch(epoch, train_loss, row, improved, time.perf_counter() - started)
        row["lr"] = self.optimizer.param_groups[0]["lr"]
        row["seconds"] = round(time.perf_counter() - started, 3)
        state.history.append(row)
        state.wall_seconds = self.wall_before + time.perf_counter() - self.ctx.started
        if self.write:
            write_history(self.ctx.run_dir / "history.csv", state.history)
            self.save()
            if self.on_epoch_end is not None:
                self.on_epoch_end(dict(row))
        if improved is False and state.bad_evals >= max(t.patience, 1):
            log.info("Early stopping: %s has not improved for %d evaluations.", t.monitor, state.bad_evals)
            return True
        return False

    def _evaluate_epoch(self, epoch: int, row: dict[str, Any]) -> bool:
        t, state = self.cfg.trainer, self.state
        eval_started = time.perf_counter()
        valid = self.validate()
        state.eval_seconds += time.perf_counter() - eval_started
        row.update({f"valid/{k}": round(valid[k], 6) for k in metric_names(self.cfg.eval.ks)})
        self.last_valid = valid
        score = valid[t.monitor]
        self.schedule.after_evaluation(score)
        improved = score > state.best_score + t.min_delta
        if improved:
            state.best_score, state.best_epoch, state.bad_evals = score, epoch, 0
            self.best_weights = copy.deepcopy(self.model.state_dict())
            if self.write:
                self.files.save_best(self.best_weights, epoch, valid)
        else:
            state.bad_evals += 1
        if t.save_top_k and self.write:
            state.top = self.files.keep_top_k(state.top, score, epoch, valid, self.model.state_dict())
        return improved

    def _log_epoch(self, epoch: int, loss: float, row: dict, improved: Optional[bool], seconds: float) -> None:
        t = self.cfg.trainer
        keys = [t.monitor] + [k for k in ("hr@10", "ndcg@10") if k != t.monitor]
        width = len(str(t.max_epochs))
        head = f"epoch {epoch:>{width}}/{t.max_epochs}  loss {loss:.4f}"
        done = [r["seconds"] for r in self.state.history] + [seconds]
        left = (t.max_epochs - epoch) * sum(done) / len(done)
        eta = f", at most {duration(left)} left" if epoch < t.max_epochs else ""
        if improved is None:
            log.info("%s  (%.1f s%s)", head, seconds, eta)
            return
        patience = f"patience {self.state.bad_evals}/{max(t.patience, 1)}"
        log.info(
            "%s  %s%s  %s  (%.1f s%s)",
            head,
            format_metrics(self.last_valid, keys),
            "  *" if improved else "",
            patience,
            seconds,
            eta,
        )

    def train_epoch(self, epoch: int, stop: dict[str, Optional[str]]) -> float:
        """One pass over the training rows; returns the mean loss over all target positions."""
        t, data, dist_info = self.cfg.trainer, self.data, self.ctx.dist_info
        # Read the loss back on the host every step on CPU (free), but only every 50 steps on a GPU,
        # where each read is a device->host sync that stalls the queue of kernels.
        sync_every = 1 if self.device.type == "cpu" else 50
        self.model.train()
        started = time.perf_counter()
        # debug=overfit trains on the same rows in the same order every epoch.
        order = np.arange(len(data)) if t.overfit_batches else self.np_rng.permutation(len(data))
        # The batch rows are sliced from a device copy of the order and the target positions found
        # with a size known on the host, so no step waits for the GPU: a host->device copy per step
        # (`torch.as_tensor(rows, device=...)`) and boolean-mask indexing both synchronise.
        order_dev = torch.as_tensor(order, device=self.device)
        n_batches = min(math.ceil(len(order) / t.batch_size), t.limit_batches or math.inf)
        k = t.accumulate_grad_batches
        loss_sum = torch.zeros((), device=self.device)
        positions = 0
        with epoch_progress(t.progress and dist_info.is_main) as bar:
            task = bar.add_task(f"epoch {epoch}", total=n_batches, loss=float("nan"), rate=0.0)
            for step in range(n_batches):
                group = range((step // k) * k, min((step // k + 1) * k, n_batches))
                if step == group.start:
                    # Every position of the accumulated batches weighs the same in the step's gradient.
                    group_count = sum(
                        int(data.lengths_cpu[order[b * t.batch_size : (b + 1) * t.batch_size]].sum()) for b in group
                    )
                    self.optimizer.zero_grad(set_to_none=True)
                batch = slice(step * t.batch_size, (step + 1) * t.batch_size)
                loss, count = self._backward(order[batch], order_dev[batch], group_count)
                if step == group[-1]:
                    self._optimizer_step()
                if self.profiler is not None:
                    self.profiler.step()
                loss_sum += loss.detach() * count
                positions += int(data.lengths_cpu[order[batch]].sum())
                if (step + 1) % sync_every == 0 or step + 1 == n_batches:
                    running = all_reduce_sum(loss_sum, dist_info).item() / positions
                    if not math.isfinite(running):
                        raise NonFiniteLoss(
                            f"The training loss became non-finite at epoch {epoch}, step {step + 1} "
                            "(try a lower optimizer.lr or trainer.grad_clip_norm); the last good "
                            "checkpoint is kept."
                        )
                    rate = (step + 1) / (time.perf_counter() - started)
                    bar.update(task, completed=step + 1, loss=running, rate=rate)
                if any_rank(stop["signal"] is not None, dist_info, self.device):
                    # The epoch is cut short: last.pt keeps the last complete epoch.
                    raise TrainingInterrupted(stop["signal"] or "SIGTERM", epochs_done=epoch - 1)
        return all_reduce_sum(loss_sum, dist_info).item() / max(positions, 1)

    def _backward(self, global_rows: np.ndarray, global_rows_dev: torch.Tensor, group_count: int) -> tuple:
        """Forward and backward of this process's share of one batch; returns (loss, its positions)."""
        t, data, dist_info = self.cfg.trainer, self.data, self.ctx.dist_info
        rows_np = global_rows[dist_info.rank :: dist_info.world_size]
        rows = global_rows_dev[dist_info.rank :: dist_info.world_size]
        # A rank left without rows still runs (with zero weight) so the gradient all-reduce
        # sees every process.
        weight = 1.0 if len(rows_np) else 0.0
        if not weight:
            rows_np, rows = global_rows[:1], global_rows_dev[:1]
        local_positions = int(data.lengths_cpu[rows_np].sum())  # every one has a target
        count = local_positions if weight else 0
        # Trailing padding columns of the batch carry nothing; cut them (not under compile,
        # where a changing width would trigger recompiles).
        width = self.cfg.model.max_len if t.compile else int(data.lengths_cpu[rows_np].max())
        x, y, n = data.inputs[rows, :width], data.targets[rows, :width], data.lengths[rows]
        gaps = data.gaps[rows, :width] if data.gaps is not None else None
        users = data.users[rows] if data.users is not None else None
        objective = self.cfg.objective
        if objective.name == "masked":
            # The loss counts the masked positions only; their number is known after the draw.
            x, y = mask_batch(x, n, objective.mask_prob, self.model.mask_id)
        with autocast(self.device, self.use_amp, self.amp_dtype):
            hidden = self.step_model(x, n, gaps, users)
            # Every position before a row's length has a target (y > 0), so their number is
            # known on the host: the same positions as `hidden[y > 0]`, in the same order.
            real = (
                torch.nonzero_static((y > 0).flatten(), size=local_positions).flatten()
                if objective.name == "next"
                else torch.nonzero(y.flatten() > 0).flatten()
            )
            loss = self.loss_fn(self.model, hidden.flatten(0, 1)[real], y.flatten()[real])
        # Scale the per-process mean so that the gradient averaged over processes is the mean
        # over all positions of the accumulated global batches (scale 1 in the plain case).
        scale = weight * max(count, 1) * dist_info.world_size / group_count
        self.scaler.scale(loss * scale).backward()
        return loss, count

    def _optimizer_step(self) -> None:
        if self.cfg.trainer.grad_clip_norm:
            self.scaler.unscale_(self.optimizer)  # clip the true gradients, not the scaled ones
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.trainer.grad_clip_norm)
        self.schedule.apply(self.optimizer)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.schedule.advance()
