"""Which reader a configured source uses, what file it reads, and what that file *is* (for the cache).

`locate` finds (and for a named dataset downloads) the file; `read_events` turns it into the
standard event table (`user`, `item`, optional `time`, `rating`) in file order;
`source_identity` describes it cheaply for the cache key.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional

import pandas as pd

from seqrec_cli.config import DatasetConfig
from seqrec_cli.data import movielens, readers
from seqrec_cli.data.movielens import BUNDLED, bundled_path
from seqrec_cli.data.synthetic import generate_events
from seqrec_cli.errors import UserError

__all__ = ["BUNDLED", "bundled_path", "describe_source", "locate", "read_events", "source_identity"]


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
    return readers.require_file(path)


def source_identity(cfg: DatasetConfig, path: Optional[Path] = None) -> dict[str, Any]:
    """What the raw data *is*, cheaply: used in the cache key so a changed file is never reused.

    Files are identified by resolved path, size and modification time (hashing a multi-GB file on
    every run would cost more than the cache saves); synthetic data by its generator settings.
    """
    if cfg.source == "synthetic":
        return {"source": "synthetic", **vars(cfg.synthetic)}
    path = path or locate(cfg)
    try:
        st = path.stat()
    except OSError:
        raise UserError(f"Dataset file not found: {path}.") from None
    return {"source": cfg.source, "path": str(path.resolve()), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def read_events(cfg: DatasetConfig, path: Optional[Path] = None) -> pd.DataFrame:
    """Read the configured source into the standard event table, rows in file order."""
    if cfg.source == "synthetic":
        return generate_events(cfg.synthetic)
    path = path or locate(cfg)
    if cfg.source in ("bundled", "movielens"):
        return movielens.read_ratings(path, cfg)
    if cfg.source == "atomic":
        return readers.read_atomic(path, cfg.user_col, cfg.item_col, cfg.time_col, _rating_col(cfg), cfg.encoding, cfg.id_type)
    if cfg.source == "sequences":
        return readers.read_sequences(path, cfg.encoding, cfg.id_type)
    if cfg.source == "pairs":
        return readers.read_pairs(path, cfg.encoding, cfg.id_type)
    return readers.read_table(
        path, cfg.format, cfg.sep, cfg.header, cfg.user_col, cfg.item_col, cfg.time_col,
        _rating_col(cfg), cfg.encoding, cfg.id_type,
    )


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
