"""Data: read a configured source, preprocess it (cached), and split it for training."""

from __future__ import annotations

import logging
import time
from pathlib import Path

from seqrec_cli.config import DatasetConfig
from seqrec_cli.data import cache
from seqrec_cli.data.preprocess import Interactions, build_interactions
from seqrec_cli.data.sources import describe_source, read_events, source_identity
from seqrec_cli.data.splits import EvalSplit, SequenceSplits, leave_one_out

log = logging.getLogger(__name__)

__all__ = ["Interactions", "EvalSplit", "SequenceSplits", "load", "load_interactions"]


def load_interactions(cfg: DatasetConfig) -> tuple[Interactions, dict]:
    """Processed interactions for `cfg`, from the cache when it holds this exact source + settings."""
    payload = {
        "identity": source_identity(cfg),
        "min_user_count": cfg.min_user_count,
        "min_item_count": cfg.min_item_count,
        "min_rating": cfg.min_rating,
    }
    cache_dir = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else cache.default_cache_dir()
    path = cache.cache_file(cache_dir, cfg.name, cache.cache_key(payload))
    if cfg.use_cache:
        hit = cache.load(path)
        if hit is not None:
            log.info("Loaded processed %s from cache %s", describe_source(cfg), path)
            inter, summary = hit
            return inter, {**summary, "cache": {"hit": True, "path": str(path)}}
    started = time.perf_counter()
    events = read_events(cfg)
    inter, summary = build_interactions(events, cfg.min_user_count, cfg.min_item_count)
    summary["source"] = describe_source(cfg)
    summary["preprocess_seconds"] = round(time.perf_counter() - started, 3)
    if cfg.use_cache:
        cache.save(path, inter, summary)
    log.info("Preprocessed %s in %.1f s", describe_source(cfg), summary["preprocess_seconds"])
    return inter, {**summary, "cache": {"hit": False, "path": str(path) if cfg.use_cache else None}}


def load(cfg: DatasetConfig) -> tuple[SequenceSplits, dict]:
    """Leave-one-out splits for `cfg` and a summary of every count along the way."""
    inter, summary = load_interactions(cfg)
    splits = leave_one_out(inter)
    summary = {
        "dataset": cfg.name,
        **summary,
        "users": inter.n_users,
        "items": inter.n_items,
        "interactions": inter.n_interactions,
        "split": {"kind": "leave_one_out", **splits.summary()},
    }
    return splits, summary
