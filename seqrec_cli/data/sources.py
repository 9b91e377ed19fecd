"""Readers: turn a configured source into a raw event table (`user`, `item`, optional `time`).

Every reader returns rows in the file's own order; the preprocessing step relies on that order to
break timestamp ties, so nothing here may sort or shuffle. Problems a user can cause (a missing
file, a misnamed column, timestamps that are not times) become a `UserError` naming the file and
the column.
"""

from __future__ import annotations

import gzip
import zlib
from importlib import resources
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from seqrec_cli.config import DatasetConfig
from seqrec_cli.data.synthetic import generate_events
from seqrec_cli.errors import UserError

BUNDLED = {
    # name -> (file inside seqrec_cli/data/bundled, user col, item col, time col)
    "ml-latest-small": ("ml-latest-small/ratings.csv.gz", "userId", "movieId", "timestamp"),
}


def bundled_path(name: str) -> Path:
    """Where a bundled dataset lives inside the installed package."""
    if name not in BUNDLED:
        raise UserError(
            f"Unknown bundled dataset {name!r}: choose one of {', '.join(sorted(BUNDLED))}."
        )
    root = resources.files("seqrec_cli.data") / "bundled"
    return Path(str(root / BUNDLED[name][0]))


def source_identity(cfg: DatasetConfig) -> dict[str, Any]:
    """What the raw data *is*, cheaply: used in the cache key so a changed file is never reused.

    Files are identified by resolved path, size and modification time (hashing a multi-GB file on
    every run would cost more than the cache saves); synthetic data by its generator settings.
    """
    if cfg.source == "synthetic":
        return {"source": "synthetic", **vars(cfg.synthetic)}
    path = bundled_path(cfg.name) if cfg.source == "bundled" else Path(cfg.path).expanduser()
    try:
        st = path.stat()
    except OSError:
        raise UserError(f"Dataset file not found: {path}.") from None
    return {
        "source": cfg.source,
        "path": str(path.resolve()),
        "size": st.st_size,
        "mtime_ns": st.st_mtime_ns,
        "columns": [cfg.user_col, cfg.item_col, cfg.time_col, cfg.rating_col],
        "sep": cfg.sep,
        "header": cfg.header,
    }


def read_events(cfg: DatasetConfig) -> pd.DataFrame:
    """Read the configured source into columns `user`, `item` and (when known) `time`."""
    if cfg.source == "synthetic":
        return generate_events(cfg.synthetic)
    if cfg.source == "bundled":
        user_col, item_col, time_col = BUNDLED[cfg.name][1:]
        return _read_table(bundled_path(cfg.name), ",", True, user_col, item_col, time_col, None, None)
    return _read_table(
        Path(cfg.path).expanduser(), cfg.sep, cfg.header, cfg.user_col, cfg.item_col,
        cfg.time_col, cfg.rating_col, cfg.min_rating,
    )


def _read_table(
    path: Path,
    sep: str,
    header: bool,
    user_col: str,
    item_col: str,
    time_col: Optional[str],
    rating_col: Optional[str],
    min_rating: Optional[float],
) -> pd.DataFrame:
    if not path.is_file():
        raise UserError(f"Dataset file not found: {path}.")
    wanted = [c for c in (user_col, item_col, time_col, rating_col) if c]
    try:
        if header:
            found = list(pd.read_csv(path, sep=sep, nrows=0).columns)
            missing = [c for c in wanted if c not in found]
            if missing:
                raise UserError(
                    f"{path} has no column {', '.join(map(repr, missing))}: "
                    f"the columns found are {', '.join(map(repr, found))}."
                )
            df = pd.read_csv(path, sep=sep, usecols=wanted, engine="c" if len(sep) == 1 else "python")
        else:
            df = pd.read_csv(path, sep=sep, header=None, engine="c" if len(sep) == 1 else "python")
            df.columns = [str(c) for c in df.columns]
            missing = [c for c in wanted if c not in df.columns]
            if missing:
                raise UserError(
                    f"{path} has no column {', '.join(map(repr, missing))}: without a header the "
                    f"columns are numbered {', '.join(df.columns)}."
                )
            df = df[wanted]
    except UserError:
        raise
    except pd.errors.EmptyDataError:
        raise UserError(f"Dataset file {path} is empty.") from None
    except (UnicodeDecodeError, gzip.BadGzipFile, zlib.error, EOFError, OSError) as exc:
        raise UserError(f"Could not read {path}: {exc}.") from None
    except (pd.errors.ParserError, ValueError) as exc:
        raise UserError(f"Could not parse {path} as a table with separator {sep!r}: {exc}.") from None
    if len(df) == 0:
        raise UserError(f"Dataset file {path} has a header but no rows.")
    out = pd.DataFrame({"user": _ids(df[user_col], path, user_col), "item": _ids(df[item_col], path, item_col)})
    if time_col:
        out["time"] = _times(df[time_col], path, time_col)
    if rating_col and min_rating is not None:
        ratings = pd.to_numeric(df[rating_col], errors="coerce")
        if ratings.isna().any():
            raise UserError(f"Column {rating_col!r} of {path} holds values that are not numbers.")
        out = out[ratings.to_numpy() >= min_rating].reset_index(drop=True)
    return out


def _ids(col: pd.Series, path: Path, name: str) -> np.ndarray:
    """Ids as int64 when every id is an integer (numeric order), else as strings (string order)."""
    if col.isna().any():
        row = int(np.flatnonzero(col.isna().to_numpy())[0])
        raise UserError(f"Column {name!r} of {path} has an empty id (first at data row {row + 1}).")
    if pd.api.types.is_integer_dtype(col):
        return col.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(col):
        values = col.to_numpy()
        if np.all(values == np.floor(values)):
            return values.astype(np.int64)
    return col.astype(str).to_numpy(dtype=object)


def _times(col: pd.Series, path: Path, name: str) -> np.ndarray:
    """Timestamps as exact integers (or floats): float32 would reorder events that are seconds apart."""
    if pd.api.types.is_integer_dtype(col) and not col.isna().any():
        return col.to_numpy(dtype=np.int64)
    if pd.api.types.is_numeric_dtype(col):
        if col.isna().any():
            raise UserError(f"Column {name!r} of {path} has empty timestamps.")
        return col.to_numpy(dtype=np.float64)
    parsed = pd.to_datetime(col, errors="coerce", utc=True, format="mixed")
    if parsed.isna().any():
        bad = col[parsed.isna()].iloc[0]
        raise UserError(
            f"Column {name!r} of {path} holds a value that is neither a number nor a date: {bad!r}."
        )
    return parsed.astype("int64").to_numpy() if hasattr(parsed, "astype") else np.asarray(parsed)


def describe_source(cfg: DatasetConfig) -> str:
    """A short human label for logs and the data summary."""
    if cfg.source == "synthetic":
        return f"synthetic ({cfg.synthetic.n_users} users, {cfg.synthetic.n_items} items)"
    if cfg.source == "bundled":
        return f"bundled {cfg.name}"
    return str(cfg.path)

