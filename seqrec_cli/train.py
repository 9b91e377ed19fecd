"""`seqrec-train`: the Hydra entry point, and `run`, the same pipeline callable from Python.

config -> data -> model -> training -> run directory; the monitored validation value is returned
so Hydra sweepers (multirun, Optuna) can optimise it.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Optional

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig

from seqrec_cli import data as data_module
from seqrec_cli import models, tracking
from seqrec_cli.config import TrainConfig, metric_names, register_schemas, to_train_config
from seqrec_cli.confpath import CONFIG_PATH, register_resolvers
from seqrec_cli.data.batches import side_inputs
from seqrec_cli.errors import UserError
from seqrec_cli.runtime import (
    Distributed,
    distributed_device,
    gather_strided,
    init_distributed,
    seed_everything,
    set_deterministic,
    set_threads,
    shutdown_distributed,
)
from seqrec_cli.training import evaluation
from seqrec_cli.training.artifacts import plot_curves, write_json, write_text_atomic
from seqrec_cli.training.checkpoint import load_checkpoint
from seqrec_cli.training.progress import results_table, show_table
from seqrec_cli.training.trainer import TrainingInterrupted, fit

log = logging.getLogger("seqrec_cli")

# Settings that change what a checkpoint's weights mean; a resumed run must match them.
RESUME_MUST_MATCH = ("dataset", "model", "encoder", "loss")


def run(cfg: TrainConfig, run_dir: Path, resume_from: Optional[Path] = None) -> dict[str, Any]:
    """Train and test one configuration, writing everything into `run_dir`; returns metrics.json.

    Under torchrun (`trainer.distributed=true`) every process runs this; only rank 0 writes (and
    talks to the experiment tracker). With `logger` set, the settings, each epoch and the final
    metrics also go to that tracker.
    """
    started = time.perf_counter()
    t = cfg.trainer
    set_threads(t.num_threads)
    set_deterministic(t.deterministic)
    dist_info = init_distributed(t.distributed, t.device)
    tracker = (
        tracking.open_tracker(cfg.logger, run_dir, asdict(cfg), resumed=resume_from is not None)
        if dist_info.is_main else None
    )
    try:
        metrics = _run(cfg, run_dir, resume_from, dist_info, started, tracker.log_epoch if tracker else None)
        if tracker:
            tracker.log_final(metrics)
    except BaseException as exc:
        if tracker:
            tracker.close("KILLED" if isinstance(exc, (TrainingInterrupted, KeyboardInterrupt)) else "FAILED")
        raise
    finally:
        shutdown_distributed(dist_info)
    if tracker:
        tracker.close()
    return metrics


def _run(
    cfg: TrainConfig,
    run_dir: Path,
    resume_from: Optional[Path],
    dist_info: Distributed,
    started: float,
    on_epoch_end: Optional[Callable[[dict[str, Any]], None]],
) -> dict[str, Any]:
    t = cfg.trainer
    write = dist_info.is_main
    seed_everything(t.seed)
    device = distributed_device(dist_info, t.device)
    if resume_from is not None:
        _check_resume_config(resume_from, cfg)

    splits, summary = data_module.load(cfg.dataset)
    if write:
        write_json(run_dir / "data_summary.json", summary)
    log.info(
        "Data: %d users, %d items, %d interactions (%d users too short to evaluate, trained on only)",
        summary["users"], summary["items"], summary["interactions"], summary["split"]["train_only_users"],
    )
    if len(splits.valid) == 0:
        raise UserError(
            "No user has the three interactions leave-one-out needs (train, validation, test) after "
            "filtering: use a larger dataset or lower dataset.min_user_count."
        )

    side = side_inputs(splits.data, splits.train_end, cfg.encoder.time_features == "gap", cfg.model.user_embedding)
    # Users with a vector are those given a row > 0; best.pt keeps their original ids in row order.
    user_ids = splits.data.user_ids[side.user_rows > 0].tolist() if side.user_rows is not None else None

    seed_everything(t.seed)  # model init does not depend on how much randomness data loading used
    model = models.build(cfg.model, cfg.encoder, splits.data.n_items, len(user_ids) + 1 if user_ids is not None else 0)
    torch.manual_seed(t.seed + dist_info.rank)  # same init everywhere, own dropout masks per process
    n_params = models.count_parameters(model)
    log.info(
        "Model: %s encoder, %d parameters, on %s (%d CPU threads%s)", cfg.encoder.name, n_params, device,
        torch.get_num_threads(), f", {dist_info.world_size} processes" if dist_info.enabled else "",
    )

    result = fit(
        model, splits, cfg, device, run_dir, resume_from=resume_from, dist_info=dist_info,
        on_epoch_end=on_epoch_end, side=side, user_ids=user_ids,
    )

    eval_started = time.perf_counter()
    use_amp = t.amp and device.type == "cuda"
    gather = lambda ranks: gather_strided(ranks, dist_info)  # noqa: E731
    results: dict[str, dict[str, float]] = {}
    popularity: dict[str, dict[str, float]] = {}
    for split_name in ("valid", "test"):
        split = evaluation.shard(getattr(splits, split_name), dist_info.rank, dist_info.world_size)
        inputs = evaluation.prepare(splits, split, cfg.model.max_len, cfg.eval.mask_history, device, side)
        if split_name == "test":
            results["test"] = evaluation.evaluate_model(model, inputs, t.eval_batch_size, cfg.eval.ks, use_amp, gather)
        scorer = evaluation.popularity_scorer(splits.seen_item_counts(split_name), device)
        popularity[split_name] = evaluation.evaluate(inputs, scorer, t.eval_batch_size, cfg.eval.ks, gather)
    eval_seconds = result.state.eval_seconds + time.perf_counter() - eval_started

    metrics = {
        "monitor": f"valid/{t.monitor}",
        "objective": result.valid[t.monitor],
        "best_epoch": result.state.best_epoch,
        "epochs_run": result.state.epoch,
        "stopped_early": result.stopped_early,
        "valid": result.valid,
        "test": results["test"],
        "popularity": popularity,
        "n_params": n_params,
        "n_users": splits.data.n_users,
        "n_items": splits.data.n_items,
        "device": str(device),
        "num_threads": torch.get_num_threads(),
        "world_size": dist_info.world_size,
        "encoder": cfg.encoder.name,
        "loss": cfg.loss.name,
        "train_sequences": result.train_sequences,
        "train_positions": result.train_positions,
        "train_seconds": round(result.state.train_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
        # The per-epoch validation passes alone (full ranking of every validation user).
        "valid_eval_seconds": round(result.state.eval_seconds, 3),
        "total_seconds": round(time.perf_counter() - started, 3),
        "torch_version": torch.__version__,
    }
    if result.profile is not None:
        metrics["profile"] = result.profile.summary
    if not write:
        return metrics
    if result.profile is not None:
        write_text_atomic(run_dir / "profile.txt", result.profile.table)
        log.info("Profiled %s", ", ".join(f"{k} {v}" for k, v in result.profile.summary.items() if v is not None))
    write_json(run_dir / "metrics.json", metrics)
    if not plot_curves(run_dir / "curves.png", result.state.history, t.monitor):
        log.info("matplotlib is not installed: skipping curves.png (pip install 'seqrec-cli[plot]').")
    show_table(
        results_table(
            f"Test metrics ({len(splits.test)} users, best epoch {result.state.best_epoch})",
            {cfg.encoder.name: results["test"], "popularity": popularity["test"]},
            metric_names(cfg.eval.ks),
        )
    )
    log.info("Run directory: %s", run_dir)
    return metrics


def _check_resume_config(checkpoint: Path, cfg: TrainConfig) -> None:
    saved = load_checkpoint(checkpoint)["config"]
    now = asdict(cfg)
    # A key added to the schema after the checkpoint was written had its default value then.
    defaults = asdict(TrainConfig())
    differing = [
        f"{group}.{key}"
        for group in RESUME_MUST_MATCH
        for key in sorted(set(saved.get(group, {})) | set(now[group]))
        if not _same_setting(key, saved.get(group, {}).get(key, defaults[group].get(key)), now[group].get(key))
    ]
    if differing:
        raise UserError(
            f"Cannot resume from {checkpoint}: its run used different settings for {', '.join(differing)}."
        )


def _same_setting(key: str, saved: Any, now: Any) -> bool:
    """Equal settings; a dataset path given relative in one run and absolute in the other (or from
    another working directory) still names the same file when both resolve to it."""
    if key == "path" and isinstance(saved, str) and isinstance(now, str) and saved != now:
        return Path(saved).expanduser().resolve() == Path(now).expanduser().resolve()
    return saved == now


def resume_checkpoint(resume: Optional[str]) -> Optional[Path]:
    """`trainer.resume` may name a run directory or its last.pt."""
    if not resume:
        return None
    path = Path(resume).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / "last.pt"
    if not path.is_file():
        raise UserError(f"Nothing to resume at {resume}: expected a run directory with checkpoints/last.pt, or a last.pt file.")
    return path


register_schemas()
register_resolvers()


def _threads_for_parallel_jobs(hydra_cfg: Any) -> Optional[int]:
    """Under a parallel launcher (joblib) split the CPU cores between jobs, so N jobs with
    PyTorch's default of one thread per core do not oversubscribe the machine N times over."""
    launcher = hydra_cfg.launcher
    n_jobs = launcher.get("n_jobs") if "joblib" in str(launcher.get("_target_", "")).lower() else None
    if not n_jobs:
        return None
    cores = os.cpu_count() or 1
    parallel = cores if n_jobs < 0 else min(n_jobs, cores)
    return max(1, cores // parallel)


def _failed(run_dir: Path, message: str, multirun: bool, exit_code: int) -> float:
    """A failed job: under a sweep record it (error.json) and return NaN so the sweep goes on;
    in a single run exit non-zero."""
    log.error("%s", message)
    if multirun:
        write_json(run_dir / "error.json", {"error": message})
        return math.nan
    sys.exit(exit_code)


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)
    if int(os.environ.get("RANK", "0")) > 0:
        logging.getLogger().setLevel(logging.WARNING)  # one console voice under torchrun: rank 0's
    try:
        typed = to_train_config(cfg)
        if typed.trainer.num_threads is None:
            typed.trainer.num_threads = _threads_for_parallel_jobs(hydra_cfg)
        metrics = run(typed, run_dir, resume_checkpoint(typed.trainer.resume))
        return float(metrics["objective"])
    except (TrainingInterrupted, KeyboardInterrupt) as exc:
        resumable = (run_dir / "checkpoints" / "last.pt").is_file()
        overrides = " ".join(o for o in hydra_cfg.overrides.task if not o.startswith("trainer.resume="))
        log.error(
            "Interrupted by %s. %s", exc or "SIGINT",
            f"The last complete epoch is saved; continue with:  seqrec-train {overrides} trainer.resume={run_dir}"
            if resumable else "Nothing was trained yet.",
        )
        sys.exit(130)
    except UserError as exc:
        return _failed(run_dir, str(exc), multirun, 2)
    except torch.cuda.OutOfMemoryError as exc:
        message = f"The GPU ran out of memory ({str(exc).splitlines()[0]}): lower trainer.batch_size or model.max_len."
        return _failed(run_dir, message, multirun, 3)
    except Exception as exc:
        if not multirun:
            raise  # a bug, not a user error: the traceback is what a report needs
        log.exception("Job failed with an unexpected error")
        return _failed(run_dir, f"{type(exc).__name__}: {exc}", multirun, 1)


if __name__ == "__main__":
    main()
