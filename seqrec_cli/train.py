"""`seqrec-train`: the Hydra entry point, and `run`, the same pipeline callable from Python.

config -> data -> model -> training -> run directory; the monitored validation value is returned
so Hydra sweepers (multirun, Optuna) can optimise it.
"""

from __future__ import annotations

import logging
import math
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any, Callable, Optional

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from seqrec_cli import data as data_module
from seqrec_cli import models, tracking
from seqrec_cli.config import TrainConfig, metric_names, register_schemas, to_train_config
from seqrec_cli.confpath import CONFIG_PATH, register_resolvers
from seqrec_cli.errors import UserError
from seqrec_cli.runtime import seed_everything, select_device, set_deterministic, set_threads
from seqrec_cli.training import evaluation
from seqrec_cli.training.artifacts import plot_curves, write_json
from seqrec_cli.training.checkpoint import load_checkpoint
from seqrec_cli.training.progress import results_table, show_table
from seqrec_cli.training.trainer import TrainingInterrupted, fit

log = logging.getLogger("seqrec_cli")

# Settings that change what a checkpoint's weights mean; a resumed run must match them.
RESUME_MUST_MATCH = ("dataset", "model", "encoder", "loss")


def run(cfg: TrainConfig, run_dir: Path, resume_from: Optional[Path] = None) -> dict[str, Any]:
    """Train and test one configuration, writing everything into `run_dir`; returns metrics.json.

    With `logger` set, the settings, each epoch and the final metrics also go to that tracker.
    """
    tracker = tracking.open_tracker(cfg.logger, run_dir, asdict(cfg), resumed=resume_from is not None)
    try:
        metrics = _train_and_test(cfg, run_dir, resume_from, tracker.log_epoch)
        tracker.log_final(metrics)
    except BaseException as exc:
        tracker.close("KILLED" if isinstance(exc, (TrainingInterrupted, KeyboardInterrupt)) else "FAILED")
        raise
    tracker.close()
    return metrics


def _train_and_test(
    cfg: TrainConfig, run_dir: Path, resume_from: Optional[Path], on_epoch_end: Callable[[dict[str, Any]], None]
) -> dict[str, Any]:
    started = time.perf_counter()
    t = cfg.trainer
    set_threads(t.num_threads)
    set_deterministic(t.deterministic)
    seed_everything(t.seed)
    device = select_device(t.device)
    if resume_from is not None:
        _check_resume_config(resume_from, cfg)

    splits, summary = data_module.load(cfg.dataset)
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

    seed_everything(t.seed)  # model init does not depend on how much randomness data loading used
    model = models.build(cfg.model, cfg.encoder, splits.data.n_items)
    n_params = models.count_parameters(model)
    log.info("Model: %s encoder, %d parameters, on %s", cfg.encoder.name, n_params, device)

    result = fit(model, splits, cfg, device, run_dir, resume_from=resume_from, on_epoch_end=on_epoch_end)

    eval_started = time.perf_counter()
    use_amp = t.amp and device.type == "cuda"
    test_inputs = evaluation.prepare(splits, splits.test, cfg.model.max_len, cfg.eval.mask_history, device)
    test = evaluation.evaluate_model(model, test_inputs, t.eval_batch_size, cfg.eval.ks, use_amp)
    popularity = {}
    for split_name, split_inputs in (("valid", None), ("test", test_inputs)):
        split = getattr(splits, split_name)
        inputs = split_inputs or evaluation.prepare(splits, split, cfg.model.max_len, cfg.eval.mask_history, device)
        scorer = evaluation.popularity_scorer(splits.seen_item_counts(split_name), device)
        popularity[split_name] = evaluation.evaluate(inputs, scorer, t.eval_batch_size, cfg.eval.ks)
    eval_seconds = result.state.eval_seconds + time.perf_counter() - eval_started

    metrics = {
        "monitor": f"valid/{t.monitor}",
        "objective": result.valid[t.monitor],
        "best_epoch": result.state.best_epoch,
        "epochs_run": result.state.epoch,
        "stopped_early": result.stopped_early,
        "valid": result.valid,
        "test": test,
        "popularity": popularity,
        "n_params": n_params,
        "n_users": splits.data.n_users,
        "n_items": splits.data.n_items,
        "device": str(device),
        "encoder": cfg.encoder.name,
        "loss": cfg.loss.name,
        "train_seconds": round(result.state.train_seconds, 3),
        "eval_seconds": round(eval_seconds, 3),
        "total_seconds": round(time.perf_counter() - started, 3),
        "torch_version": torch.__version__,
    }
    write_json(run_dir / "metrics.json", metrics)
    if not plot_curves(run_dir / "curves.png", result.state.history, t.monitor):
        log.info("matplotlib is not installed: skipping curves.png (pip install 'seqrec-cli[plot]').")
    keys = metric_names(cfg.eval.ks)
    show_table(
        results_table(
            f"Test metrics ({len(splits.test)} users, best epoch {result.state.best_epoch})",
            {cfg.encoder.name: test, "popularity": popularity["test"]},
            keys,
        )
    )
    log.info("Run directory: %s", run_dir)
    return metrics


def _check_resume_config(checkpoint: Path, cfg: TrainConfig) -> None:
    saved = load_checkpoint(checkpoint)["config"]
    now = asdict(cfg)
    differing = [
        f"{group}.{key}"
        for group in RESUME_MUST_MATCH
        for key in sorted(set(saved.get(group, {})) | set(now[group]))
        if saved.get(group, {}).get(key) != now[group].get(key)
    ]
    if differing:
        raise UserError(
            f"Cannot resume from {checkpoint}: its run used different settings for {', '.join(differing)}."
        )


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


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="train")
def main(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    run_dir = Path(hydra_cfg.runtime.output_dir)
    try:
        typed = to_train_config(cfg)
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
        log.error("%s", exc)
        if multirun:
            return math.nan
        sys.exit(2)
    except torch.cuda.OutOfMemoryError as exc:
        log.error("The GPU ran out of memory (%s): lower trainer.batch_size or model.max_len.", str(exc).splitlines()[0])
        if multirun:
            return math.nan
        sys.exit(3)


if __name__ == "__main__":
    main()
