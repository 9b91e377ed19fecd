"""Turn a raw column into the typed values the pipeline relies on: ids, timestamps, ratings.

Every reader funnels its columns through here, so the rules are the same whatever the file format:
ids are int64 when every id is an integer (numeric order) and text otherwise (string order), and a
column that mixes the two is refused (it is far more often a repeated header or a shifted column
than a real id scheme); timestamps stay exact integers (float32 would reorder events seconds
apart). Type checks run on the distinct values only, so a 20M-row column costs one hash pass.
"""

from __future__ import annotations

from typing import Optional

import numpy as np
import pandas as pd

from seqrec_cli.errors import UserError


def ids(col: pd.Series, where: str, name: str, id_type: str = "auto") -> np.ndarray:
    """Ids as int64 (every id an integer) or as an object array of str, per `id_type`.

    `where` names the file in messages; `name` the column (or field) the ids came from.
    """
    _no_missing(col, where, name, "an empty id")
    if id_type != "str" and pd.api.types.is_integer_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return col.to_numpy(dtype=np.int64)
    if id_type != "str" and pd.api.types.is_float_dtype(col):
        values = col.to_numpy(dtype=np.float64)
        fractional = values != np.floor(values)
        if not fractional.any():
            return values.astype(np.int64)
        bad = values[np.flatnonzero(fractional)[0]]
        raise UserError(
            f"Column {name!r} of {where} holds ids that are not whole numbers (e.g. {bad!r}): "
            "set dataset.id_type=str to read them as text."
        )
    codes, uniques = pd.factorize(col)
    text = np.asarray(uniques.astype(str), dtype=object)
    if id_type == "str":
        return text[codes]
    as_int = _integer_values(text)
    is_int = ~np.isnan(as_int)
    if is_int.all():
        return as_int.astype(np.int64)[codes]
    if id_type == "int":
        raise UserError(
            f"Column {name!r} of {where} holds an id that is not an integer ({text[~is_int][0]!r}) "
            "while dataset.id_type=int."
        )
    if is_int.any():
        raise UserError(
            f"Column {name!r} of {where} mixes integer ids (e.g. {text[is_int][0]!r}) with other ids "
            f"(e.g. {text[~is_int][0]!r}): fix the file (a repeated header or a shifted column?) or "
            "set dataset.id_type=str to read every id as text."
        )
    return text[codes]


def _integer_values(text: np.ndarray) -> np.ndarray:
    """float64 value of each string that is an integer, NaN for the rest (distinct values only)."""
    numbers = pd.to_numeric(pd.Series(text, dtype=object), errors="coerce").to_numpy(dtype=np.float64, copy=True)
    numbers[numbers != np.floor(numbers)] = np.nan
    return numbers


def times(col: pd.Series, where: str, name: str) -> np.ndarray:
    """Timestamps as exact int64 (whole numbers, or dates as ns since 1970) or float64."""
    _no_missing(col, where, name, "an empty timestamp")
    if pd.api.types.is_bool_dtype(col):
        raise UserError(f"Column {name!r} of {where} holds true/false values, not timestamps.")
    if pd.api.types.is_integer_dtype(col):
        return col.to_numpy(dtype=np.int64)
    if pd.api.types.is_float_dtype(col):
        return _whole_or_float(col.to_numpy(dtype=np.float64), where, name)
    if pd.api.types.is_datetime64_any_dtype(col):
        return _datetime_ns(col)
    numbers = pd.to_numeric(col, errors="coerce")
    if numbers.notna().all():
        return _whole_or_float(numbers.to_numpy(dtype=np.float64), where, name)
    if numbers.notna().any():
        row = int(np.flatnonzero(numbers.isna().to_numpy())[0])
        raise UserError(
            f"Column {name!r} of {where} holds a value that is not a number: {col.iloc[row]!r} "
            f"(data row {row + 1})."
        )
    parsed = _parse_dates(col)
    if parsed.isna().any():
        row = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise UserError(
            f"Column {name!r} of {where} holds a value that is neither a number nor a date: "
            f"{col.iloc[row]!r} (data row {row + 1})."
        )
    return _datetime_ns(parsed)


def _parse_dates(col: pd.Series) -> pd.Series:
    # ISO 8601 is parsed in C; "mixed" goes value by value (slow) and is only the fallback.
    try:
        return pd.to_datetime(col, errors="raise", utc=True, format="ISO8601")
    except (ValueError, TypeError, OverflowError):
        return pd.to_datetime(col, errors="coerce", utc=True, format="mixed")


def _datetime_ns(col: pd.Series) -> np.ndarray:
    values = col.dt.tz_convert("UTC") if getattr(col.dt, "tz", None) is not None else col
    return values.to_numpy(dtype="datetime64[ns]").astype(np.int64)


def _whole_or_float(values: np.ndarray, where: str, name: str) -> np.ndarray:
    """Whole-number floats (a column with a blank elsewhere, RecBole's `float`) become int64."""
    finite = np.isfinite(values)
    if not finite.all():
        row = int(np.flatnonzero(~finite)[0])
        raise UserError(f"Column {name!r} of {where} holds a timestamp that is not finite (data row {row + 1}).")
    if (values == np.floor(values)).all() and np.abs(values).max(initial=0) < 2**62:
        return values.astype(np.int64)
    return values


def ratings(col: pd.Series, where: str, name: str) -> np.ndarray:
    """Ratings as float64; anything that is not a number is an error naming the first one."""
    numbers = pd.to_numeric(col, errors="coerce")
    if numbers.isna().any():
        row = int(np.flatnonzero(numbers.isna().to_numpy())[0])
        raise UserError(
            f"Column {name!r} of {where} holds a rating that is not a number: {col.iloc[row]!r} "
            f"(data row {row + 1})."
        )
    return numbers.to_numpy(dtype=np.float64)


def _no_missing(col: pd.Series, where: str, name: str, what: str) -> None:
    missing = col.isna()
    if missing.any():
        row = int(np.flatnonzero(missing.to_numpy())[0])
        raise UserError(f"Column {name!r} of {where} has {what} (first at data row {row + 1}).")


def table_events(
    df: pd.DataFrame,
    where: str,
    user_col: str,
    item_col: str,
    time_col: Optional[str],
    rating_col: Optional[str],
    id_type: str,
) -> pd.DataFrame:
    """The standard event table (`user`, `item`, optional `time` and `rating`) from named columns."""
    out = {
        "user": ids(df[user_col], where, user_col, id_type),
        "item": ids(df[item_col], where, item_col, id_type),
    }
    if time_col:
        out["time"] = times(df[time_col], where, time_col)
    if rating_col:
        out["rating"] = ratings(df[rating_col], where, rating_col)
    return pd.DataFrame(out, copy=False)
