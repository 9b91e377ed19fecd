"""Value checks for a composed configuration: well-typed values that still make no sense.

Hydra's schema catches unknown keys and wrong types; these checks catch the rest (a negative
learning rate, heads that do not divide the embedding size, a temporal split without timestamps),
each as one UserError sentence naming the key and what it accepts, before any data is read.
"""

from __future__ import annotations

import math
from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, List, Optional, Union

from seqrec_cli.config.schema import (
    ATTENTION_BLOCKS,
    BAD_LINES,
    DATA_SOURCES,
    DEDUP,
    ENCODERS,
    ID_TYPES,
    LOGGERS,
    LOSSES,
    MOVIELENS,
    NEGATIVE_SAMPLING,
    OPTIMIZERS,
    PRECISIONS,
    SCHEDULERS,
    SPLITS,
    TABLE_FORMATS,
    TIME_FEATURES,
    DatasetConfig,
    TrainConfig,
)
from seqrec_cli.config.feature_checks import validate_features
from seqrec_cli.errors import UserError


def require(condition: bool, key: str, value: Any, expected: str) -> None:
    if not condition:
        raise UserError(f"Invalid config value {key}={value!r}: expected {expected}.")


def require_choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    require(value in allowed, key, value, "one of " + ", ".join(allowed))


def metric_names(ks: List[int]) -> List[str]:
    """Every metric the evaluation reports for the given cut-offs, e.g. `ndcg@10`, `mrr`."""
    return [f"{m}@{k}" for m in ("hr", "ndcg") for k in ks] + ["mrr"]


def validate(cfg: TrainConfig) -> None:
    """Reject values that are well-typed but impossible, naming the key and what is allowed."""
    validate_dataset(cfg.dataset)
    validate_features(cfg)
    _validate_synthetic(cfg.dataset.synthetic)
    _validate_model(cfg)
    _validate_loss_and_optimizer(cfg)
    _validate_trainer(cfg)
    validate_schedule(cfg)
    from seqrec_cli.config.objective_checks import validate_objective  # it builds on `require`

    validate_objective(cfg)


def _validate_synthetic(s: Any) -> None:
    require(s.n_users >= 2, "dataset.synthetic.n_users", s.n_users, "an integer >= 2")
    require(s.n_items >= 2, "dataset.synthetic.n_items", s.n_items, "an integer >= 2")
    require(s.min_length >= 3, "dataset.synthetic.min_length", s.min_length, "an integer >= 3")
    require(
        s.mean_length >= s.min_length,
        "dataset.synthetic.mean_length",
        s.mean_length,
        f"an integer >= dataset.synthetic.min_length ({s.min_length})",
    )
    require(
        0.0 <= s.sequential_strength <= 1.0,
        "dataset.synthetic.sequential_strength",
        s.sequential_strength,
        "a number in [0, 1]",
    )


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


def validate_dataset(d: DatasetConfig) -> None:
    """The dataset part of `validate`: reader choice, the options it needs, preprocessing values."""
    require_choice("dataset.source", d.source, DATA_SOURCES)
    if d.source in ("csv", "atomic", "sequences", "pairs"):
        require(bool(d.path), "dataset.path", d.path, f"a file (or folder) to read when dataset.source={d.source}")
    if d.source in ("movielens", "bundled"):
        require_choice("dataset.name", d.name, MOVIELENS)
    require_choice("dataset.format", d.format, TABLE_FORMATS)
    require_choice("dataset.id_type", d.id_type, ID_TYPES)
    require_choice("dataset.dedup", d.dedup, DEDUP)
    require_choice("dataset.on_bad_lines", d.on_bad_lines, BAD_LINES)
    validate_time_window(d)
    require(len(d.sep) > 0, "dataset.sep", d.sep, "a non-empty separator")
    if d.min_rating is not None and d.source in ("csv", "atomic"):
        require(
            bool(d.rating_col),
            "dataset.rating_col",
            d.rating_col,
            "the column holding ratings, since dataset.min_rating is set",
        )
    if d.min_rating is not None:
        require(
            d.source not in ("sequences", "pairs", "synthetic"),
            "dataset.min_rating",
            d.min_rating,
            f"null: dataset.source={d.source} has no ratings",
        )
    require(d.min_user_count >= 1, "dataset.min_user_count", d.min_user_count, "an integer >= 1")
    require(d.min_item_count >= 1, "dataset.min_item_count", d.min_item_count, "an integer >= 1")
    require(
        d.max_history is None or d.max_history >= 1,
        "dataset.max_history",
        d.max_history,
        "null or an integer >= 1",
    )
    if d.sha256 is not None:
        digest = d.sha256.strip().lower()
        require(
            len(digest) == 64 and all(c in "0123456789abcdef" for c in digest),
            "dataset.sha256",
            d.sha256,
            "null or 64 hexadecimal digits",
        )
    validate_split(d)


def validate_split(d: DatasetConfig) -> None:
    """The split kind, and for a temporal split its cuts and the timestamps it needs."""
    sp = d.split
    require_choice("dataset.split.kind", sp.kind, SPLITS)
    if sp.kind == "temporal":
        for key in ("valid_quantile", "test_quantile"):
            value = getattr(sp, key)
            require(0.0 < value < 1.0, f"dataset.split.{key}", value, "a number strictly between 0 and 1")
        if sp.valid_time is None and sp.test_time is None:
            require(
                sp.valid_quantile < sp.test_quantile,
                "dataset.split.valid_quantile",
                sp.valid_quantile,
                f"a number below dataset.split.test_quantile ({sp.test_quantile})",
            )
        if sp.valid_time is not None and sp.test_time is not None:
            require(
                sp.valid_time < sp.test_time,
                "dataset.split.valid_time",
                sp.valid_time,
                f"a time before dataset.split.test_time ({sp.test_time})",
            )
        require(
            dataset_has_times(d),
            "dataset.split.kind",
            sp.kind,
            "leave_one_out: a temporal split needs timestamps (dataset.time_col), and this dataset has none",
        )


def time_bound(value: Any, time_format: Optional[str] = None) -> Optional[Union[int, float, datetime]]:
    """A time-window bound as a number (int when whole) or a UTC datetime; None when it is neither.

    Dates are ISO 8601 or `time_format`; a date without a zone is UTC, as in the time column.
    """
    text = str(value).strip()
    if time_format:
        try:
            return datetime.strptime(text, time_format).replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    try:
        number = Decimal(text)
        if number.is_finite():
            return int(number) if number == number.to_integral_value() else float(number)
    except InvalidOperation:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def validate_time_window(d: DatasetConfig) -> None:
    """dataset.min_time / max_time: each a number or a date, both of one kind, min <= max."""
    bounds = {}
    for key in ("min_time", "max_time"):
        value = getattr(d, key)
        if value is None:
            continue
        bound = time_bound(value, d.time_format)
        require(
            bound is not None,
            f"dataset.{key}",
            value,
            "a number in the time column's units or a date such as 2020-01-31 (or in dataset.time_format)",
        )
        bounds[key] = bound
    if bounds:
        require(
            dataset_has_times(d),
            f"dataset.{next(iter(bounds))}",
            getattr(d, next(iter(bounds))),
            "null: a time window needs timestamps (dataset.time_col), and this dataset has none",
        )
    if len(bounds) == 2:
        low, high = bounds["min_time"], bounds["max_time"]
        require(
            isinstance(low, datetime) == isinstance(high, datetime),
            "dataset.max_time",
            d.max_time,
            f"a bound of the same kind as dataset.min_time={d.min_time!r} (both numbers or both dates)",
        )
        require(low <= high, "dataset.min_time", d.min_time, f"a time at or before dataset.max_time ({d.max_time})")


def dataset_has_times(d: DatasetConfig) -> bool:
    """Whether the configured reader yields timestamps (temporal splits and time gaps need them)."""
    return d.source in ("bundled", "movielens", "synthetic") or (d.source in ("csv", "atomic") and bool(d.time_col))
