"""Shared test helpers: the small datasets the data, evaluation, model and training tests build
(event rows, an events CSV and the config that reads it, tiny synthetic data, a one-run config)."""

from __future__ import annotations

from pathlib import Path
from typing import Optional

import pandas as pd

from seqrec_cli.config.schema import (
    DatasetConfig,
    EncoderConfig,
    ModelConfig,
    SyntheticConfig,
    TrainConfig,
    TrainerConfig,
)
from seqrec_cli.data import SequenceSplits, load
from seqrec_cli.data.preprocess import Interactions, build_interactions


def events(rows, rating: bool = False) -> pd.DataFrame:
    """The standard event table from (user, item, time[, rating]) tuples, in the given order."""
    return pd.DataFrame(rows, columns=["user", "item", "time"] + (["rating"] if rating else []))


def interactions(rows) -> Interactions:
    """(user, item, time) tuples as interactions, nothing filtered out."""
    return build_interactions(events(rows), 1, 1)[0]


def write_events_csv(path: Path, rows) -> None:
    """(user_id, item_id, timestamp) tuples as a CSV with a header."""
    pd.DataFrame(rows, columns=["user_id", "item_id", "timestamp"]).to_csv(path, index=False)


def csv_dataset(path: Path, source: str = "csv", cache_dir: Optional[Path] = None, **changes) -> DatasetConfig:
    """A dataset reading `path` (columns user_id, item_id, timestamp) with no filtering; cached in
    `cache_dir` when given, else not cached at all."""
    base = dict(
        name="t",
        source=source,
        path=str(path),
        user_col="user_id",
        item_col="item_id",
        time_col="timestamp",
        min_user_count=1,
        min_item_count=1,
    )
    base.update({"cache_dir": str(cache_dir)} if cache_dir is not None else {"use_cache": False})
    return DatasetConfig(**{**base, **changes})


def synthetic_dataset(n_users: int = 300, n_items: int = 120, mean_length: int = 15) -> DatasetConfig:
    """Generated data with a learnable rule, every user and item kept, no cache."""
    return DatasetConfig(
        name="synthetic",
        source="synthetic",
        min_user_count=1,
        min_item_count=1,
        use_cache=False,
        synthetic=SyntheticConfig(n_users=n_users, n_items=n_items, mean_length=mean_length),
    )


def synthetic_splits(**sizes) -> SequenceSplits:
    """The leave-one-out splits of `synthetic_dataset(**sizes)`."""
    return load(synthetic_dataset(**sizes))[0]


def tiny_train_config(encoder: Optional[EncoderConfig] = None, **trainer) -> TrainConfig:
    """A small GRU (8 dims, window 6) on 60 synthetic users and 25 items, on the CPU without a
    progress bar; `trainer` sets the other trainer keys."""
    return TrainConfig(
        dataset=synthetic_dataset(n_users=60, n_items=25, mean_length=8),
        model=ModelConfig(embedding_dim=8, max_len=6),
        encoder=encoder or EncoderConfig(name="gru", num_layers=1),
        trainer=TrainerConfig(progress=False, device="cpu", **trainer),
    )
