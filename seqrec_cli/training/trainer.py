"""The training loop: epochs of index-batched steps, periodic full-ranking validation, early
stopping, best-weights restore, and checkpoints that let a run continue where it stopped."""

from __future__ import annotations

import copy
import logging
import math
import random
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
from seqrec_cli.data.batches import training_examples
from seqrec_cli.errors import UserError
from seqrec_cli.losses import build_loss
from seqrec_cli.models import SequentialRecommender
from seqrec_cli.training import evaluation
from seqrec_cli.training.artifacts import write_history
from seqrec_cli.training.checkpoint import load_checkpoint, save_checkpoint
from seqrec_cli.training.progress import epoch_progress, format_metrics

log = logging.getLogger(__name__)


class TrainingInterrupted(Exception):
    """Raised after SIGINT/SIGTERM once the current step finished and last.pt was written."""


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


@dataclass
class FitResult:
    state: LoopState
    valid: dict[str, float]
    stopped_early: bool


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


def rng_state(np_rng: np.random.Generator) -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy_global": _plain_numpy_state(np.random.get_state(legacy=False)),
        "numpy_batches": np_rng.bit_generator.state,
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], np_rng: np.random.Generator) -> None:
    random.setstate(_as_tuple(state["python"]))
    np.random.set_state(_numpy_state(state["numpy_global"]))
    np_rng.bit_generator.state = state["numpy_batches"]
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain_numpy_state(state: dict[str, Any]) -> dict[str, Any]:
    """NumPy's legacy state holds an ndarray, which a weights-only checkpoint cannot carry."""
    return {**state, "state": {**state["state"], "key": state["state"]["key"].tolist()}}


def _numpy_state(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "state": {**state["state"], "key": np.asarray(state["state"]["key"], dtype=np.uint32)}}


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value


def fit(
    model: SequentialRecommender,
    splits: SequenceSplits,
    cfg: TrainConfig,
    device: torch.device,
    run_dir: Path,
    resume_from: Optional[Path] = None,
    on_epoch_end: Optional[Callable[[dict[str, Any]], None]] = None,
) -> FitResult:
    """Train `model` with early stopping; `on_epoch_end` gets a copy of each history row
    (e.g. for an experiment tracker) after it is written to history.csv and last.pt."""
    t, ks = cfg.trainer, cfg.eval.ks
    ckpt_dir = run_dir / "checkpoints"
    examples = training_examples(splits.data, splits.train_end, cfg.model.max_len, t.all_windows)
    if len(examples.lengths) == 0:
        raise UserError("No training sequences: every user has fewer than two training events.")
    inputs = torch.as_tensor(examples.inputs, device=device)
    targets = torch.as_tensor(examples.targets, device=device)
    lengths_cpu = examples.lengths
    lengths = torch.as_tensor(lengths_cpu, device=device)
    valid_inputs = evaluation.prepare(splits, splits.valid, cfg.model.max_len, cfg.eval.mask_history, device)
    log.info(
        "Training on %d sequences (%d target positions), validating on %d users",
        len(lengths_cpu), int(lengths_cpu.sum()), len(valid_inputs),
    )

    model.to(device)
    optimizer = build_optimizer(model, cfg, device)
    loss_fn = build_loss(cfg.loss)
    use_amp = t.amp and device.type == "cuda"
    step_model = torch.compile(model) if t.compile else model
    np_rng = np.random.default_rng(t.seed)
    state = LoopState()
    best_weights = copy.deepcopy(model.state_dict())
    if resume_from is not None:
        ckpt = load_checkpoint(resume_from, map_location=device)
        model.load_state_dict(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        state = LoopState(**ckpt["loop"])
        restore_rng(ckpt["rng"], np_rng)
        best_path = ckpt_dir / "best.pt"
        best_weights = load_checkpoint(best_path, device)["model"] if best_path.is_file() else copy.deepcopy(model.state_dict())
        log.info("Resumed from %s after epoch %d", resume_from, state.epoch)
    else:
        # An interrupt during the first epoch can then still be resumed.
        _save_last(ckpt_dir, model, optimizer, state, np_rng, cfg)

    # Check the loss on the host every step on CPU (free), but only every few steps on a GPU,
    # where each check is a device->host sync that stalls the queue of kernels.
    sync_every = 1 if device.type == "cpu" else 50
    stopped_early = False
    keys = [t.monitor] + [k for k in ("hr@10", "ndcg@10") if k != t.monitor]
    with stop_requests() as stop:
        while state.epoch < t.max_epochs:
            epoch = state.epoch + 1
            model.train()
            started = time.perf_counter()
            order = np_rng.permutation(len(lengths_cpu))
            n_batches = math.ceil(len(order) / t.batch_size)
            loss_sum = torch.zeros((), device=device)
            positions = 0
            with epoch_progress(t.progress) as bar:
                task = bar.add_task(f"epoch {epoch}", total=n_batches, loss=float("nan"), rate=0.0)
                for step in range(n_batches):
                    rows_np = order[step * t.batch_size : (step + 1) * t.batch_size]
                    rows = torch.as_tensor(rows_np, device=device)
                    # Trailing padding columns of the batch carry nothing; cut them (not under
                    # compile, where a changing width would trigger recompiles).
                    width = cfg.model.max_len if t.compile else int(lengths_cpu[rows_np].max())
                    x, y, n = inputs[rows, :width], targets[rows, :width], lengths[rows]
                    ctx = torch.autocast(device.type, dtype=torch.bfloat16) if use_amp else nullcontext()
                    with ctx:
                        hidden = step_model(x, n)
                        real = y > 0
                        loss = loss_fn(model, hidden[real], y[real])
                    optimizer.zero_grad(set_to_none=True)
                    loss.backward()
                    if t.grad_clip_norm:
                        torch.nn.utils.clip_grad_norm_(model.parameters(), t.grad_clip_norm)
                    optimizer.step()
                    count = int(lengths_cpu[rows_np].sum())
                    loss_sum += loss.detach() * count
                    positions += count
                    if (step + 1) % sync_every == 0 or step + 1 == n_batches:
                        running = loss_sum.item() / positions
                        if not math.isfinite(running):
                            _save_last(ckpt_dir, model, optimizer, state, np_rng, cfg)
                            raise NonFiniteLoss(
                                f"The training loss became non-finite at epoch {epoch}, step {step + 1} "
                                "(try a lower optimizer.lr or trainer.grad_clip_norm); the last good "
                                "checkpoint is kept."
                            )
                        bar.update(task, completed=step + 1, loss=running, rate=(step + 1) / (time.perf_counter() - started))
                    if stop["signal"]:
                        break
            train_loss = loss_sum.item() / max(positions, 1)
            state.train_seconds += time.perf_counter() - started
            if stop["signal"]:
                # The epoch was cut short: keep the state of the last full epoch in last.pt.
                raise TrainingInterrupted(stop["signal"])
            state.epoch = epoch
            row: dict[str, Any] = {"epoch": epoch, "train_loss": round(train_loss, 6)}
            if epoch % t.eval_every == 0 or epoch == t.max_epochs:
                eval_started = time.perf_counter()
                valid = evaluation.evaluate_model(model, valid_inputs, t.eval_batch_size, ks, use_amp)
                state.eval_seconds += time.perf_counter() - eval_started
                row.update({f"valid/{k}": round(valid[k], 6) for k in metric_names(ks)})
                score = valid[t.monitor]
                improved = score > state.best_score
                if improved:
                    state.best_score, state.best_epoch, state.bad_evals = score, epoch, 0
                    best_weights = copy.deepcopy(model.state_dict())
                    save_checkpoint(
                        ckpt_dir / "best.pt",
                        {
                            "model": best_weights,
                            "epoch": epoch,
                            "valid": valid,
                            "config": asdict(cfg),
                            # Original item ids (index i = item i + 1) so a checkpoint alone can
                            # report recommendations in the user's own ids.
                            "item_ids": splits.data.item_ids.tolist(),
                        },
                    )
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
            write_history(run_dir / "history.csv", state.history)
            _save_last(ckpt_dir, model, optimizer, state, np_rng, cfg)
            if on_epoch_end is not None:
                on_epoch_end(dict(row))
            if state.bad_evals > t.patience:
                log.info("Early stopping: %s has not improved for %d evaluations.", t.monitor, state.bad_evals)
                stopped_early = True
                break

    model.load_state_dict(best_weights)
    best_valid = evaluation.evaluate_model(model, valid_inputs, t.eval_batch_size, ks, use_amp)
    return FitResult(state=state, valid=best_valid, stopped_early=stopped_early)


def _save_last(ckpt_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, state: LoopState, np_rng: np.random.Generator, cfg: TrainConfig) -> None:
    save_checkpoint(
        ckpt_dir / "last.pt",
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "loop": asdict(state),
            "rng": rng_state(np_rng),
            "config": asdict(cfg),
        },
    )
