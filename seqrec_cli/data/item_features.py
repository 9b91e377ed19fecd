"""Item features: an item table beside the events, typed, encoded per catalogue item.

The table is read with the event readers (CSV / TSV / Parquet, compression sniffed) and joined
by the original item id (compared as text, the rule `reporting.runs.IdIndex` uses). Each column
is one of:

- categorical: one value per item -> a code;
- multi-valued: several values in one cell, split by `multi_sep` -> codes, padded;
- numeric: standardised with the catalogue's mean and standard deviation (optionally of
  log1p(value)); non-numeric or non-finite values are refused, or filled (`fill=median|zero`);
- vectors: precomputed embeddings (.npy + id list, or Parquet with an id and a list column).

Codes: 0 is padding (no value), 1 the learned "unknown" row (an item missing from the table, a
value never seen when the vocabulary was built), values from 2 in sorted order. The
vocabularies and scalers (`ItemFeatures.meta`, plain JSON values) travel in the checkpoints, so
eval, recommend and resume encode any table exactly as training did (`encode_table`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd

from seqrec_cli.config.schema import ItemFeaturesConfig
from seqrec_cli.data import readers
from seqrec_cli.data.delimited import ReadOptions, read_delimited
from seqrec_cli.data.columns import ids as typed_ids
from seqrec_cli.errors import UserError

log = logging.getLogger(__name__)

PAD, UNKNOWN, FIRST_VALUE = 0, 1, 2


@dataclass
class ItemFeatures:
    """Encoded features of items 0..n_items (row 0 is padding) and the meta that encoded them."""

    categorical: dict[str, np.ndarray]  # int64 [n + 1] codes
    multi: dict[str, np.ndarray]  # int64 [n + 1, width] codes, PAD-padded
    numeric: Optional[np.ndarray]  # float32 [n + 1, len(meta["numeric"])]
    vectors: Optional[np.ndarray]  # float32 [n + 1, width]
    meta: dict[str, Any]
    missing: int = 0  # catalogue items absent from the table (their features are "unknown")
    absent: Optional[np.ndarray] = None  # bool [n + 1]: which items those are (row 0, padding: False)

    @property
    def n_rows(self) -> int:
        for arrays in (self.categorical.values(), self.multi.values(), [self.numeric, self.vectors]):
            for a in arrays:
                if a is not None:
                    return len(a)
        return 0


def read_table(f: ItemFeaturesConfig, id_type: str = "auto") -> tuple[pd.DataFrame, list[str]]:
    """The item table's id column and feature columns; ids as text (the join key)."""
    if not f.path:
        raise UserError("dataset.item_features.path is not set.")
    path = Path(f.path).expanduser()
    if not path.is_file():
        raise UserError(f"Item table not found: {path} (dataset.item_features.path).")
    wanted = list(dict.fromkeys([f.id_col, *f.categorical, *f.multi_valued, *f.numeric]))
    text = [c for c in wanted if c not in f.numeric]
    try:
        if readers.is_parquet(path, f.format):
            df = readers.read_parquet(path, wanted)
        else:
            opts = ReadOptions(sep=f.sep, encoding=f.encoding, text_columns=text, id_columns=[f.id_col])
            df = read_delimited(path, wanted, opts)
    except UserError as exc:
        raise UserError(f"Item table: {exc}") from None
    keys = typed_ids(df[f.id_col], str(path), f.id_col, id_type)
    key_text = pd.Series([str(v) for v in keys.tolist()])
    duplicated = key_text[key_text.duplicated()]
    if len(duplicated):
        raise UserError(
            f"Item table {path} lists item {duplicated.iloc[0]!r} more than once ({len(duplicated)} duplicate ids): "
            "keep one row per item."
        )
    df = df.drop(columns=[f.id_col]).reset_index(drop=True)
    return df, key_text.tolist()


def fit_features(
    f: ItemFeaturesConfig, table: pd.DataFrame, table_ids: list[str], item_ids: np.ndarray
) -> ItemFeatures:
    """Build the vocabularies and scalers from the catalogue's rows of the table, then encode."""
    rows = _rows_of(table_ids, item_ids)
    known = table.iloc[rows[rows >= 0]]
    meta: dict[str, Any] = {
        "categorical": {c: sorted(set(_cells(known[c]))) for c in f.categorical},
        "multi_valued": {
            c: sorted({v for cell in _cells(known[c]) for v in _split(cell, f.multi_sep)}) for c in f.multi_valued
        },
        "multi_sep": f.multi_sep,
        "numeric": {c: _scaler(known[c], c, c in f.log_numeric, f.fill) for c in f.numeric},
        "fill": f.fill,
    }
    features = encode_table(meta, table, table_ids, item_ids)
    meta["multi_width"] = {c: int(a.shape[1]) for c, a in features.multi.items()}
    return features


def encode_table(meta: dict[str, Any], table: pd.DataFrame, table_ids: list[str], item_ids: np.ndarray) -> ItemFeatures:
    """Codes and scaled values of `item_ids` (row i + 1) under a fitted `meta`; unknown values
    and items missing from the table get UNKNOWN (numeric: the mean, i.e. 0)."""
    rows = _rows_of(table_ids, item_ids)
    present = rows >= 0
    categorical = {}
    for col, values in meta["categorical"].items():
        index = {v: i + FIRST_VALUE for i, v in enumerate(values)}
        codes = np.full(len(item_ids) + 1, UNKNOWN, dtype=np.int64)
        codes[0] = PAD
        cells = table[col].to_numpy(dtype=object)
        codes[1:][present] = [index.get(_cell(cells[r]), UNKNOWN) for r in rows[present]]
        categorical[col] = codes
    multi = {
        col: _encode_multi(table, col, values, meta["multi_sep"], rows) for col, values in meta["multi_valued"].items()
    }
    numeric = None
    if meta["numeric"]:
        numeric = np.zeros((len(item_ids) + 1, len(meta["numeric"])), dtype=np.float32)
        for j, (col, scaler) in enumerate(meta["numeric"].items()):
            values = _numbers(
                table[col].iloc[rows[present]], col, scaler["log"], meta.get("fill", "error"), scaler["fill"]
            )
            numeric[1:, j][present] = (values - scaler["mean"]) / scaler["std"]
    absent = np.concatenate([[False], ~present])
    missing = int(absent.sum())
    if missing:
        log.info("%d of %d items are not in the item table: their features are 'unknown'.", missing, len(item_ids))
    return ItemFeatures(categorical, multi, numeric, None, meta, missing, absent)


def with_vectors(
    features: ItemFeatures, vectors: np.ndarray, vector_ids: list[str], item_ids: np.ndarray
) -> ItemFeatures:
    """Add precomputed item vectors (rows of items missing from them stay zero)."""
    width = int(vectors.shape[1])
    expected = features.meta.get("vector_width")
    if expected is not None and expected != width:
        raise UserError(f"The item vectors are {width} wide, and the model was trained on {expected}-wide vectors.")
    rows = _rows_of(vector_ids, item_ids)
    out = np.zeros((len(item_ids) + 1, width), dtype=np.float32)
    out[1:][rows >= 0] = vectors[rows[rows >= 0]]
    return replace(features, vectors=out, meta={**features.meta, "vector_width": width})


def read_vectors(f: ItemFeaturesConfig) -> tuple[np.ndarray, list[str]]:
    """Item vectors and their ids: `.npy` + `vectors_ids` (one id per line), or Parquet."""
    path = Path(str(f.vectors)).expanduser()
    if not path.is_file():
        raise UserError(f"Item vectors not found: {path} (dataset.item_features.vectors).")
    if path.suffix.lower() == ".npy":
        try:
            matrix = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as exc:
            raise UserError(f"Could not read the item vectors {path} as .npy: {exc}.") from None
        if not f.vectors_ids:
            raise UserError("Item vectors in a .npy file need their ids: set dataset.item_features.vectors_ids.")
        id_path = Path(f.vectors_ids).expanduser()
        if not id_path.is_file():
            raise UserError(f"Item vector ids not found: {id_path} (dataset.item_features.vectors_ids).")
        keys = [line.strip() for line in id_path.read_text().splitlines() if line.strip()]
    else:
        df = readers.read_parquet(path, [f.vectors_id_col, f.vectors_col])
        lengths = {len(v) for v in df[f.vectors_col]}
        if len(lengths) != 1:
            raise UserError(
                f"The item vectors in {path} have different widths ({sorted(lengths)[:3]}...): use one width."
            )
        matrix = np.stack([np.asarray(v, dtype=np.float32) for v in df[f.vectors_col]])
        keys = [str(v) for v in typed_ids(df[f.vectors_id_col], str(path), f.vectors_id_col).tolist()]
    return _checked_vectors(matrix, keys, path)


def _checked_vectors(matrix: np.ndarray, keys: list[str], path: Path) -> tuple[np.ndarray, list[str]]:
    if matrix.ndim != 2 or matrix.shape[1] == 0:
        raise UserError(f"The item vectors in {path} are not one row of numbers per item (shape {matrix.shape}).")
    if len(keys) != len(matrix):
        raise UserError(f"{path} holds {len(matrix)} item vectors for {len(keys)} ids: one id per vector.")
    bad = int((~np.isfinite(matrix)).any(axis=1).sum())
    if bad:
        raise UserError(f"{bad} item vectors in {path} hold NaN or infinite values: fix or drop them.")
    return matrix.astype(np.float32), keys


def _rows_of(table_ids: list[str], item_ids: np.ndarray) -> np.ndarray:
    """Table row of each catalogue item (-1 when absent)."""
    index = {k: i for i, k in enumerate(table_ids)}
    return np.array([index.get(str(v), -1) for v in np.asarray(item_ids).tolist()], dtype=np.int64)


def _cell(value: Any) -> Optional[str]:
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return None
    text = str(value).strip()
    return text or None


def _cells(col: pd.Series) -> list[str]:
    return [c for c in (_cell(v) for v in col.to_numpy(dtype=object)) if c is not None]


def _split(cell: Optional[str], sep: Optional[str]) -> list[str]:
    if cell is None:
        return []
    return [v.strip() for v in cell.split(sep) if v.strip()] if sep else [cell]


def _encode_multi(table: pd.DataFrame, col: str, values: list[str], sep: Optional[str], rows: np.ndarray) -> np.ndarray:
    index = {v: i + FIRST_VALUE for i, v in enumerate(values)}
    cells = table[col].to_numpy(dtype=object)
    per_item = [
        [index.get(v, UNKNOWN) for v in _split(_cell(cells[r]), sep)] or [UNKNOWN] if r >= 0 else [UNKNOWN]
        for r in rows.tolist()
    ]
    width = max((len(c) for c in per_item), default=1)
    out = np.full((len(rows) + 1, width), PAD, dtype=np.int64)
    for i, codes in enumerate(per_item):
        out[i + 1, : len(codes)] = codes
    return out


def _numbers(col: pd.Series, name: str, log1p: bool, fill: str, fill_value: float) -> np.ndarray:
    """Finite float64 values of a numeric column (after log1p), filled or refused."""
    values = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        values = np.log1p(values) if log1p else values
    bad = ~np.isfinite(values)
    if bad.any():
        if fill == "error":
            first = col.iloc[int(np.flatnonzero(bad)[0])]
            raise UserError(
                f"Numeric item column {name!r} has {int(bad.sum())} non-numeric or non-finite value(s) (first: "
                f"{first!r}{' after log1p' if log1p else ''}): fix them or set dataset.item_features.fill=median|zero."
            )
        values = np.where(bad, fill_value, values)
    return values


def _scaler(col: pd.Series, name: str, log1p: bool, fill: str) -> dict[str, Any]:
    raw = pd.to_numeric(col, errors="coerce").to_numpy(dtype=np.float64)
    with np.errstate(invalid="ignore", divide="ignore"):
        raw = np.log1p(raw) if log1p else raw
    finite = raw[np.isfinite(raw)]
    fill_value = float(np.median(finite)) if fill == "median" and len(finite) else 0.0
    values = _numbers(col, name, log1p, fill, fill_value)
    std = float(values.std()) if len(values) else 1.0
    return {"mean": float(values.mean()) if len(values) else 0.0, "std": std or 1.0, "log": log1p, "fill": fill_value}


def movielens_config(f: ItemFeaturesConfig) -> ItemFeaturesConfig:
    """The columns `movielens.movie_features` provides (missing years take the median)."""
    return replace(f, multi_valued=["genres"], multi_sep="|", numeric=["year"], categorical=[], fill="median")


def load_features(
    f: ItemFeaturesConfig, item_ids: np.ndarray, movielens_cfg: Any = None, id_type: str = "auto"
) -> ItemFeatures:
    """Fit and encode the configured features of the catalogue `item_ids` (row i + 1).
    `movielens_cfg` (a DatasetConfig) reads the release's own genres and years when no table is set."""
    from seqrec_cli.data import movielens  # the MovieLens layouts; only needed here

    empty = ItemFeatures({}, {}, None, None, {"categorical": {}, "multi_valued": {}, "multi_sep": None, "numeric": {}})
    if f.path:
        table, keys = read_table(f, id_type)
        features = fit_features(f, table, keys, item_ids)
    elif movielens_cfg is not None and not f.vectors:
        table, keys = movielens.movie_features(movielens_cfg)
        features = fit_features(movielens_config(f), table, keys, item_ids)
        features.meta["source"] = f"{movielens_cfg.name} genres and year"
    else:
        features = empty
    if f.vectors:
        matrix, vector_ids = read_vectors(f)
        features = with_vectors(features, matrix, vector_ids, item_ids)
    return features


def feature_summary(features: ItemFeatures, event_items: Optional[np.ndarray] = None) -> dict[str, Any]:
    """What data_summary.json says about the features; `event_items` (the item of every event the
    run uses) counts the events whose item the table lacks, beside the count of such items."""
    meta = features.meta
    absent = features.absent
    events = int(absent[event_items].sum()) if absent is not None and event_items is not None else 0
    return {
        "items_missing_from_table": features.missing,
        "events_missing_from_table": events,
        "categorical": {c: len(v) for c, v in meta["categorical"].items()},
        "multi_valued": {c: len(v) for c, v in meta["multi_valued"].items()},
        "numeric": list(meta["numeric"]),
        "vector_width": meta.get("vector_width"),
    }


def dataset_features(d: Any, item_ids: np.ndarray) -> ItemFeatures:
    """The features of a dataset config's catalogue: its item table / vectors, or for MovieLens
    without a table the release's own genres and years."""
    movielens = d if d.source in ("bundled", "movielens") and not d.item_features.path else None
    return load_features(d.item_features, item_ids, movielens, d.id_type)
