"""The Python API: `compose` a config as the command line would, `train` it (`seqrec-train` is
this module's Hydra front end, `seqrec_cli/cli/train.py`).

config -> data -> model -> training -> run directory; metrics.json's dict is returned, and its
`objective` (the monitored validation value) is what Hydra sweepers optimise.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Callable, Optional, Sequence

import torch
from omegaconf import OmegaConf

from seqrec_cli import data as data_module
from seqrec_cli import models
from seqrec_cli.training import tracking
from seqrec_cli.config.checks import metric_names, validate
from seqrec_cli.config import registry
from seqrec_cli.config.convert import to_train_config
from seqrec_cli.config.schema import TrainConfig
from seqrec_cli.data import SequenceSplits
from seqrec_cli.config.feature_checks import uses_features
from seqrec_cli.data.batches import side_inputs
from seqrec_cli.data.item_features import feature_summary
from seqrec_cli.evaluation import cold_start
from seqrec_cli.training import features as item_setup
from seqrec_cli.errors import UserError
from seqrec_cli.training.runtime import (
    Distributed,
    distributed_device,
    gather_strided,
    init_distributed,
    seed_everything,
    set_deterministic,
    set_threads,
    shutdown_distributed,
)
from seqrec_cli.evaluation.split_eval import SplitEval, SplitMetrics, evaluate_split
from seqrec_cli.io.artifacts import plot_curves, write_json, write_text_atomic
from seqrec_cli.io.atomic import remove_stale_temporaries
from seqrec_cli.io.logfile import commit_log_files
from seqrec_cli.io.rundir import RunDirLock
from seqrec_cli.training import checkpoint, warm_start
from seqrec_cli.training.checkpoint import load_resume_state
from seqrec_cli.io.console import results_table, show_table
from seqrec_cli.training.trainer import FitContext, TrainingInterrupted, fit

log = logging.getLogger("seqrec_cli")


@dataclass
class Prepared:
    """Everything checked and built before the run directory is touched."""

    splits: SequenceSplits
    summary: dict[str, Any]
    model: models.SequentialRecommender
    device: torch.device
    ctx: FitContext
    n_params: int
    init_from: Optional[dict[str, Any]] = None  # provenance when started from a parent run
    features: Optional[Any] = None  # data.item_features.ItemFeatures, when loaded
    extra: Optional[dict[str, Any]] = None  # test-time cold-start and beyond-accuracy figures


def compose(overrides: Sequence[str] = ()) -> TrainConfig:
    """What `seqrec-train OVERRIDES` would train, as checked dataclasses (a `UserError` of one
    sentence for a bad override or value, as on the command line)."""
    return to_train_config(registry.compose("train", overrides, "seqrec-train"))


def train(
    cfg: TrainConfig, run_dir: Path, resume_from: Optional[Path] = None, record: Optional[dict[str, str]] = None
) -> dict[str, Any]:
    """Train and test one configuration, writing everything into `run_dir`; returns metrics.json.

    The run directory is locked for the run (a second writer is refused), and nothing is written
    into it until every check has passed: a refused resume leaves it byte for byte as it was.
    `record` maps file names (relative to the run dir) to the text that records what was asked
    (the CLI passes Hydra's `.hydra/*.yaml`); by default `.hydra/config.yaml` holds `cfg`.
    Under torchrun (`trainer.distributed=true`) every process runs this; only rank 0 writes (and
    talks to the experiment tracker).
    """
    started = time.perf_counter()
    validate(cfg)  # a TrainConfig built in Python gets the CLI's checks
    t = cfg.trainer
    set_threads(t.num_threads)
    set_deterministic(t.deterministic)
    dist_info = init_distributed(t.distributed, t.device)
    try:
        with RunDirLock(run_dir) if dist_info.is_main else nullcontext():
            if resume_from is None and dist_info.is_main:
                commit_log_files()  # a new run's directory is ours: its failures belong in train.log
            prepared = _prepare(cfg, run_dir, resume_from, dist_info, started)
            if dist_info.is_main:
                _record_start(run_dir, cfg, record, prepared.summary)
            metrics = _tracked(cfg, run_dir, prepared)
    finally:
        shutdown_distributed(dist_info)
    if not t.keep_files and dist_info.is_main:
        shutil.rmtree(run_dir, ignore_errors=True)
        log.info("trainer.keep_files=false: removed %s.", run_dir)
    return metrics


def _tracked(cfg: TrainConfig, run_dir: Path, prepared: Prepared) -> dict[str, Any]:
    """Train and test, with the configured experiment tracker fed along the way (rank 0 only)."""
    tracker = (
        tracking.open_tracker(cfg.logger, run_dir, asdict(cfg), resumed=prepared.ctx.resume is not None)
        if prepared.ctx.dist_info.is_main
        else None
    )
    try:
        metrics = _train_and_test(cfg, prepared, tracker.log_epoch if tracker else None)
        if tracker:
            tracker.log_final(metrics)
    except BaseException as exc:
        if tracker:
            tracker.close("KILLED" if isinstance(exc, (TrainingInterrupted, KeyboardInterrupt)) else "FAILED")
        raise
    if tracker:
        tracker.close()
    return metrics


def _prepare(
    cfg: TrainConfig, run_dir: Path, resume_from: Optional[Path], dist_info: Distributed, started: float
) -> Prepared:
    """Read the data, build the model and check a resume against both, writing nothing."""
    t = cfg.trainer
    seed_everything(t.seed)
    device = distributed_device(dist_info, t.device)
    resume = load_resume_state(resume_from, device) if resume_from is not None else None
    # A resumed run was initialised when it started; only a new one starts from a parent.
    parent = warm_start.open_parent(t.init_from, cfg) if t.init_from and resume is None else None
    splits, summary = data_module.load(cfg.dataset)
    log.info(
        "Data: %d users, %d items, %d interactions (%d users too short to evaluate, trained on only)",
        summary["users"],
        summary["items"],
        summary["interactions"],
        summary["split"]["train_only_users"],
    )
    inter = splits.data
    fingerprint = checkpoint.data_fingerprint(inter.n_users, inter.item_ids.tolist(), inter.offsets, inter.items)
    side = side_inputs(inter, splits.train_end, cfg.encoder.time_features == "gap", cfg.model.user_embedding)
    # Users with a vector are those given a row > 0; best.pt keeps their original ids in row order.
    user_ids = inter.user_ids[side.user_rows > 0].tolist() if side.user_rows is not None else None
    features = item_setup.load_for_run(cfg, splits, resume, resume_from)
    if features is not None:
        summary = {**summary, "item_features": feature_summary(features, inter.items)}
    seed_everything(t.seed)  # model init does not depend on how much randomness data loading used
    model = models.build(
        cfg.model,
        cfg.encoder,
        inter.n_items,
        len(user_ids) + 1 if user_ids is not None else 0,
        objective=cfg.objective.name,
        feature_meta=features.meta if features is not None and uses_features(cfg.model) else None,
    )
    if model.item_repr is not None:
        model.item_repr.set_catalogue(features, splits.seen_item_counts("valid"))
    provenance = warm_start.transfer(parent, model, inter.item_ids.tolist(), user_ids, cfg) if parent else None
    if resume is not None:
        provenance = _recorded_parent(run_dir)
    if provenance is not None:
        summary = {**summary, "init_from": provenance}
    torch.manual_seed(t.seed + dist_info.rank)  # same init everywhere, own dropout masks per process
    if resume is not None:
        shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
        checkpoint.check_resume(resume_from, resume, asdict(cfg), asdict(TrainConfig()), fingerprint, shapes)
    n_params = models.count_parameters(model)
    log.info(
        "Model: %s encoder, %d parameters, on %s (%d CPU threads%s)",
        cfg.encoder.name,
        n_params,
        device,
        torch.get_num_threads(),
        f", {dist_info.world_size} processes" if dist_info.enabled else "",
    )
    ctx = FitContext(run_dir, dist_info, side, user_ids, fingerprint, resume, resume_from, started)
    ctx.item_features = features.meta if model.item_repr is not None else None
    return Prepared(splits, summary, model, device, ctx, n_params, provenance, features)


def _record_start(run_dir: Path, cfg: TrainConfig, record: Optional[dict[str, str]], summary: dict[str, Any]) -> None:
    """The checks passed: from here on the run directory is this run's record."""
    commit_log_files()
    for tmp in remove_stale_temporaries(run_dir / "checkpoints"):
        log.info("Removed %s, left by a write that was cut off.", tmp.name)
    texts = record if record is not None else {".hydra/config.yaml": OmegaConf.to_yaml(asdict(cfg))}
    for name, text in texts.items():
        write_text_atomic(run_dir / name, text)
    write_json(run_dir / "data_summary.json", summary)


def _train_and_test(
    cfg: TrainConfig, prepared: Prepared, on_epoch_end: Optional[Callable[[dict[str, Any]], None]]
) -> dict[str, Any]:
    t, ctx, splits = cfg.trainer, prepared.ctx, prepared.splits
    result = fit(prepared.model, splits, cfg, prepared.device, ctx, on_epoch_end=on_epoch_end)
    eval_started = time.perf_counter()
    results, popularity = _test(cfg, prepared)
    metrics = {
        "monitor": f"valid/{t.monitor}",
        "objective": result.valid[t.monitor],
        "best_epoch": result.state.best_epoch,
        "epochs_run": result.state.epoch,
        "stopped_early": result.stopped_early,
        "valid": result.valid,
        "test": results,
        "popularity": popularity,
        "n_params": prepared.n_params,
        "n_users": splits.data.n_users,
        "n_items": splits.data.n_items,
        "device": str(prepared.device),
        "num_threads": torch.get_num_threads(),
        "world_size": ctx.dist_info.world_size,
        "encoder": cfg.encoder.name,
        "loss": cfg.loss.name,
        "train_sequences": result.train_sequences,
        "train_positions": result.train_positions,
        "train_seconds": round(result.state.train_seconds, 3),
        "eval_seconds": round(result.state.eval_seconds + time.perf_counter() - eval_started, 3),
        # The per-epoch validation passes alone (full ranking of every validation user).
        "valid_eval_seconds": round(result.state.eval_seconds, 3),
        # Every process of the run (a resumed run counts the earlier ones up to their last save).
        "total_seconds": round(_earlier_seconds(ctx) + time.perf_counter() - ctx.started, 3),
        "resumed": ctx.resume is not None,
        "torch_version": torch.__version__,
        "tags": list(cfg.tags),
        "init_from": prepared.init_from,  # free-form labels (tags=[...]): seqrec-report shows them
    }
    if result.profile is not None:
        metrics["profile"] = result.profile.summary
    metrics.update(prepared.extra or {})
    if ctx.dist_info.is_main:
        _write_results(cfg, prepared, result, metrics)
    return metrics


def _recorded_parent(run_dir: Path) -> Optional[dict[str, Any]]:
    """A resumed run keeps the provenance its first process recorded in data_summary.json."""
    try:
        return json.loads((run_dir / "data_summary.json").read_text()).get("init_from")
    except (OSError, ValueError):
        return None


def _earlier_seconds(ctx: FitContext) -> float:
    """Wall time of the earlier processes of a resumed run, up to their last save."""
    return float(ctx.resume["loop"].get("wall_seconds", 0.0)) if ctx.resume is not None else 0.0


def _test(cfg: TrainConfig, prepared: Prepared) -> tuple[dict[str, float], dict[str, dict[str, float]]]:
    """Test metrics of the model, and the popularity baseline on both splits; in one process also
    `prepared.extra`: warm / cold groups and the feature-only baseline of both splits, beyond-accuracy
    metrics of the test lists."""
    t, dist_info, splits = cfg.trainer, prepared.ctx.dist_info, prepared.splits
    how = SplitEval(
        max_len=cfg.model.max_len,
        mask_history=cfg.eval.mask_history,
        batch_size=t.eval_batch_size,
        ks=cfg.eval.ks,
        amp=t.amp and prepared.device.type == "cuda",
        device=prepared.device,
        side=prepared.ctx.side,
    )
    gather = lambda ranks: gather_strided(ranks, dist_info)  # noqa: E731
    shard = dict(rank=dist_info.rank, world_size=dist_info.world_size, gather=gather)
    one_process = not dist_info.enabled
    matrix = cold_start.feature_matrix(prepared.features) if one_process and prepared.features is not None else None
    # The validation split is ranked by the model again only when that adds something: its cold
    # targets' groups, or the feature-only baseline.
    valid_cold = not (splits.seen_item_counts("valid")[splits.valid.targets] > 0).all()
    valid_model = prepared.model if one_process and (valid_cold or matrix is not None) else None
    valid = evaluate_split(splits, "valid", how, valid_model, matrix=matrix, **shard)
    test = evaluate_split(splits, "test", how, prepared.model, matrix=matrix, **shard)
    prepared.extra = _run_extras({"valid": valid, "test": test}, with_features=matrix is not None)
    return test.model, {"valid": valid.popularity, "test": test.popularity}


def _run_extras(found: dict[str, SplitMetrics], with_features: bool) -> dict[str, Any]:
    """What metrics.json adds from the splits ranked with details (one process): their warm / cold
    groups and feature-only baseline (`cold_start.split_extras`), the test lists' beyond accuracy."""
    extras: dict[str, Any] = {}
    for split_name, result in found.items():
        if result.details is not None:
            cold_start.merge_extras(extras, cold_start.split_extras(result.details, split_name, with_features))
    if found["test"].details is not None:
        cold_start.merge_extras(extras, {"beyond": {"test": found["test"].details["beyond"]}})
    return extras


def _write_results(cfg: TrainConfig, prepared: Prepared, result: Any, metrics: dict[str, Any]) -> None:
    run_dir = prepared.ctx.run_dir
    if result.profile is not None:
        write_text_atomic(run_dir / "profile.txt", result.profile.table)
        log.info("Profiled %s", ", ".join(f"{k} {v}" for k, v in result.profile.summary.items() if v is not None))
    write_json(run_dir / "metrics.json", metrics)
    if not plot_curves(run_dir / "curves.png", result.state.history, cfg.trainer.monitor):
        log.info("matplotlib is not installed: skipping curves.png (pip install 'seqrec-cli[plot]').")
    show_table(
        results_table(
            f"Test metrics ({len(prepared.splits.test)} users, best epoch {result.state.best_epoch})",
            {cfg.encoder.name: metrics["test"], "popularity": metrics["popularity"]["test"]},
            metric_names(cfg.eval.ks),
        )
    )
    cold_start.show_cold_start(metrics, cfg.encoder.name, cfg.eval.ks)
    log.info("Run directory: %s", run_dir)


def resume_checkpoint(resume: Optional[str]) -> Optional[Path]:
    """`trainer.resume` may name a run directory or its last.pt."""
    if not resume:
        return None
    path = Path(resume).expanduser()
    if path.is_dir():
        path = path / "checkpoints" / "last.pt"
    if not path.is_file():
        raise UserError(
            f"Nothing to resume at {resume}: expected a run directory with checkpoints/last.pt, or a last.pt file."
        )
    return path
