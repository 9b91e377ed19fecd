"""The dataclass schemas of seqrec-train's configuration, and the choices each string key allows.

The YAML files under `conf/` only fill in these schemas; `seqrec_cli.config` registers them with
Hydra so a typo'd key or a wrongly typed value is rejected while the config is composed, and
`seqrec_cli.config.checks` rejects well-typed values that make no sense. Inner modules receive
these plain dataclasses, so they can be called from Python without Hydra.

The dataset part (`dataset.*`, what `seqrec_cli.data` reads) lives in `dataset_schema.py`; its
names are imported here as well, so this module stays the one place to import any schema from.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Dict, List, Optional

from seqrec_cli.config.dataset_schema import (
    BAD_LINES,
    DATA_SOURCES,
    DEDUP,
    FEATURE_FILL,
    ID_TYPES,
    MOVIELENS,
    SPLITS,
    TABLE_FORMATS,
    DatasetConfig,
    ItemFeaturesConfig,
    SplitConfig,
    SyntheticConfig,
)

__all__ = [
    "DATA_SOURCES",
    "MOVIELENS",
    "TABLE_FORMATS",
    "ID_TYPES",
    "DEDUP",
    "BAD_LINES",
    "SPLITS",
    "ENCODERS",
    "OBJECTIVES",
    "ENCODER_INPUTS",
    "ATTENTION_BLOCKS",
    "TIME_FEATURES",
    "LOSSES",
    "NEGATIVE_SAMPLING",
    "OPTIMIZERS",
    "SCHEDULERS",
    "PRECISIONS",
    "METRIC_FAMILIES",
    "LOGGERS",
    "ITEM_REPRS",
    "FEATURE_COMBINE",
    "FEATURE_FILL",
    "SyntheticConfig",
    "SplitConfig",
    "ItemFeaturesConfig",
    "DatasetConfig",
    "ModelConfig",
    "EncoderConfig",
    "ObjectiveConfig",
    "LossConfig",
    "OptimizerConfig",
    "SchedulerConfig",
    "TrainerConfig",
    "EvalConfig",
    "LoggerConfig",
    "TrainConfig",
]

ENCODERS = ("attention", "gru", "lstm", "gru_attention")
# next: predict item t + 1 from items 1..t (causal); masked: BERT4Rec's cloze task (bidirectional).
OBJECTIVES = ("next", "masked")
# How item ids enter a recurrent encoder: the (tied) item embeddings, or GRU4Rec's one-hot input.
ENCODER_INPUTS = ("embedding", "one_hot")
ATTENTION_BLOCKS = ("sasrec", "ligr")
TIME_FEATURES = ("none", "gap")
LOSSES = ("ce", "sampled_softmax", "bce", "gbce", "bpr", "bpr_max", "top1_max")
# Where a sampled loss's negatives come from: drawn (uniform, popularity), the other targets of the
# batch (in_batch), or both (mixed: the batch's targets plus n_negatives drawn ~ count ** alpha).
NEGATIVE_SAMPLING = ("uniform", "popularity", "in_batch", "mixed")
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULERS = ("none", "cosine", "linear", "step", "plateau")
PRECISIONS = ("bf16", "fp16", "fp32")
METRIC_FAMILIES = ("hr", "ndcg", "mrr")
LOGGERS = ("none", "mlflow", "tensorboard")
ITEM_REPRS = ("id", "id+features", "features")
FEATURE_COMBINE = ("sum", "concat")


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
    # Item features (dataset.item_features; MovieLens: genres + year): true = id + features.
    item_features: bool = False
    # What an item is: id | id+features | features; null = id, or id+features with item_features.
    item_repr: Optional[str] = None
    # sum: id embedding + one embedding per feature; concat: concatenated and projected.
    feature_combine: str = "sum"
    # Fraction of items whose id embedding is dropped at each training step (DropoutNet), so the
    # feature path learns to stand on its own for items nobody has touched yet.
    id_dropout: float = 0.0


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
    # Dropout on the input embeddings alone (GRU4Rec tunes it apart from the hidden-state dropout,
    # which `dropout` then is); null = `dropout`.
    embedding_dropout: Optional[float] = None
    # gru / lstm: `one_hot` feeds each item as a one-hot vector to the first recurrent layer (an
    # input table of its own, as in the original GRU4Rec) instead of the tied item embeddings.
    input: str = "embedding"
    pre_norm: bool = True
    # Attention blocks: `sasrec` (SASRec's: residual + layer norm, GELU feed-forward) or `ligr`
    # (eSASRec's LiGR layer: pre-LN, sigmoid-gated residuals, SwiGLU feed-forward).
    block: str = "sasrec"
    # `gap`: log-bucketed time since the user's previous event, embedded and added to the item
    # embeddings (any encoder; needs timestamps). `none`: item ids only.
    time_features: str = "none"


@dataclass
class LossConfig:
    name: str = "ce"
    # Sampled losses only: negatives per position (shared by the batch for sampled_softmax).
    n_negatives: int = 1
    # sampled_softmax: one set of n_negatives for the whole batch (one matmul), or false: n_negatives
    # drawn for each position (as eSASRec / RecTools do; more distinct negatives per step). bce, gbce
    # and bpr always draw per position; bpr_max and top1_max always share (as GRU4Rec does).
    share_negatives: bool = True
    sampling: str = "uniform"
    # Popularity sampling draws items with probability proportional to count ** alpha.
    popularity_alpha: float = 1.0
    # Sampled softmax: subtract log q(item) from each logit to undo the sampling bias.
    logq_correction: bool = True
    # gBCE calibration t in [0, 1] (gSASRec; 0 = plain BCE).
    gbce_t: float = 0.75
    # bpr_max: weight of GRU4Rec's score regularisation (softmax-weighted squared negative scores).
    bpreg: float = 0.0


@dataclass
class ObjectiveConfig:
    """What the model is trained to predict (seqrec_cli/training/masking.py)."""

    # next: the next item at every position (causal). masked: BERT4Rec's cloze task, bidirectional
    # attention over the sequence with some items replaced by a mask token, the loss on those alone.
    name: str = "next"
    # masked: the probability that each item of a training row is masked.
    mask_prob: float = 0.2


@dataclass
class OptimizerConfig:
    name: str = "adam"
    lr: float = 2e-3
    weight_decay: float = 0.0
    betas: List[float] = field(default_factory=lambda: [0.9, 0.98])
    momentum: float = 0.0
    # Weight decay on LayerNorm weights and biases, and on the item / position / user embeddings.
    # Both true decays every parameter (the presets' measured setting); nanoGPT decays neither.
    decay_norms_and_biases: bool = True
    decay_embeddings: bool = True


@dataclass
class SchedulerConfig:
    """Learning-rate schedule (seqrec_cli/training/schedule.py), stepped per optimizer step."""

    name: str = "none"
    # Linear warmup over this many optimizer steps, or (when > 0, instead) this many epochs.
    warmup_steps: int = 0
    warmup_epochs: float = 0.0
    # cosine / linear: the lr falls to optimizer.lr * min_lr_ratio by the last step; plateau: floor.
    min_lr_ratio: float = 0.0
    # step: multiply by gamma every step_epochs epochs; plateau: by gamma after plateau_patience
    # evaluations without a new best of trainer.monitor.
    gamma: float = 0.5
    step_epochs: int = 10
    plateau_patience: int = 3


@dataclass
class TrainerConfig:
    max_epochs: int = 40
    # Stop after this many evaluations in a row without a new best (by more than min_delta).
    patience: int = 10
    min_delta: float = 0.0
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
    # Mixed precision on CUDA when amp is true: bf16 autocast, or fp16 autocast with a gradient
    # scaler (saved in last.pt); fp32 turns autocast off. No effect on the CPU.
    precision: str = "bf16"
    compile: bool = False
    grad_clip_norm: Optional[float] = None
    # Sum the gradients of this many batches before each optimizer step (a k-times larger batch).
    accumulate_grad_batches: int = 1
    # Besides best.pt / last.pt, keep the k best epochs' weights as checkpoints/top/epoch-NNN.pt.
    save_top_k: int = 0
    # debug=fast: train only this many batches per epoch; debug=overfit: train on the first N
    # batches of a fixed order, every epoch; keep_files=false deletes the run directory at the end.
    limit_batches: Optional[int] = None
    overfit_batches: int = 0
    keep_files: bool = True
    progress: bool = True
    # Profile this many steps of the first epoch (after 5 warm-up steps): profile.txt in the run
    # dir, and metrics.json "profile" (ms per step, and on a GPU the share spent in kernels).
    profile_steps: int = 0
    # Data-parallel training over the processes torchrun starts (NCCL on CUDA, Gloo on CPU).
    distributed: bool = False
    # A run directory (or its checkpoints/last.pt) to continue; the run then writes into it.
    resume: Optional[str] = None
    # A finished run to start from on other data (known items keep their rows; see
    # seqrec_cli/training/warm_start.py); init_from_partial: go on when no item is shared.
    init_from: Optional[str] = None
    init_from_partial: bool = False


@dataclass
class EvalConfig:
    ks: List[int] = field(default_factory=lambda: [1, 5, 10, 20])
    # Rank only items the user has not interacted with before (the target itself is never masked).
    mask_history: bool = True


@dataclass
class LoggerConfig:
    """Optional experiment tracking (seqrec_cli/training/tracking.py), besides the run directory itself.

    Each `conf/logger/<name>.yaml` sets `use.<name>: true`: Hydra merges the options of
    `logger=[mlflow,tensorboard]` one after the other, and a dict keeps every key where the single
    `name` keeps only the last. The trackers in use are `use` plus `name` (which alone is what
    earlier runs recorded, so their configs still load).
    """

    name: str = "none"
    use: Dict[str, bool] = field(default_factory=dict)
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
    objective: ObjectiveConfig = field(default_factory=ObjectiveConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    scheduler: SchedulerConfig = field(default_factory=SchedulerConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logger: LoggerConfig = field(default_factory=LoggerConfig)
    # Free-form labels (`tags=[baseline,ablation]`): recorded in metrics.json, the trackers and seqrec-report.
    tags: List[str] = field(default_factory=list)
