"""The dataset part of seqrec-train's schema (`dataset.*`): reader, columns, preprocessing, split,
synthetic generator, item table; and the choices its string keys allow.

Kept apart from `schema.py` because it is the one part the data stage reads (`seqrec_cli.data`
takes a `DatasetConfig` and nothing else), and the largest; `schema.py` composes it into
`TrainConfig` and re-exports every name here, so `from seqrec_cli.config.schema import
DatasetConfig` keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import List, Optional

__all__ = [
    "DATA_SOURCES",
    "MOVIELENS",
    "TABLE_FORMATS",
    "ID_TYPES",
    "DEDUP",
    "BAD_LINES",
    "SPLITS",
    "FEATURE_FILL",
    "SyntheticConfig",
    "SplitConfig",
    "ItemFeaturesConfig",
    "DatasetConfig",
]

DATA_SOURCES = ("bundled", "movielens", "csv", "atomic", "sequences", "pairs", "synthetic")
MOVIELENS = ("ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-latest-small")
TABLE_FORMATS = ("auto", "csv", "parquet")
ID_TYPES = ("auto", "int", "str")
DEDUP = ("all", "first", "last")
BAD_LINES = ("error", "warn", "skip")
SPLITS = ("leave_one_out", "temporal")
FEATURE_FILL = ("error", "median", "zero")


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
    # Item hold-out (cold-start protocol): this seeded random fraction of items has its events
    # removed from every training input and target; evaluation targets stay leave-one-out, so a
    # user whose target is a held-out item is a cold case (seqrec_cli/data/cold_items.py).
    cold_items: float = 0.0
    cold_seed: int = 0


@dataclass
class ItemFeaturesConfig:
    """An item table beside the events, joined by the original item id
    (seqrec_cli/data/item_features.py). MovieLens datasets read their genres and release year
    themselves when `path` is null."""

    path: Optional[str] = None
    id_col: str = "item_id"
    # auto: Parquet by content or extension, else delimited text (compression sniffed).
    format: str = "auto"
    sep: str = ","
    encoding: Optional[str] = None
    # One value per item / several values in one cell split by `multi_sep` / standardised numbers.
    categorical: List[str] = field(default_factory=list)
    multi_valued: List[str] = field(default_factory=list)
    multi_sep: Optional[str] = None
    numeric: List[str] = field(default_factory=list)
    # Numeric columns read as log1p(value) before standardising (skewed values such as prices).
    log_numeric: List[str] = field(default_factory=list)
    # Non-numeric or non-finite numeric values: error (naming the column and count), median or zero.
    fill: str = "error"
    # Precomputed embeddings per item: a .npy with `vectors_ids` (one id per line), or a Parquet
    # file with `vectors_id_col` and a list/array column `vectors_col`.
    vectors: Optional[str] = None
    vectors_ids: Optional[str] = None
    vectors_id_col: str = "item_id"
    vectors_col: str = "vector"


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
    # Lines with more fields than the header: error (one sentence naming the first), warn or skip
    # (dropped either way, and counted in data_summary.json; warn also logs them).
    on_bad_lines: str = "error"
    # A strptime format for the time column (e.g. %d/%m/%Y); null = numbers as they are, dates in
    # ISO 8601 or another single format that cannot be read two ways.
    time_format: Optional[str] = None
    rating_col: Optional[str] = None
    # Keep only events rated at least this (positive feedback); null keeps every event.
    min_rating: Optional[float] = None
    # Repeated (user, item) events: all (keep every one), first or last (in time order).
    dedup: str = "all"
    # Keep only each user's most recent N events (applied before the k-core); null = no cap.
    max_history: Optional[int] = None
    # Keep only events with min_time <= time <= max_time (both inclusive; null = open), in the time
    # column's units or, where the reader parses dates (and for MovieLens' Unix seconds), as dates.
    min_time: Optional[str] = None
    max_time: Optional[str] = None
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
    item_features: ItemFeaturesConfig = field(default_factory=ItemFeaturesConfig)
