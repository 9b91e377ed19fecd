"""Turn a raw column into the typed values the pipeline relies on: ids, timestamps, ratings.

Every reader funnels its columns through here, so the rules are the same whatever the file format:
ids are int64 when every id is an integer that fits, Python ints when some do not (numeric order
either way; never float64, which merges ids above 2**53) and text otherwise (string order), and a
column that mixes the two is refused (it is far more often a repeated header or a shifted column
than a real id scheme); timestamps stay exact integers (float32 would reorder events seconds
apart), and dates that could be read two ways are refused rather than guessed. Type checks run on
the distinct values only, so a 20M-row column costs one hash pass.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Optional

import numpy as np
import pandas as pd
from pandas.tseries.api import guess_datetime_format

from seqrec_cli.errors import UserError


INT64_MAX = 2**63 - 1
_INTEGER = re.compile(r"\s*[+-]?[0-9]+\s*")


def ids(col: pd.Series, where: str, name: str, id_type: str = "auto") -> np.ndarray:
    """Ids as int64 (every id an integer that fits), Python ints (every id an integer, some beyond
    int64) or str, per `id_type`. Never through float64, which merges ids above 2**53.

    Python ints sort numerically and become their decimal text once they are numbered
    (`preprocess.build_interactions`), so every id stays exact whatever its size.
    `where` names the file in messages; `name` the column (or field) the ids came from.
    """
    _no_missing(col, where, name, "an empty id")
    if id_type != "str" and not pd.api.types.is_bool_dtype(col):
        if pd.api.types.is_signed_integer_dtype(col):
            return col.to_numpy(dtype=np.int64)
        if pd.api.types.is_unsigned_integer_dtype(col):
            values = col.to_numpy()
            if values.max(initial=0) <= INT64_MAX:
                return values.astype(np.int64)
        if pd.api.types.is_float_dtype(col):
            return _float_ids(col.to_numpy(dtype=np.float64), where, name)
    codes, uniques = pd.factorize(col)
    if id_type == "str" or pd.api.types.is_bool_dtype(col):
        uniques = pd.Index(uniques).astype(str)
    distinct = np.asarray(uniques, dtype=object)
    if id_type == "str":
        return distinct[codes]
    fast = pd.to_numeric(pd.Series(distinct, dtype=object), errors="coerce")
    if pd.api.types.is_signed_integer_dtype(fast):  # integers within int64: parsed exactly, in C
        return fast.to_numpy(dtype=np.int64)[codes]
    values, numbers = _integer_values(distinct, fast.notna().to_numpy())
    is_int = np.array([v is not None for v in values], dtype=bool)
    if is_int.all():
        return _exact_integers(values)[codes]
    text = np.asarray([str(v) for v in distinct], dtype=object)
    _refuse_non_integers(text, is_int, numbers, where, name, id_type)
    return text[codes]


def _float_ids(values: np.ndarray, where: str, name: str) -> np.ndarray:
    """Ids stored as floating point (a Parquet double column): whole numbers, kept exactly."""
    bad = ~np.isfinite(values) | (values != np.floor(values))
    if bad.any():
        raise UserError(
            f"Column {name!r} of {where} holds ids that are not whole numbers (e.g. {float(values[bad][0])!r}): "
            "set dataset.id_type=str to read them as text."
        )
    if np.abs(values).max(initial=0) < 2.0**63:
        return values.astype(np.int64)
    codes, uniques = pd.factorize(values)
    return _exact_integers([int(v) for v in uniques])[codes]


def _integer_values(distinct: np.ndarray, numeric: np.ndarray) -> tuple[list, np.ndarray]:
    """(exact Python int of each distinct value, or None; whether each value is a finite number).

    Only values pandas reads as numbers (`numeric`) are looked at one by one, the rest are text.
    "7", "+7", " 7", "7.0" and "7e0" are the integer 7 (ids written as floats read as before);
    "7.5" is a number that is not an id. Decimal arithmetic keeps every digit.
    """
    values: list = [None] * len(distinct)
    numbers = np.zeros(len(distinct), dtype=bool)
    for i in np.flatnonzero(numeric):
        values[i], numbers[i] = _as_integer(distinct[i])
    return values, numbers


def _as_integer(v: object) -> tuple[Optional[int], bool]:
    """(the integer `v` spells exactly, or None; whether `v` is a finite number at all)."""
    if isinstance(v, (bool, np.bool_)):
        return None, False
    if isinstance(v, (int, np.integer)):
        return int(v), True
    s = str(v)
    if _INTEGER.fullmatch(s):
        return int(s), True
    try:
        d = Decimal(s.strip())
    except InvalidOperation:
        return None, False
    if not d.is_finite():
        return None, False
    return (int(d), True) if d == d.to_integral_value() else (None, True)


def _exact_integers(values: list) -> np.ndarray:
    """int64 when every value fits, else an object array of Python ints (numeric order, exact)."""
    if all(-INT64_MAX - 1 <= v <= INT64_MAX for v in values):
        return np.asarray(values, dtype=np.int64).reshape(-1)
    out = np.empty(len(values), dtype=object)
    out[:] = [int(v) for v in values]
    return out


def _refuse_non_integers(
    text: np.ndarray, is_int: np.ndarray, numbers: np.ndarray, where: str, name: str, id_type: str
) -> None:
    """Text ids are fine alone; a fraction, or text beside integers, is refused with a sentence."""
    fraction = numbers & ~is_int
    if fraction.any():
        raise UserError(
            f"Column {name!r} of {where} holds ids that are not whole numbers (e.g. {text[fraction][0]!r}): "
            "set dataset.id_type=str to read them as text."
        )
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


def times(col: pd.Series, where: str, name: str, time_format: Optional[str] = None) -> np.ndarray:
    """Timestamps as exact int64 (whole numbers, or dates as ns since 1970) or float64."""
    return timestamps(col, where, name, time_format)[0]


def timestamps(col: pd.Series, where: str, name: str, time_format: Optional[str] = None) -> tuple[np.ndarray, str]:
    """(`times`, "date" when the column held dates, else "number"): time windows need the kind.

    With `time_format` (a strptime format) every value is parsed with it, numbers included
    (20200131 with %Y%m%d); without it numbers stay numbers and dates must be ISO 8601 or in one
    format that reads only one way.
    """
    _no_missing(col, where, name, "an empty timestamp")
    if pd.api.types.is_bool_dtype(col):
        raise UserError(f"Column {name!r} of {where} holds true/false values, not timestamps.")
    if pd.api.types.is_datetime64_any_dtype(col):
        return _datetime_ns(col), "date"
    if time_format:
        return _datetime_ns(_dates_in_format(col, where, name, time_format)), "date"
    if pd.api.types.is_integer_dtype(col):
        return col.to_numpy(dtype=np.int64), "number"
    if pd.api.types.is_float_dtype(col):
        return _whole_or_float(col.to_numpy(dtype=np.float64), where, name), "number"
    numbers = pd.to_numeric(col, errors="coerce")
    if numbers.notna().all():
        return _whole_or_float(numbers.to_numpy(dtype=np.float64), where, name), "number"
    if numbers.notna().any():
        row = int(np.flatnonzero(numbers.isna().to_numpy())[0])
        raise UserError(
            f"Column {name!r} of {where} holds a value that is not a number: {col.iloc[row]!r} (data row {row + 1})."
        )
    return _datetime_ns(_parse_dates(col, where, name)), "date"


def _dates_in_format(col: pd.Series, where: str, name: str, time_format: str) -> pd.Series:
    codes, uniques = pd.factorize(col)
    text = pd.Series(np.asarray(uniques, dtype=object), dtype=object).astype(str)
    try:
        parsed = pd.to_datetime(text, format=time_format, errors="coerce", utc=True)
    except (ValueError, TypeError) as exc:
        raise UserError(
            f"dataset.time_format={time_format!r} is not a strptime format pandas accepts ({exc})."
        ) from None
    if parsed.isna().any():
        first = int(np.flatnonzero(parsed.isna().to_numpy())[0])
        raise UserError(
            f"Column {name!r} of {where} holds {text.iloc[first]!r} (data row {_first_row(codes, first) + 1}), "
            f"which does not match dataset.time_format={time_format!r}."
        )
    return _take(parsed, codes)


def _parse_dates(col: pd.Series, where: str, name: str) -> pd.Series:
    """Dates in ISO 8601 (parsed in C), or in one strptime format guessed from the first value.

    A format that reads month-first and day-first with different results (01/02/2020), or values
    in several formats, are refused: pandas would silently read them month-first, value by value.
    """
    codes, uniques = pd.factorize(col)
    text = pd.Series(np.asarray(uniques, dtype=object), dtype=object).astype(str)
    try:
        return _take(pd.to_datetime(text, errors="raise", utc=True, format="ISO8601"), codes)
    except (ValueError, TypeError, OverflowError):
        pass
    fits = []
    for fmt in _candidate_formats(text.iloc[0]):
        parsed = pd.to_datetime(text, format=fmt, errors="coerce", utc=True)
        if parsed.notna().all():
            fits.append((fmt, parsed))
    if len(fits) == 2 and not fits[0][1].equals(fits[1][1]):
        raise UserError(
            f"Column {name!r} of {where} holds dates such as {text.iloc[0]!r} that read both as {fits[0][0]} and as "
            f"{fits[1][0]}: set dataset.time_format to the one the file uses."
        )
    if fits:
        return _take(fits[0][1], codes)
    loose = pd.to_datetime(text, format="mixed", errors="coerce", utc=True)
    if loose.isna().any():
        first = int(np.flatnonzero(loose.isna().to_numpy())[0])
        raise UserError(
            f"Column {name!r} of {where} holds a value that is neither a number nor a date: "
            f"{text.iloc[first]!r} (data row {_first_row(codes, first) + 1})."
        )
    other = _first_outside(text, codes)
    raise UserError(
        f"Column {name!r} of {where} holds dates in more than one format (e.g. {text.iloc[0]!r} in data row 1 and "
        f"{text.iloc[other]!r} in data row {_first_row(codes, other) + 1}): make them one format, or set "
        "dataset.time_format to the strptime format of every value."
    )


def _candidate_formats(first: str) -> list[str]:
    """The strptime formats `first` may be in, month-first and day-first (year-day-month dropped)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        guesses = [guess_datetime_format(first, dayfirst=d) for d in (False, True)]
    formats = []
    for fmt in guesses:
        if fmt and fmt not in formats and not (0 <= fmt.find("%Y") < fmt.find("%d") < fmt.find("%m")):
            formats.append(fmt)
    return formats


def _first_outside(text: pd.Series, codes: np.ndarray) -> int:
    """Index of the first distinct value that the first value's format does not read."""
    formats = _candidate_formats(text.iloc[0])
    if not formats:
        return 1 if len(text) > 1 else 0
    parsed = pd.to_datetime(text, format=formats[0], errors="coerce", utc=True)
    misses = np.flatnonzero(parsed.isna().to_numpy())
    return int(misses[0]) if len(misses) else 0


def _first_row(codes: np.ndarray, distinct: int) -> int:
    """The first row holding distinct value number `distinct` (factorize numbers them in row order)."""
    return int(np.flatnonzero(codes == distinct)[0])


def _take(parsed: pd.Series, codes: np.ndarray) -> pd.Series:
    """Parsed distinct values (UTC) spread back over the rows, as naive UTC datetimes."""
    values = parsed.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy(dtype="datetime64[ns]")
    return pd.Series(values[codes], copy=False)


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
            f"Column {name!r} of {where} holds a rating that is not a number: {col.iloc[row]!r} (data row {row + 1})."
        )
    return numbers.to_numpy(dtype=np.float64)


def _no_missing(col: pd.Series, where: str, name: str, what: str) -> None:
    missing = col.isna()
    if missing.any():
        row = int(np.flatnonzero(missing.to_numpy())[0])
        raise UserError(f"Column {name!r} of {where} has {what} (first at data row {row + 1}).")


@dataclass(frozen=True)
class EventColumns:
    """Which columns of a table are the events' user, item, time and rating (names, or numbers
    without a header), and how their values are typed (`dataset.id_type`, `dataset.time_format`)."""

    user: str
    item: str
    time: Optional[str] = None
    rating: Optional[str] = None
    id_type: str = "auto"
    time_format: Optional[str] = None

    @property
    def wanted(self) -> list[str]:
        """The columns to read, each once, in the order user, item, time, rating."""
        return list(dict.fromkeys(c for c in (self.user, self.item, self.time, self.rating) if c))


def table_events(df: pd.DataFrame, where: str, cols: EventColumns) -> pd.DataFrame:
    """The standard event table (`user`, `item`, optional `time` and `rating`) from named columns.

    `attrs` carries what the readers noted (`bad_lines`) and `time_kind` ("date" / "number").
    """
    out = {
        "user": ids(df[cols.user], where, cols.user, cols.id_type),
        "item": ids(df[cols.item], where, cols.item, cols.id_type),
    }
    kind = None
    if cols.time:
        out["time"], kind = timestamps(df[cols.time], where, cols.time, cols.time_format)
    if cols.rating:
        out["rating"] = ratings(df[cols.rating], where, cols.rating)
    events = pd.DataFrame(out, copy=False)
    events.attrs.update(df.attrs)
    if kind:
        events.attrs["time_kind"] = kind
    return events
