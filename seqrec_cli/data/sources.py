"""Which reader a configured source uses, what file it reads, and what that file *is* (for the cache).

`locate` finds (and for a named dataset downloads) the file; `read_events` turns it into the
standard event table (`user`, `item`, optional `time`, `rating`) in file order;
`source_identity` describes it cheaply for the cache key.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Optional

import pandas as pd

from seqrec_cli.config.schema import DatasetConfig
from seqrec_cli.config.checks import time_bound
from seqrec_cli.data import movielens, readers
from seqrec_cli.data.columns import EventColumns
from seqrec_cli.data.delimited import ReadOptions, require_file
from seqrec_cli.data.movielens import BUNDLED, bundled_path
from seqrec_cli.data.preprocess import TimeWindow
from seqrec_cli.data.synthetic import generate_events
from seqrec_cli.errors import UserError

__all__ = ["BUNDLED", "bundled_path", "describe_source", "locate", "read_events", "source_identity", "time_window"]


def locate(cfg: DatasetConfig) -> Optional[Path]:
    """The file the configured source reads (None for synthetic data); downloads when needed."""
    if cfg.source == "synthetic":
        return None
    if cfg.source in ("bundled", "movielens"):
        return movielens.ratings_file(cfg)
    path = Path(cfg.path).expanduser()
    if cfg.source == "atomic":
        if not path.exists():
            raise UserError(f"Dataset file not found: {path}.")
        return readers.atomic_file(path)
    return require_file(path)


def source_identity(cfg: DatasetConfig, path: Optional[Path] = None) -> dict[str, Any]:
    """What the raw data *is*: used in the cache key so a changed file is never reused.

    Files are identified by their content (SHA-256 of every byte) besides their resolved path and
    size: a file replaced by another of the same size and modification time must not be read from
    the old cache, and only the bytes say so. Synthetic data is identified by its settings.
    """
    if cfg.source == "synthetic":
        return {"source": "synthetic", **vars(cfg.synthetic)}
    path = path or locate(cfg)
    try:
        size = path.stat().st_size
        digest = file_digest(path)
    except OSError as exc:
        raise UserError(f"Cannot read the dataset file {path} ({exc.strerror or exc}).") from None
    return {"source": cfg.source, "path": str(path.resolve()), "size": size, "sha256": digest}


# Big reads keep the per-call overhead negligible; the digest itself runs at memory speed.
_HASH_CHUNK = 1 << 20


def file_digest(path: Path) -> str:
    """SHA-256 of a file's bytes, streamed (hashlib's SHA-256 uses the CPU's SHA instructions,
    which made it faster than BLAKE2 or MD5 here)."""
    digest = hashlib.sha256()
    buffer = bytearray(_HASH_CHUNK)
    view = memoryview(buffer)
    with path.open("rb", buffering=0) as fh:
        while n := fh.readinto(view):
            digest.update(view[:n])
    return digest.hexdigest()


def read_events(cfg: DatasetConfig, path: Optional[Path] = None) -> pd.DataFrame:
    """Read the configured source into the standard event table, rows in file order."""
    if cfg.source == "synthetic":
        return generate_events(cfg.synthetic)
    path = path or locate(cfg)
    if cfg.source in ("bundled", "movielens"):
        return movielens.read_ratings(path, cfg)
    cols = EventColumns(
        user=cfg.user_col,
        item=cfg.item_col,
        time=cfg.time_col,
        rating=_rating_col(cfg),
        id_type=cfg.id_type,
        time_format=cfg.time_format,
    )
    if cfg.source == "atomic":
        return readers.read_atomic(path, cols, encoding=cfg.encoding, on_bad_lines=cfg.on_bad_lines)
    if cfg.source == "sequences":
        return readers.read_sequences(path, cfg.encoding, cfg.id_type)
    if cfg.source == "pairs":
        return readers.read_pairs(path, cfg.encoding, cfg.id_type, cfg.on_bad_lines)
    opts = ReadOptions(sep=cfg.sep, header=cfg.header, encoding=cfg.encoding, on_bad_lines=cfg.on_bad_lines)
    return readers.read_table(path, cfg.format, cols, opts)


def time_window(cfg: DatasetConfig, time_kind: Optional[str], where: str) -> Optional[TimeWindow]:
    """`dataset.min_time` / `max_time` in the units of the time column that was read.

    Dates become ns (a date column) or Unix seconds (MovieLens, whose unit is known); on any
    other numeric column a date is refused, since its unit (s, ms, days) is not known here.
    """
    if cfg.min_time is None and cfg.max_time is None:
        return None
    dates, unit = time_kind == "date", None
    if dates:
        unit = 10**9
    elif cfg.source in ("bundled", "movielens"):
        unit = 1
    bounds = []
    for key in ("min_time", "max_time"):
        value = getattr(cfg, key)
        bound = None if value is None else time_bound(value, cfg.time_format)
        if isinstance(bound, datetime):
            if unit is None:
                raise UserError(
                    f"dataset.{key}={value!r} is a date, but the time column of {where} holds numbers in units "
                    "that are not known here: write the bound in the column's own units."
                )
            bound = _epoch_units(bound, unit)
        elif bound is not None and dates:
            raise UserError(
                f"dataset.{key}={value!r} is a number, but the time column of {where} holds dates: write the "
                "bound as a date (e.g. 2020-01-31 or 2020-01-31T12:00:00)."
            )
        bounds.append(bound)
    return TimeWindow(bounds[0], bounds[1], cfg.min_time, cfg.max_time)


def _epoch_units(moment: datetime, per_second: int) -> int | float:
    """Exact time since 1970-01-01 UTC in ns (per_second=10**9) or seconds (whole when it is)."""
    delta = moment - datetime(1970, 1, 1, tzinfo=timezone.utc)
    micros = (delta.days * 86_400 + delta.seconds) * 10**6 + delta.microseconds
    if per_second == 10**9:
        return micros * 1000
    return micros // 10**6 if micros % 10**6 == 0 else micros / 10**6


def _rating_col(cfg: DatasetConfig) -> Optional[str]:
    """Ratings are read only when they are used (a 20M-row column costs 160 MB)."""
    return cfg.rating_col if cfg.min_rating is not None else None


def describe_source(cfg: DatasetConfig, path: Optional[Path] = None) -> str:
    """A short human label for logs and the data summary."""
    if cfg.source == "synthetic":
        return f"synthetic ({cfg.synthetic.n_users} users, {cfg.synthetic.n_items} items)"
    if cfg.source == "bundled" or (cfg.source == "movielens" and path is not None and path == _bundled(cfg.name)):
        return f"bundled {cfg.name}"
    return f"{cfg.name} ({path})" if path is not None else str(cfg.path)


def _bundled(name: str) -> Optional[Path]:
    return bundled_path(name) if name in BUNDLED else None
