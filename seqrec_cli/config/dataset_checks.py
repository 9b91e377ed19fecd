"""Value checks of the dataset part of the config (`dataset.*`): the reader and the options it
needs, preprocessing values, the split, the time window, the synthetic generator.

Kept apart from `checks.py` (which runs them as part of `validate`) because they answer one
question, "can this dataset be read and split as asked?", and they are what the data stage relies
on: `seqrec_cli.data.sources` reads time-window bounds with `time_bound`.
"""

from __future__ import annotations

from datetime import datetime, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Optional, Union

from seqrec_cli.config.dataset_schema import (
    BAD_LINES,
    DATA_SOURCES,
    DEDUP,
    ID_TYPES,
    MOVIELENS,
    SPLITS,
    TABLE_FORMATS,
    DatasetConfig,
    SyntheticConfig,
)
from seqrec_cli.config.require import require, require_choice


def validate_dataset(d: DatasetConfig) -> None:
    """The dataset part of `validate`: reader choice, the options it needs, preprocessing values."""
    require_choice("dataset.source", d.source, DATA_SOURCES)
    if d.source in ("csv", "atomic", "sequences", "pairs"):
        require(bool(d.path), "dataset.path", d.path, f"a file (or folder) to read when dataset.source={d.source}")
    if d.source in ("movielens", "bundled"):
        require_choice("dataset.name", d.name, MOVIELENS)
    require_choice("dataset.format", d.format, TABLE_FORMATS)
    require_choice("dataset.id_type", d.id_type, ID_TYPES)
    require_choice("dataset.dedup", d.dedup, DEDUP)
    require_choice("dataset.on_bad_lines", d.on_bad_lines, BAD_LINES)
    validate_time_window(d)
    require(len(d.sep) > 0, "dataset.sep", d.sep, "a non-empty separator")
    if d.min_rating is not None and d.source in ("csv", "atomic"):
        require(
            bool(d.rating_col),
            "dataset.rating_col",
            d.rating_col,
            "the column holding ratings, since dataset.min_rating is set",
        )
    if d.min_rating is not None:
        require(
            d.source not in ("sequences", "pairs", "synthetic"),
            "dataset.min_rating",
            d.min_rating,
            f"null: dataset.source={d.source} has no ratings",
        )
    require(d.min_user_count >= 1, "dataset.min_user_count", d.min_user_count, "an integer >= 1")
    require(d.min_item_count >= 1, "dataset.min_item_count", d.min_item_count, "an integer >= 1")
    require(
        d.max_history is None or d.max_history >= 1,
        "dataset.max_history",
        d.max_history,
        "null or an integer >= 1",
    )
    if d.sha256 is not None:
        digest = d.sha256.strip().lower()
        require(
            len(digest) == 64 and all(c in "0123456789abcdef" for c in digest),
            "dataset.sha256",
            d.sha256,
            "null or 64 hexadecimal digits",
        )
    validate_split(d)


def validate_split(d: DatasetConfig) -> None:
    """The split kind, and for a temporal split its cuts and the timestamps it needs."""
    sp = d.split
    require_choice("dataset.split.kind", sp.kind, SPLITS)
    if sp.kind == "temporal":
        for key in ("valid_quantile", "test_quantile"):
            value = getattr(sp, key)
            require(0.0 < value < 1.0, f"dataset.split.{key}", value, "a number strictly between 0 and 1")
        if sp.valid_time is None and sp.test_time is None:
            require(
                sp.valid_quantile < sp.test_quantile,
                "dataset.split.valid_quantile",
                sp.valid_quantile,
                f"a number below dataset.split.test_quantile ({sp.test_quantile})",
            )
        if sp.valid_time is not None and sp.test_time is not None:
            require(
                sp.valid_time < sp.test_time,
                "dataset.split.valid_time",
                sp.valid_time,
                f"a time before dataset.split.test_time ({sp.test_time})",
            )
        require(
            dataset_has_times(d),
            "dataset.split.kind",
            sp.kind,
            "leave_one_out: a temporal split needs timestamps (dataset.time_col), and this dataset has none",
        )


def time_bound(value: Any, time_format: Optional[str] = None) -> Optional[Union[int, float, datetime]]:
    """A time-window bound as a number (int when whole) or a UTC datetime; None when it is neither.

    Dates are ISO 8601 or `time_format`; a date without a zone is UTC, as in the time column.
    """
    text = str(value).strip()
    if time_format:
        try:
            return datetime.strptime(text, time_format).replace(tzinfo=timezone.utc)
        except ValueError:
            pass
    try:
        number = Decimal(text)
        if number.is_finite():
            return int(number) if number == number.to_integral_value() else float(number)
    except InvalidOperation:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def validate_time_window(d: DatasetConfig) -> None:
    """dataset.min_time / max_time: each a number or a date, both of one kind, min <= max."""
    bounds = {}
    for key in ("min_time", "max_time"):
        value = getattr(d, key)
        if value is None:
            continue
        bound = time_bound(value, d.time_format)
        require(
            bound is not None,
            f"dataset.{key}",
            value,
            "a number in the time column's units or a date such as 2020-01-31 (or in dataset.time_format)",
        )
        bounds[key] = bound
    if bounds:
        require(
            dataset_has_times(d),
            f"dataset.{next(iter(bounds))}",
            getattr(d, next(iter(bounds))),
            "null: a time window needs timestamps (dataset.time_col), and this dataset has none",
        )
    if len(bounds) == 2:
        low, high = bounds["min_time"], bounds["max_time"]
        require(
            isinstance(low, datetime) == isinstance(high, datetime),
            "dataset.max_time",
            d.max_time,
            f"a bound of the same kind as dataset.min_time={d.min_time!r} (both numbers or both dates)",
        )
        require(low <= high, "dataset.min_time", d.min_time, f"a time at or before dataset.max_time ({d.max_time})")


def dataset_has_times(d: DatasetConfig) -> bool:
    """Whether the configured reader yields timestamps (temporal splits and time gaps need them)."""
    return d.source in ("bundled", "movielens", "synthetic") or (d.source in ("csv", "atomic") and bool(d.time_col))


def validate_synthetic(s: SyntheticConfig) -> None:
    """dataset.synthetic: the generator's sizes and its rule's strength."""
    require(s.n_users >= 2, "dataset.synthetic.n_users", s.n_users, "an integer >= 2")
    require(s.n_items >= 2, "dataset.synthetic.n_items", s.n_items, "an integer >= 2")
    require(s.min_length >= 3, "dataset.synthetic.min_length", s.min_length, "an integer >= 3")
    require(
        s.mean_length >= s.min_length,
        "dataset.synthetic.mean_length",
        s.mean_length,
        f"an integer >= dataset.synthetic.min_length ({s.min_length})",
    )
    require(
        0.0 <= s.sequential_strength <= 1.0,
        "dataset.synthetic.sequential_strength",
        s.sequential_strength,
        "a number in [0, 1]",
    )
