"""Value checks for a composed configuration: well-typed values that still make no sense.

Hydra's schema catches unknown keys and wrong types; these checks catch the rest (a negative
learning rate, heads that do not divide the embedding size, a temporal split without timestamps),
each as one UserError sentence naming the key and what it accepts, before any data is read.
`validate` runs them all; the dataset's are in `dataset_checks.py`, the item features' in
`feature_checks.py`, the objective's in `objective_checks.py`.
"""

from __future__ import annotations

import math
from typing import List

from seqrec_cli.config.dataset_checks import dataset_has_times, time_bound, validate_dataset, validate_synthetic
from seqrec_cli.config.feature_checks import validate_features
from seqrec_cli.config.objective_checks import validate_objective
from seqrec_cli.config.require import require, require_choice
from seqrec_cli.config.schema import (
    ATTENTION_BLOCKS,
    ENCODERS,
    LOGGERS,
    LOSSES,
    NEGATIVE_SAMPLING,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULERS,
    TIME_FEATURES,
    TrainConfig,
)

# Other packages import these from here, the homes of some of them being newer than their
# importers: `time_bound` (seqrec_cli.data.sources), `validate_dataset` (tests), `require` /
# `require_choice` (seqrec_cli.serving.config).
__all__ = [
    "metric_names",
    "require",
    "require_choice",
    "time_bound",
    "validate",
    "validate_dataset",
    "validate_schedule",
]


def metric_names(ks: List[int]) -> List[str]:
    """Every metric the evaluation reports for the given cut-offs, e.g. `ndcg@10`, `mrr`."""
    return [f"{m}@{k}" for m in ("hr", "ndcg") for k in ks] + ["mrr"]


def validate(cfg: TrainConfig) -> None:
    """Reject values that are well-typed but impossible, naming the key and what is allowed."""
    validate_dataset(cfg.dataset)
    validate_features(cfg)
    validate_synthetic(cfg.dataset.synthetic)
    _validate_model(cfg)
    _validate_loss_and_optimizer(cfg)
    _validate_trainer(cfg)
    validate_schedule(cfg)
    validate_objective(cfg)


def _validate_model(cfg: TrainConfig) -> None:
    m, e = cfg.model, cfg.encoder
    require(m.embedding_dim > 0, "model.embedding_dim", m.embedding_dim, "an integer > 0")
    require(m.max_len > 0, "model.max_len", m.max_len, "an integer > 0")
    require(m.init_std > 0, "model.init_std", m.init_std, "a number > 0")
    require_choice("encoder.name", e.name, ENCODERS)
    require(e.num_layers > 0, "encoder.num_layers", e.num_layers, "an integer > 0")
    require(e.num_heads > 0, "encoder.num_heads", e.num_heads, "an integer > 0")
    if e.name == "attention":
        require(
            m.embedding_dim % e.num_heads == 0,
            "encoder.num_heads",
            e.num_heads,
            f"a divisor of model.embedding_dim ({m.embedding_dim})",
        )
    require_choice("encoder.block", e.block, ATTENTION_BLOCKS)
    if e.block != "sasrec":
        require(
            e.name == "attention", "encoder.block", e.block, f"sasrec: encoder={e.name} has no attention blocks to swap"
        )
        require(e.pre_norm, "encoder.pre_norm", e.pre_norm, f"true: the {e.block} block is pre-LN only")
    if e.name == "gru_attention":
        hidden = e.hidden_size or m.embedding_dim
        require(
            hidden % e.num_heads == 0,
            "encoder.num_heads",
            e.num_heads,
            f"a divisor of the recurrent state size ({hidden})",
        )
    require_choice("encoder.time_features", e.time_features, TIME_FEATURES)
    if e.time_features == "gap":
        require(
            dataset_has_times(cfg.dataset),
            "encoder.time_features",
            e.time_features,
            "none: time-gap features need timestamps (dataset.time_col), and this dataset has none",
        )
    for key in ("hidden_size", "ffn_size"):
        value = getattr(e, key)
        require(value is None or value > 0, f"encoder.{key}", value, "null or an integer > 0")
    require(0.0 <= e.dropout < 1.0, "encoder.dropout", e.dropout, "a number in [0, 1)")


def _validate_loss_and_optimizer(cfg: TrainConfig) -> None:
    o = cfg.optimizer
    require_choice("loss.name", cfg.loss.name, LOSSES)
    require(cfg.loss.n_negatives > 0, "loss.n_negatives", cfg.loss.n_negatives, "an integer > 0")
    require_choice("loss.sampling", cfg.loss.sampling, NEGATIVE_SAMPLING)
    require(cfg.loss.popularity_alpha >= 0, "loss.popularity_alpha", cfg.loss.popularity_alpha, "a number >= 0")
    require(0.0 <= cfg.loss.gbce_t <= 1.0, "loss.gbce_t", cfg.loss.gbce_t, "a number in [0, 1]")
    require_choice("optimizer.name", o.name, OPTIMIZERS)
    require(o.lr > 0 and math.isfinite(o.lr), "optimizer.lr", o.lr, "a finite number > 0")
    require(o.weight_decay >= 0, "optimizer.weight_decay", o.weight_decay, "a number >= 0")
    require(
        len(o.betas) == 2 and all(0.0 <= b < 1.0 for b in o.betas),
        "optimizer.betas",
        o.betas,
        "two numbers in [0, 1)",
    )
    require(o.momentum >= 0, "optimizer.momentum", o.momentum, "a number >= 0")


def _validate_trainer(cfg: TrainConfig) -> None:
    t, ev = cfg.trainer, cfg.eval
    require(t.max_epochs > 0, "trainer.max_epochs", t.max_epochs, "an integer > 0")
    require(t.patience >= 0, "trainer.patience", t.patience, "an integer >= 0")
    require(t.eval_every > 0, "trainer.eval_every", t.eval_every, "an integer > 0")
    require(t.batch_size > 0, "trainer.batch_size", t.batch_size, "an integer > 0")
    require(t.eval_batch_size > 0, "trainer.eval_batch_size", t.eval_batch_size, "an integer > 0")
    require(t.profile_steps >= 0, "trainer.profile_steps", t.profile_steps, "an integer >= 0")
    require(
        t.num_threads is None or t.num_threads > 0,
        "trainer.num_threads",
        t.num_threads,
        "null or an integer > 0",
    )
    require(
        t.grad_clip_norm is None or t.grad_clip_norm > 0,
        "trainer.grad_clip_norm",
        t.grad_clip_norm,
        "null or a number > 0",
    )
    device_ok = t.device in ("auto", "cpu", "cuda", "mps") or (t.device.startswith("cuda:") and t.device[5:].isdigit())
    require(device_ok, "trainer.device", t.device, "one of auto, cpu, cuda, cuda:N, mps")
    require(len(ev.ks) > 0 and all(k > 0 for k in ev.ks), "eval.ks", ev.ks, "a list of integers > 0")
    allowed = metric_names(ev.ks)
    require(t.monitor in allowed, "trainer.monitor", t.monitor, "one of " + ", ".join(allowed))
    require_choice("logger.name", cfg.logger.name, LOGGERS)
    for name in cfg.logger.use:
        require_choice(f"logger.use.{name}", name, LOGGERS)
    require(
        all(isinstance(tag, str) and tag.strip() for tag in cfg.tags), "tags", cfg.tags, "a list of non-empty labels"
    )


def validate_schedule(cfg: TrainConfig) -> None:
    """The lr schedule and the step controls: accumulation, early-stopping margin, top-k checkpoints."""
    sc, t = cfg.scheduler, cfg.trainer
    require_choice("scheduler.name", sc.name, SCHEDULERS)
    require(sc.warmup_steps >= 0, "scheduler.warmup_steps", sc.warmup_steps, "an integer >= 0")
    require(sc.warmup_epochs >= 0, "scheduler.warmup_epochs", sc.warmup_epochs, "a number >= 0")
    require(
        not (sc.warmup_steps and sc.warmup_epochs),
        "scheduler.warmup_epochs",
        sc.warmup_epochs,
        f"0 when scheduler.warmup_steps is set ({sc.warmup_steps}): give the warmup one way",
    )
    require(0.0 <= sc.min_lr_ratio <= 1.0, "scheduler.min_lr_ratio", sc.min_lr_ratio, "a number in [0, 1]")
    require(0.0 < sc.gamma <= 1.0, "scheduler.gamma", sc.gamma, "a number in (0, 1]")
    require(sc.step_epochs > 0, "scheduler.step_epochs", sc.step_epochs, "an integer > 0")
    require(sc.plateau_patience > 0, "scheduler.plateau_patience", sc.plateau_patience, "an integer > 0")
    require(t.min_delta >= 0, "trainer.min_delta", t.min_delta, "a number >= 0")
    require(
        t.accumulate_grad_batches > 0, "trainer.accumulate_grad_batches", t.accumulate_grad_batches, "an integer > 0"
    )
    require(t.save_top_k >= 0, "trainer.save_top_k", t.save_top_k, "an integer >= 0")
    require_choice("trainer.precision", t.precision, PRECISIONS)
    require(
        t.limit_batches is None or t.limit_batches > 0,
        "trainer.limit_batches",
        t.limit_batches,
        "null or an integer > 0",
    )
    require(t.overfit_batches >= 0, "trainer.overfit_batches", t.overfit_batches, "an integer >= 0")
    require(
        not (t.overfit_batches and t.distributed),
        "trainer.overfit_batches",
        t.overfit_batches,
        "0 under trainer.distributed=true",
    )
