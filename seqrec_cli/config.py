"""Typed configuration: the dataclass schemas Hydra validates against, and value checks.

The YAML files under `conf/` only fill in these schemas. Registering them in Hydra's ConfigStore
means a typo'd key or a value of the wrong type is rejected while the config is composed, before
any data is read. `validate` then catches values that have the right type but make no sense
(a negative learning rate, heads that do not divide the embedding size). Inner modules receive
these plain dataclasses, so they can be called from Python without Hydra.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any, List, Optional

from hydra.core.config_store import ConfigStore
from omegaconf import DictConfig, OmegaConf

from seqrec_cli.errors import UserError

DATA_SOURCES = ("bundled", "movielens", "csv", "atomic", "sequences", "pairs", "synthetic")
MOVIELENS = ("ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-latest-small")
TABLE_FORMATS = ("auto", "csv", "parquet")
ID_TYPES = ("auto", "int", "str")
DEDUP = ("all", "first", "last")
SPLITS = ("leave_one_out", "temporal")
ENCODERS = ("attention", "gru", "lstm", "gru_attention")
TIME_FEATURES = ("none", "gap")
LOSSES = ("ce", "sampled_softmax", "bce", "gbce", "bpr")
NEGATIVE_SAMPLING = ("uniform", "popularity")
OPTIMIZERS = ("adam", "adamw", "sgd")
METRIC_FAMILIES = ("hr", "ndcg", "mrr")
LOGGERS = ("none", "mlflow", "tensorboard")


@dataclass
class SyntheticConfig:
    """A generated dataset: Zipf item popularity plus item-to-item transitions a model can learn."""

    n_users: int = 2000
    n_items: int = 500
    mean_length: int = 30
    min_length: int = 5
    zipf_exponent: float = 1.1
    # Probability that the next item follows the previous one by the hidden transition rule
    # instead of being drawn from the popularity distribution.
    sequential_strength: float = 0.6
    seed: int = 0


@dataclass
class SplitConfig:
    """How each user's history is cut into training, validation and test.

    `leave_one_out`: the last event is the test target, the one before it the validation target.
    `temporal`: two global instants (a timestamp, or the time at a quantile of all events) cut
    every history at the same moment, so nothing after the validation cut is trained on; each
    user's first event after a cut is that split's target (see docs/ARCHITECTURE.md).
    """

    kind: str = "leave_one_out"
    valid_quantile: float = 0.8
    test_quantile: float = 0.9
    # Explicit cut instants in the units of the time column; they override the quantiles.
    valid_time: Optional[float] = None
    test_time: Optional[float] = None


@dataclass
class DatasetConfig:
    name: str = "ml-latest-small"
    # Reader: bundled / movielens (named MovieLens sets), csv (CSV, TSV, Parquet), atomic
    # (RecBole .inter), sequences (`user item item ...`), pairs (`user item`), synthetic.
    source: str = "bundled"
    # A local file or folder; for named datasets null means the bundled copy or a download.
    path: Optional[str] = None
    # csv: auto (Parquet by content or extension, else delimited text), csv or parquet.
    format: str = "auto"
    user_col: str = "userId"
    item_col: str = "movieId"
    # Without a time column the file order is the time order.
    time_col: Optional[str] = "timestamp"
    # A character or string; `\t` / `tab`, `space` and `whitespace` are understood too.
    sep: str = ","
    header: bool = True
    # Text encoding of delimited files (null = UTF-8); MovieLens metadata picks its own.
    encoding: Optional[str] = None
    # auto: integers when every id is one, text when none is, an error when they are mixed;
    # int / str force one reading (str keeps leading zeros: "007" stays "007").
    id_type: str = "auto"
    rating_col: Optional[str] = None
    # Keep only events rated at least this (positive feedback); null keeps every event.
    min_rating: Optional[float] = None
    # Repeated (user, item) events: all (keep every one), first or last (in time order).
    dedup: str = "all"
    # Keep only each user's most recent N events (applied before the k-core); null = no cap.
    max_history: Optional[int] = None
    min_user_count: int = 5
    min_item_count: int = 5
    split: SplitConfig = field(default_factory=SplitConfig)
    # Where named datasets are downloaded; default $SEQREC_DATA_DIR or ~/.cache/seqrec_cli/datasets.
    data_dir: Optional[str] = None
    # Override a named dataset's download address / SHA-256 (a mirror, or to pin a checksum).
    url: Optional[str] = None
    sha256: Optional[str] = None
    # Where processed interactions are cached; default $SEQREC_CACHE_DIR or ~/.cache/seqrec_cli.
    cache_dir: Optional[str] = None
    use_cache: bool = True
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)


@dataclass
class ModelConfig:
    embedding_dim: int = 64
    # Length of the input window: the model sees at most the last `max_len` items.
    max_len: int = 50
    # Std of the normal init of the (tied) item embeddings; small keeps initial logits near zero
    # so the first loss is close to ln(n_items) (PyTorch's N(0, 1) default is far too large).
    init_std: float = 0.02
    # A learned vector per training user, added to the sequence representation before scoring;
    # users the model never trained on are scored from their sequence alone.
    user_embedding: bool = False


@dataclass
class EncoderConfig:
    name: str = "attention"
    # Transformer blocks for `attention`, stacked recurrent layers for `gru` / `lstm`.
    num_layers: int = 2
    num_heads: int = 1
    # Recurrent state size (projected back to embedding_dim when it differs); null = embedding_dim.
    hidden_size: Optional[int] = None
    # Inner size of the attention feed-forward; null = embedding_dim (as in SASRec).
    ffn_size: Optional[int] = None
    dropout: float = 0.2
    pre_norm: bool = True
    # `gap`: log-bucketed time since the user's previous event, embedded and added to the item
    # embeddings (any encoder; needs timestamps). `none`: item ids only.
    time_features: str = "none"


@dataclass
class LossConfig:
    name: str = "ce"
    # Sampled losses only: negatives per position (shared by the batch for sampled_softmax).
    n_negatives: int = 1
    sampling: str = "uniform"
    # Popularity sampling draws items with probability proportional to count ** alpha.
    popularity_alpha: float = 1.0
    # Sampled softmax: subtract log q(item) from each logit to undo the sampling bias.
    logq_correction: bool = True
    # gBCE calibration t in [0, 1] (gSASRec; 0 = plain BCE).
    gbce_t: float = 0.75


@dataclass
class OptimizerConfig:
    name: str = "adam"
    lr: float = 2e-3
    weight_decay: float = 0.0
    betas: List[float] = field(default_factory=lambda: [0.9, 0.98])
    momentum: float = 0.0


@dataclass
class TrainerConfig:
    max_epochs: int = 40
    patience: int = 10
    # Validation metric to early-stop on and return to sweepers (higher is better).
    monitor: str = "ndcg@10"
    eval_every: int = 1
    batch_size: int = 32
    eval_batch_size: int = 1024
    # Besides the last window, cut earlier non-overlapping windows from long histories.
    all_windows: bool = True
    device: str = "auto"
    seed: int = 42
    # PyTorch's deterministic algorithms (slower on GPU; the CPU path is deterministic anyway).
    deterministic: bool = False
    num_threads: Optional[int] = None
    amp: bool = True
    compile: bool = False
    grad_clip_norm: Optional[float] = None
    progress: bool = True
    # Profile this many steps of the first epoch (after 5 warm-up steps): profile.txt in the run
    # dir, and metrics.json "profile" (ms per step, and on a GPU the share spent in kernels).
    profile_steps: int = 0
    # Data-parallel training over the processes torchrun starts (NCCL on CUDA, Gloo on CPU).
    distributed: bool = False
    # A run directory (or its checkpoints/last.pt) to continue; the run then writes into it.
    resume: Optional[str] = None


@dataclass
class EvalConfig:
    ks: List[int] = field(default_factory=lambda: [1, 5, 10, 20])
    # Rank only items the user has not interacted with before (the target itself is never masked).
    mask_history: bool = True


@dataclass
class LoggerConfig:
    """Optional experiment tracking (seqrec_cli/tracking.py), besides the run directory itself."""

    name: str = "none"
    # MLflow: where runs are recorded; null = a SQLite file in the run directory (<run dir>/mlflow.db).
    tracking_uri: Optional[str] = None
    experiment: str = "seqrec"
    # TensorBoard: the event-file folder; null = <run dir>/tensorboard.
    log_dir: Optional[str] = None


@dataclass
class TrainConfig:
    dataset: DatasetConfig = field(default_factory=DatasetConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    encoder: EncoderConfig = field(default_factory=EncoderConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)


def register_schemas() -> None:
    """Make the schemas known to Hydra so `conf/train.yaml` can build on `train_schema`."""
    cs = ConfigStore.instance()
    cs.store(name="train_schema", node=TrainConfig)


def to_train_config(cfg: DictConfig | TrainConfig) -> TrainConfig:
    """Turn Hydra's composed config into plain dataclasses and check every value."""
    if isinstance(cfg, TrainConfig):
        typed = cfg
    else:
        plain = OmegaConf.to_container(cfg, resolve=False)
        plain.pop("hydra", None)
        unknown = _unknown_keys(plain, TrainConfig, "")
        if unknown:
            raise UserError(f"Unknown config key {unknown[0]}: it is not a setting of seqrec-train (see --cfg job).")
        schema = OmegaConf.structured(TrainConfig)
        merged = OmegaConf.merge(schema, {k: v for k, v in cfg.items() if k != "hydra"})
        typed = OmegaConf.to_object(merged)
    validate(typed)
    return typed


def _unknown_keys(node: Any, schema: type, prefix: str) -> list[str]:
    """Keys in `node` that the dataclass `schema` does not define (Hydra lets `+key=...` add them)."""
    fields = {f.name: f for f in dataclasses.fields(schema)}
    unknown = []
    for key, value in node.items():
        if key not in fields:
            unknown.append(prefix + str(key))
        elif isinstance(value, dict) and dataclasses.is_dataclass(fields[key].default_factory if fields[key].default_factory is not dataclasses.MISSING else None):
            unknown += _unknown_keys(value, fields[key].default_factory, f"{prefix}{key}.")
    return unknown


def require(condition: bool, key: str, value: Any, expected: str) -> None:
    if not condition:
        raise UserError(f"Invalid config value {key}={value!r}: expected {expected}.")


def require_choice(key: str, value: str, allowed: tuple[str, ...]) -> None:
    require(value in allowed, key, value, "one of " + ", ".join(allowed))


def flat_dict(node: Any, prefix: str = "") -> dict[str, Any]:
    """A nested config as dotted keys (`{"optimizer": {"lr": 0.1}}` -> `{"optimizer.lr": 0.1}`),
    the form trackers and report tables take settings in; lists stay values."""
    out: dict[str, Any] = {}
    for key, value in node.items():
        name = f"{prefix}.{key}" if prefix else str(key)
        if isinstance(value, dict):
            out.update(flat_dict(value, name))
        else:
            out[name] = value
    return out


def metric_names(ks: List[int]) -> List[str]:
    """Every metric the evaluation reports for the given cut-offs, e.g. `ndcg@10`, `mrr`."""
    return [f"{m}@{k}" for m in ("hr", "ndcg") for k in ks] + ["mrr"]


def validate(cfg: TrainConfig) -> None:
    """Reject values that are well-typed but impossible, naming the key and what is allowed."""
    d, m, e, o, t, ev = cfg.dataset, cfg.model, cfg.encoder, cfg.optimizer, cfg.trainer, cfg.eval
    validate_dataset(d)
    s = d.synthetic
    require(s.n_users >= 2, "dataset.synthetic.n_users", s.n_users, "an integer >= 2")
    require(s.n_items >= 2, "dataset.synthetic.n_items", s.n_items, "an integer >= 2")
    require(s.min_length >= 3, "dataset.synthetic.min_length", s.min_length, "an integer >= 3")
    require(
        s.mean_length >= s.min_length, "dataset.synthetic.mean_length", s.mean_length,
        f"an integer >= dataset.synthetic.min_length ({s.min_length})",
    )
    require(
        0.0 <= s.sequential_strength <= 1.0, "dataset.synthetic.sequential_strength",
        s.sequential_strength, "a number in [0, 1]",
    )
    require(m.embedding_dim > 0, "model.embedding_dim", m.embedding_dim, "an integer > 0")
    require(m.max_len > 0, "model.max_len", m.max_len, "an integer > 0")
    require(m.init_std > 0, "model.init_std", m.init_std, "a number > 0")
    require_choice("encoder.name", e.name, ENCODERS)
    require(e.num_layers > 0, "encoder.num_layers", e.num_layers, "an integer > 0")
    require(e.num_heads > 0, "encoder.num_heads", e.num_heads, "an integer > 0")
    if e.name == "attention":
        require(
            m.embedding_dim % e.num_heads == 0, "encoder.num_heads", e.num_heads,
            f"a divisor of model.embedding_dim ({m.embedding_dim})",
        )
    if e.name == "gru_attention":
        hidden = e.hidden_size or m.embedding_dim
        require(
            hidden % e.num_heads == 0, "encoder.num_heads", e.num_heads,
            f"a divisor of the recurrent state size ({hidden})",
        )
    require_choice("encoder.time_features", e.time_features, TIME_FEATURES)
    if e.time_features == "gap":
        require(
            dataset_has_times(cfg.dataset), "encoder.time_features", e.time_features,
            "none: time-gap features need timestamps (dataset.time_col), and this dataset has none",
        )
    for key in ("hidden_size", "ffn_size"):
        value = getattr(e, key)
        require(value is None or value > 0, f"encoder.{key}", value, "null or an integer > 0")
    require(0.0 <= e.dropout < 1.0, "encoder.dropout", e.dropout, "a number in [0, 1)")
    require_choice("loss.name", cfg.loss.name, LOSSES)
    require(cfg.loss.n_negatives > 0, "loss.n_negatives", cfg.loss.n_negatives, "an integer > 0")
    require_choice("loss.sampling", cfg.loss.sampling, NEGATIVE_SAMPLING)
    require(cfg.loss.popularity_alpha >= 0, "loss.popularity_alpha", cfg.loss.popularity_alpha, "a number >= 0")
    require(0.0 <= cfg.loss.gbce_t <= 1.0, "loss.gbce_t", cfg.loss.gbce_t, "a number in [0, 1]")
    require_choice("optimizer.name", o.name, OPTIMIZERS)
    require(o.lr > 0 and math.isfinite(o.lr), "optimizer.lr", o.lr, "a finite number > 0")
    require(o.weight_decay >= 0, "optimizer.weight_decay", o.weight_decay, "a number >= 0")
    require(
        len(o.betas) == 2 and all(0.0 <= b < 1.0 for b in o.betas), "optimizer.betas", o.betas,
        "two numbers in [0, 1)",
    )
    require(o.momentum >= 0, "optimizer.momentum", o.momentum, "a number >= 0")
    require(t.max_epochs > 0, "trainer.max_epochs", t.max_epochs, "an integer > 0")
    require(t.patience >= 0, "trainer.patience", t.patience, "an integer >= 0")
    require(t.eval_every > 0, "trainer.eval_every", t.eval_every, "an integer > 0")
    require(t.batch_size > 0, "trainer.batch_size", t.batch_size, "an integer > 0")
    require(t.eval_batch_size > 0, "trainer.eval_batch_size", t.eval_batch_size, "an integer > 0")
    require(t.profile_steps >= 0, "trainer.profile_steps", t.profile_steps, "an integer >= 0")
    require(
        t.num_threads is None or t.num_threads > 0, "trainer.num_threads", t.num_threads,
        "null or an integer > 0",
    )
    require(
        t.grad_clip_norm is None or t.grad_clip_norm > 0, "trainer.grad_clip_norm",
        t.grad_clip_norm, "null or a number > 0",
    )
    device_ok = t.device in ("auto", "cpu", "cuda", "mps") or (
        t.device.startswith("cuda:") and t.device[5:].isdigit()
    )
    require(device_ok, "trainer.device", t.device, "one of auto, cpu, cuda, cuda:N, mps")
    require(len(ev.ks) > 0 and all(k > 0 for k in ev.ks), "eval.ks", ev.ks, "a list of integers > 0")
    allowed = metric_names(ev.ks)
    require(t.monitor in allowed, "trainer.monitor", t.monitor, "one of " + ", ".join(allowed))
    require_choice("logger.name", cfg.logger.name, LOGGERS)


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
    require(len(d.sep) > 0, "dataset.sep", d.sep, "a non-empty separator")
    if d.min_rating is not None and d.source in ("csv", "atomic"):
        require(
            bool(d.rating_col), "dataset.rating_col", d.rating_col,
            "the column holding ratings, since dataset.min_rating is set",
        )
    if d.min_rating is not None:
        require(
            d.source not in ("sequences", "pairs", "synthetic"), "dataset.min_rating", d.min_rating,
            f"null: dataset.source={d.source} has no ratings",
        )
    require(d.min_user_count >= 1, "dataset.min_user_count", d.min_user_count, "an integer >= 1")
    require(d.min_item_count >= 1, "dataset.min_item_count", d.min_item_count, "an integer >= 1")
    require(
        d.max_history is None or d.max_history >= 1, "dataset.max_history", d.max_history,
        "null or an integer >= 1",
    )
    if d.sha256 is not None:
        digest = d.sha256.strip().lower()
        require(
            len(digest) == 64 and all(c in "0123456789abcdef" for c in digest), "dataset.sha256",
            d.sha256, "null or 64 hexadecimal digits",
        )
    sp = d.split
    require_choice("dataset.split.kind", sp.kind, SPLITS)
    if sp.kind == "temporal":
        for key in ("valid_quantile", "test_quantile"):
            value = getattr(sp, key)
            require(0.0 < value < 1.0, f"dataset.split.{key}", value, "a number strictly between 0 and 1")
        if sp.valid_time is None and sp.test_time is None:
            require(
                sp.valid_quantile < sp.test_quantile, "dataset.split.valid_quantile", sp.valid_quantile,
                f"a number below dataset.split.test_quantile ({sp.test_quantile})",
            )
        if sp.valid_time is not None and sp.test_time is not None:
            require(
                sp.valid_time < sp.test_time, "dataset.split.valid_time", sp.valid_time,
                f"a time before dataset.split.test_time ({sp.test_time})",
            )
        require(
            dataset_has_times(d), "dataset.split.kind", sp.kind,
            "leave_one_out: a temporal split needs timestamps (dataset.time_col), and this dataset has none",
        )


def dataset_has_times(d: DatasetConfig) -> bool:
    """Whether the configured reader yields timestamps (temporal splits and time gaps need them)."""
    return d.source in ("bundled", "movielens", "synthetic") or (d.source in ("csv", "atomic") and bool(d.time_col))
