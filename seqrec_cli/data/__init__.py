"""Data: locate a configured source, preprocess it (cached), and split it for training.

`load(cfg)` is the one entry point the trainer uses: config -> file (downloaded when named) ->
cached `Interactions` -> `SequenceSplits`, plus a summary of every count along the way.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict
from pathlib import Path

from seqrec_cli.config.schema import DatasetConfig
from seqrec_cli.data import cache
from seqrec_cli.data.preprocess import Interactions, build_interactions
from seqrec_cli.data.sources import describe_source, locate, read_events, source_identity, time_window
from seqrec_cli.data.splits import EvalSplit, SequenceSplits, leave_one_out, split
from seqrec_cli.errors import UserError

log = logging.getLogger(__name__)

__all__ = ["Interactions", "EvalSplit", "SequenceSplits", "leave_one_out", "load", "load_interactions"]

# Settings that only say where things are kept or how they are split (splits are computed after
# the cache); everything else in DatasetConfig changes the processed data and is in the cache key.
_NOT_IN_CACHE_KEY = ("cache_dir", "use_cache", "split", "data_dir", "url", "sha256", "path", "item_features")


def cache_payload(cfg: DatasetConfig, path: Path | None) -> dict:
    """What the processed data depends on: the source's identity and every preprocessing setting."""
    settings = {k: v for k, v in asdict(cfg).items() if k not in _NOT_IN_CACHE_KEY}
    if cfg.source != "synthetic":
        settings.pop("synthetic")
    return {"identity": source_identity(cfg, path), "settings": settings}


def load_interactions(cfg: DatasetConfig) -> tuple[Interactions, dict]:
    """Processed interactions for `cfg`, from the cache when it holds this exact source + settings."""
    path = locate(cfg)
    cache_dir = Path(cfg.cache_dir).expanduser() if cfg.cache_dir else cache.default_cache_dir()
    # The key hashes the whole file: computed only when a cache is used.
    cache_path = None
    if cfg.use_cache:
        cache_path = cache.cache_file(cache_dir, cfg.name, cache.cache_key(cache_payload(cfg, path)))
    label = describe_source(cfg, path)
    if cache_path is not None:
        hit = cache.load(cache_path)
        if hit is not None:
            log.info("Loaded processed %s from cache %s", label, cache_path)
            inter, summary = hit
            return inter, {**summary, "cache": {"hit": True, "path": str(cache_path)}}
        cache.check_writable(cache_dir)
    started = time.perf_counter()
    events = read_events(cfg, path)
    read_seconds = time.perf_counter() - started
    notes = dict(events.attrs)
    inter, summary = build_interactions(
        events,
        cfg.min_user_count,
        cfg.min_item_count,
        min_rating=cfg.min_rating,
        dedup=cfg.dedup,
        max_history=cfg.max_history,
        time_window=time_window(cfg, notes.get("time_kind"), label),
    )
    del events
    summary["source"] = label
    if "bad_lines" in notes:
        summary["bad_lines"] = notes["bad_lines"]
    summary["read_seconds"] = round(read_seconds, 3)
    summary["preprocess_seconds"] = round(time.perf_counter() - started, 3)
    if cache_path is not None:
        cache.save(cache_path, inter, summary)
    log.info("Preprocessed %s in %.1f s", label, summary["preprocess_seconds"])
    return inter, {**summary, "cache": {"hit": False, "path": str(cache_path) if cache_path else None}}


def load(cfg: DatasetConfig) -> tuple[SequenceSplits, dict]:
    """Splits for `cfg` (leave-one-out or temporal) and a summary of every count along the way."""
    inter, summary = load_interactions(cfg)
    if inter.n_users < 2:
        only = inter.user_ids[0]
        raise UserError(
            f"Only one user ({getattr(only, 'item', lambda: only)()!r}) is left in "
            f"{summary.get('source', cfg.name)} after "
            "preprocessing: sequential recommendation needs the histories of several users."
        )
    splits = split(inter, cfg.split)
    if len(splits.valid) == 0 or len(splits.test) == 0:
        empty = "validation" if len(splits.valid) == 0 else "test"
        if splits.kind == "leave_one_out":
            raise UserError(
                f"No user has a {empty} target: leave-one-out needs users with at least three "
                "interactions (train, validation, test), so use a larger dataset or lower dataset.min_user_count."
            )
        raise UserError(
            f"No user has a {empty} target under the temporal split (cuts at {splits.details['valid_cut']} "
            f"and {splits.details['test_cut']}): a user needs an event before and after the cut, so move "
            "dataset.split.valid_quantile / test_quantile (or valid_time / test_time)."
        )
    summary = {
        "dataset": cfg.name,
        **summary,
        "users": inter.n_users,
        "items": inter.n_items,
        "interactions": inter.n_interactions,
        "split": splits.summary(),
    }
    return splits, summary
