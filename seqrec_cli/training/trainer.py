"""The training loop: epochs of index-batched steps, periodic full-ranking validation, early
stopping, best-weights restore, and checkpoints that let a run continue where it stopped."""

from __future__ import annotations

import copy
import dataclasses
import logging
import math
import signal
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import numpy as np
import torch

from seqrec_cli.config import TrainConfig, metric_names
from seqrec_cli.data import SequenceSplits
from seqrec_cli.data.batches import SideInputs, training_examples
from seqrec_cli.errors import Interrupted, UserError
from seqrec_cli.losses import build_loss
from seqrec_cli.models import SequentialRecommender
from seqrec_cli.training import evaluation
from seqrec_cli.training.artifacts import write_history
from seqrec_cli.training import checkpoint
from seqrec_cli.training.checkpoint import load_checkpoint, save_checkpoint
from seqrec_cli.training.profiling import StepProfile, StepProfiler
from seqrec_cli.runtime import Distributed, all_reduce_sum, gather_strided
from seqrec_cli.training.progress import epoch_progress, format_metrics
from seqrec_cli.training.rng import restore_rng, rng_state

log = logging.getLogger(__name__)


class TrainingInterrupted(Interrupted):
    """Raised after SIGINT/SIGTERM once the current step finished; last.pt holds `epochs_done`."""


class NonFiniteLoss(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


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


def build_optimizer(model: torch.nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    o = cfg.optimizer
    fused = {"fused": True} if device.type == "cuda" else {}
    if o.name == "adam":
        return torch.optim.Adam(model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay, **fused)
    if o.name == "adamw":
        return torch.optim.AdamW(model.parameters(), lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay, **fused)
    return torch.optim.SGD(model.parameters(), lr=o.lr, momentum=o.momentum, weight_decay=o.weight_decay)


@contextmanager
def stop_requests() -> Iterator[dict[str, Optional[str]]]:
    """Turn SIGINT/SIGTERM into a flag the loop checks after each step (restored on exit)."""
    flag: dict[str, Optional[str]] = {"signal": None}

    def handler(signum: int, _frame: Any) -> None:
        flag["signal"] = signal.Signals(signum).name

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: leave signals alone
            pass
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


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
    run_dir, dist_info, side = ctx.run_dir, ctx.dist_info, ctx.side
    t, ks = cfg.trainer, cfg.eval.ks
    ckpt_dir = run_dir / "checkpoints"
    examples = training_examples(splits.data, splits.train_end, cfg.model.max_len, t.all_windows, side)
    if len(examples.lengths) == 0:
        raise UserError("No training sequences: every user has fewer than two training events.")
    data = Batches(
        torch.as_tensor(examples.inputs, device=device),
        torch.as_tensor(examples.targets, device=device),
        torch.as_tensor(examples.lengths, device=device),
        examples.lengths,
        torch.as_tensor(examples.gaps, device=device) if examples.gaps is not None else None,
        torch.as_tensor(examples.users, device=device) if examples.users is not None else None,
    )
    valid_split = evaluation.shard(splits.valid, dist_info.rank, dist_info.world_size)
    valid_inputs = evaluation.prepare(splits, valid_split, cfg.model.max_len, cfg.eval.mask_history, device, side)
    gather = lambda ranks: gather_strided(ranks, dist_info)  # noqa: E731
    log.info(
        "Training on %d sequences (%d target positions), validating on %d users",
        len(data), int(data.lengths_cpu.sum()), len(splits.valid),
    )

    model.to(device)
    optimizer = build_optimizer(model, cfg, device)
    loss_fn = build_loss(cfg.loss, splits.seen_item_counts("valid"))  # counts of the training part
    use_amp = t.amp and device.type == "cuda"
    step_model: torch.nn.Module = model
    if dist_info.enabled:
        ids = [device.index] if device.type == "cuda" else None
        step_model = torch.nn.parallel.DistributedDataParallel(model, device_ids=ids)
    if t.compile:
        step_model = torch.compile(step_model)
    np_rng = np.random.default_rng(t.seed)  # same on every rank: the global batch order
    state = LoopState()
    best_weights = copy.deepcopy(model.state_dict())
    write = dist_info.is_main
    if ctx.resume is not None:
        state, best_weights = _restore(ctx, model, optimizer, np_rng, cfg, splits, device)
    elif write:
        # An interrupt during the first epoch can then still be resumed.
        _save_last(ckpt_dir, model, optimizer, state, np_rng, cfg, best_weights, ctx)
    stopped_early = False
    wall_before = state.wall_seconds
    keys = [t.monitor] + [k for k in ("hr@10", "ndcg@10") if k != t.monitor]
    # The first epoch this process runs is profiled when asked to (trainer.profile_steps).
    profiler = StepProfiler(t.profile_steps, device) if t.profile_steps else None
    with stop_requests() as stop:
        while state.epoch < t.max_epochs:
            epoch = state.epoch + 1
            started = time.perf_counter()
            train_loss = _train_epoch(
                loss_fn, step_model, model, optimizer, data, cfg, epoch, np_rng, stop, dist_info, use_amp, profiler
            )
            if profiler is not None:
                profiler.close()
            state.train_seconds += time.perf_counter() - started
            state.epoch = epoch
            row: dict[str, Any] = {"epoch": epoch, "train_loss": round(train_loss, 6)}
            if epoch % t.eval_every == 0 or epoch == t.max_epochs:
                eval_started = time.perf_counter()
                valid = evaluation.evaluate_model(model, valid_inputs, t.eval_batch_size, ks, use_amp, gather)
                state.eval_seconds += time.perf_counter() - eval_started
                row.update({f"valid/{k}": round(valid[k], 6) for k in metric_names(ks)})
                improved = valid[t.monitor] > state.best_score
                if improved:
                    state.best_score, state.best_epoch, state.bad_evals = valid[t.monitor], epoch, 0
                    best_weights = copy.deepcopy(model.state_dict())
                    if write:
                        _save_best(ckpt_dir, best_weights, epoch, valid, cfg, splits, ctx)
                else:
                    state.bad_evals += 1
                log.info(
                    "epoch %3d  loss %.4f  %s%s  (%.1f s)", epoch, train_loss, format_metrics(valid, keys),
                    "  *" if improved else "", time.perf_counter() - started,
                )
            else:
                log.info("epoch %3d  loss %.4f  (%.1f s)", epoch, train_loss, time.perf_counter() - started)
            row["lr"] = optimizer.param_groups[0]["lr"]
            row["seconds"] = round(time.perf_counter() - started, 3)
            state.history.append(row)
            state.wall_seconds = wall_before + time.perf_counter() - ctx.started
            if write:
                write_history(run_dir / "history.csv", state.history)
                _save_last(ckpt_dir, model, optimizer, state, np_rng, cfg, best_weights, ctx)
                if on_epoch_end is not None:
                    on_epoch_end(dict(row))
            if state.bad_evals > t.patience:
                log.info("Early stopping: %s has not improved for %d evaluations.", t.monitor, state.bad_evals)
                stopped_early = True
                break

    model.load_state_dict(best_weights)
    best_valid = evaluation.evaluate_model(model, valid_inputs, t.eval_batch_size, ks, use_amp, gather)
    return FitResult(
        state=state, valid=best_valid, stopped_early=stopped_early,
        train_sequences=len(data), train_positions=int(data.lengths_cpu.sum()),
        profile=profiler.result if profiler is not None else None,
    )


def _train_epoch(
    loss_fn: Callable[[SequentialRecommender, torch.Tensor, torch.Tensor], torch.Tensor],
    step_model: torch.nn.Module,
    model: SequentialRecommender,
    optimizer: torch.optim.Optimizer,
    data: Batches,
    cfg: TrainConfig,
    epoch: int,
    np_rng: np.random.Generator,
    stop: dict[str, Optional[str]],
    dist_info: Distributed,
    use_amp: bool,
    profiler: Optional[StepProfiler] = None,
) -> float:
    """One pass over the training rows; returns the mean loss over all target positions."""
    t = cfg.trainer
    device = data.inputs.device
    # Read the loss back on the host every step on CPU (free), but only every 50 steps on a GPU,
    # where each read is a device->host sync that stalls the queue of kernels.
    sync_every = 1 if device.type == "cpu" else 50
    model.train()
    started = time.perf_counter()
    order = np_rng.permutation(len(data))
    # The batch rows are sliced from a device copy of the order and the target positions found
    # with a size known on the host, so no step waits for the GPU: a host->device copy per step
    # (`torch.as_tensor(rows, device=...)`) and boolean-mask indexing both synchronise.
    order_dev = torch.as_tensor(order, device=device)
    n_batches = math.ceil(len(order) / t.batch_size)
    loss_sum = torch.zeros((), device=device)
    positions = 0
    with epoch_progress(t.progress and dist_info.is_main) as bar:
        task = bar.add_task(f"epoch {epoch}", total=n_batches, loss=float("nan"), rate=0.0)
        for step in range(n_batches):
            batch = slice(step * t.batch_size, (step + 1) * t.batch_size)
            global_rows = order[batch]
            rows_np = global_rows[dist_info.rank :: dist_info.world_size]
            rows = order_dev[batch][dist_info.rank :: dist_info.world_size]
            # A rank left without rows still runs (with zero weight) so the gradient all-reduce
            # sees every process.
            weight = 1.0 if len(rows_np) else 0.0
            if not weight:
                rows_np, rows = global_rows[:1], order_dev[batch][:1]
            local_positions = int(data.lengths_cpu[rows_np].sum())  # every one has a target
            count = local_positions if weight else 0
            global_count = int(data.lengths_cpu[global_rows].sum())
            # Trailing padding columns of the batch carry nothing; cut them (not under compile,
            # where a changing width would trigger recompiles).
            width = cfg.model.max_len if t.compile else int(data.lengths_cpu[rows_np].max())
            x, y, n = data.inputs[rows, :width], data.targets[rows, :width], data.lengths[rows]
            gaps = data.gaps[rows, :width] if data.gaps is not None else None
            users = data.users[rows] if data.users is not None else None
            with torch.autocast(device.type, dtype=torch.bfloat16) if use_amp else nullcontext():
                hidden = step_model(x, n, gaps, users)
                # Every position before a row's length has a target (y > 0), so their number is
                # known on the host: the same positions as `hidden[y > 0]`, in the same order.
                real = torch.nonzero_static((y > 0).flatten(), size=local_positions).flatten()
                loss = loss_fn(model, hidden.flatten(0, 1)[real], y.flatten()[real])
            # Scale the per-process mean so that the gradient averaged over processes is the mean
            # over all positions of the global batch (scale 1 without distribution).
            scale = weight * max(count, 1) * dist_info.world_size / global_count
            optimizer.zero_grad(set_to_none=True)
            (loss * scale).backward()
            if t.grad_clip_norm:
                torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip_norm)
            optimizer.step()
            if profiler is not None:
                profiler.step()
            loss_sum += loss.detach() * count
            positions += global_count
            if (step + 1) % sync_every == 0 or step + 1 == n_batches:
                running = all_reduce_sum(loss_sum, dist_info).item() / positions
                if not math.isfinite(running):
                    raise NonFiniteLoss(
                        f"The training loss became non-finite at epoch {epoch}, step {step + 1} "
                        "(try a lower optimizer.lr or trainer.grad_clip_norm); the last good "
                        "checkpoint is kept."
                    )
                bar.update(task, completed=step + 1, loss=running, rate=(step + 1) / (time.perf_counter() - started))
            if _stop_requested(stop, dist_info, device):
                # The epoch is cut short: last.pt keeps the last complete epoch.
                raise TrainingInterrupted(stop["signal"] or "SIGTERM", epochs_done=epoch - 1)
    return all_reduce_sum(loss_sum, dist_info).item() / max(positions, 1)


def _stop_requested(stop: dict[str, Optional[str]], dist_info: Distributed, device: torch.device) -> bool:
    """Under torch.distributed all processes must stop at the same step, or the next gradient
    all-reduce waits forever; so the flag is reduced across processes."""
    if not dist_info.enabled:
        return stop["signal"] is not None
    flag = torch.tensor(1.0 if stop["signal"] else 0.0, device=device)
    return bool(all_reduce_sum(flag, dist_info).item() > 0)


def _restore(
    ctx: FitContext, model: SequentialRecommender, optimizer: torch.optim.Optimizer, np_rng: np.random.Generator,
    cfg: TrainConfig, splits: SequenceSplits, device: torch.device,
) -> tuple[LoopState, dict]:
    """Continue from `ctx.resume` (already checked by `checkpoint.check_resume`): weights,
    optimizer, loop state, RNG streams; the optimizer's hyperparameters are this run's; the best
    weights are those the loop state names, and best.pt is rewritten when a kill left it ahead."""
    ckpt = ctx.resume
    model.load_state_dict(ckpt["model"])
    optimizer.load_state_dict(ckpt["optimizer"])
    _apply_optimizer_settings(optimizer, cfg, ckpt["config"].get("optimizer", {}))
    known = {f.name for f in dataclasses.fields(LoopState)}
    state = LoopState(**{k: v for k, v in ckpt["loop"].items() if k in known})
    restore_rng(ckpt["rng"], np_rng)
    best_path = ctx.run_dir / "checkpoints" / "best.pt"
    if "best" in ckpt:
        best_weights = {k: v.to(device) for k, v in ckpt["best"]["model"].items()}
        on_disk = load_checkpoint(best_path, device).get("epoch") if best_path.is_file() else None
        if ctx.dist_info.is_main and state.best_epoch and on_disk != state.best_epoch:
            log.warning("best.pt held epoch %s, the training state says %d: rewriting it.", on_disk, state.best_epoch)
            _save_best(ctx.run_dir / "checkpoints", best_weights, state.best_epoch, ckpt["best"].get("valid", {}),
                       cfg, splits, ctx)
    else:  # a last.pt of an older version: best.pt is the only copy of the best weights
        best_weights = load_checkpoint(best_path, device)["model"] if best_path.is_file() else model.state_dict()
    log.info("Resumed from %s after epoch %d", ctx.resume_path, state.epoch)
    return state, best_weights


def _apply_optimizer_settings(optimizer: torch.optim.Optimizer, cfg: TrainConfig, saved: dict[str, Any]) -> None:
    """`load_state_dict` brings back the saved hyperparameters; a resume that sets new ones (a new
    lr, weight decay, betas, momentum) trains with them from the resumed epoch on, and says so."""
    o = cfg.optimizer
    wanted = {"lr": o.lr, "weight_decay": o.weight_decay}
    if o.name in ("adam", "adamw"):
        wanted["betas"] = tuple(o.betas)
    if o.name == "sgd":
        wanted["momentum"] = o.momentum
    for group in optimizer.param_groups:
        for key, value in wanted.items():
            group[key] = value
    changed = [f"optimizer.{k} {saved.get(k)} -> {v if k != 'betas' else list(v)}" for k, v in wanted.items()
               if k in saved and _as_list(saved[k]) != _as_list(v)]
    if changed:
        log.info("Resuming with new optimizer settings: %s.", ", ".join(changed))


def _as_list(value: Any) -> Any:
    return list(value) if isinstance(value, (list, tuple)) else value


def _save_best(
    ckpt_dir: Path, weights: dict, epoch: int, valid: dict, cfg: TrainConfig, splits: SequenceSplits, ctx: FitContext
) -> None:
    save_checkpoint(ckpt_dir / "best.pt", checkpoint.best_payload(
        weights, epoch, valid, asdict(cfg), splits.data.item_ids.tolist(), ctx.user_ids, ctx.data))


def _save_last(
    ckpt_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: LoopState,
    np_rng: np.random.Generator, cfg: TrainConfig, best_weights: dict, ctx: FitContext,
) -> None:
    best = {"model": best_weights, "epoch": state.best_epoch, "valid": _best_valid(state)}
    save_checkpoint(ckpt_dir / "last.pt", checkpoint.resume_payload(
        model.state_dict(), optimizer.state_dict(), asdict(state), rng_state(np_rng), asdict(cfg), best, ctx.data))


def _best_valid(state: LoopState) -> dict[str, float]:
    """The validation metrics of the best epoch, read back from the history."""
    row = next((r for r in state.history if r.get("epoch") == state.best_epoch), {})
    return {k[len("valid/"):]: v for k, v in row.items() if k.startswith("valid/")}
