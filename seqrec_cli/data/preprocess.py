"""From raw events to `Interactions`: order, filter, remap ids, with counts after every step.

Contracts (see docs/ARCHITECTURE.md): item 0 is padding and real items are 1..n_items numbered in
ascending order of their original id, so results never depend on file order; each user's events
are sorted by time with ties kept in input order (stable), because real data is full of ties and
the tie rule decides which event becomes the test target.

How it stays fast at 20M rows: ids are hashed once (`pd.factorize`) and ranked by sorting only
the distinct values; rows are put in final (user, time) order by one stable sort up front; every
step (time window, minimum rating, de-duplication, history cap, iterated k-core) only clears bits in
a keep-mask over those sorted rows, and the surviving ids are renumbered by a cumulative sum. No
Python loop runs per row or per user.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd

from seqrec_cli.errors import UserError

DEDUP_KEEP = {"first": "first", "last": "last"}


@dataclass
class Interactions:
    """Every user's time-ordered history in CSR form.

    `items[offsets[u]:offsets[u + 1]]` is user u's history (ids 1..n_items). `user_ids[u]` and
    `item_ids[i - 1]` are the original ids, kept so results can be reported in the user's own ids.
    """

    offsets: np.ndarray  # int64, n_users + 1
    items: np.ndarray  # int32, n_interactions
    times: Optional[np.ndarray]  # int64/float64 per interaction, or None when the source has none
    user_ids: np.ndarray
    item_ids: np.ndarray

    @property
    def n_users(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        return len(self.items)

    @property
    def lengths(self) -> np.ndarray:
        return np.diff(self.offsets)


@dataclass(frozen=True)
class TimeWindow:
    """Keep events with low <= time <= high (both inclusive; None = open), in the column's units."""

    low: Optional[float | int]
    high: Optional[float | int]
    min_time: Optional[str] = None  # the configured bounds, for messages and the summary
    max_time: Optional[str] = None

    def mask(self, times: np.ndarray) -> np.ndarray:
        low, high = self.low, self.high
        if np.issubdtype(times.dtype, np.integer):
            # Whole bounds compare exactly with int64 times (a float would round ns timestamps).
            low = None if low is None else max(math.ceil(low), -(2**63))
            high = None if high is None else min(math.floor(high), 2**63 - 1)
        keep = np.ones(len(times), dtype=bool)
        if low is not None:
            keep &= times >= low
        if high is not None:
            keep &= times <= high
        return keep

    def label(self) -> str:
        bounds = (("min_time", self.min_time), ("max_time", self.max_time))
        parts = [f"dataset.{k}={v}" for k, v in bounds if v is not None]
        return f"the time window ({', '.join(parts)})"

    def settings(self) -> dict:
        return {"min_time": self.min_time, "max_time": self.max_time, "low": self.low, "high": self.high}


def _kcore(u: np.ndarray, i: np.ndarray, keep: np.ndarray, min_user: int, min_item: int) -> tuple[np.ndarray, int]:
    """Rows that survive iterated minimum-count filters (from, not modifying, `keep`), and the rounds it took.

    Dropping rare items can push a user under the minimum and vice versa, so the two filters are
    repeated until neither removes anything (a fixed point)."""
    keep = keep.copy()
    n_u, n_i = int(u.max(initial=-1)) + 1, int(i.max(initial=-1)) + 1
    rounds = 0
    while True:
        rounds += 1
        if min_user <= 1 and min_item <= 1:
            return keep, rounds
        rows = np.flatnonzero(keep)
        u_count = np.bincount(u[rows], minlength=n_u)
        i_count = np.bincount(i[rows], minlength=n_i)
        bad = (u_count[u[rows]] < min_user) | (i_count[i[rows]] < min_item)
        if not bad.any():
            return keep, rounds
        keep[rows[bad]] = False


def _ranks(uniques: np.ndarray) -> np.ndarray:
    """Rank of each distinct id in id order (numeric for integers, string order for text)."""
    order = np.argsort(np.asarray(uniques), kind="stable")
    ranks = np.empty(len(order), dtype=np.int64)
    ranks[order] = np.arange(len(order))
    return ranks


def _id_codes(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(per-row rank of the id in sorted id order as int32/int64, sorted distinct ids).

    Integer ids beyond int64 arrive as Python ints (`columns.ids`): they are ranked numerically
    and kept as their decimal text, which every later stage (cache, checkpoints) stores exactly.
    """
    codes, uniques = pd.factorize(values)
    uniques = np.asarray(uniques)
    ranks = _ranks(uniques)
    dtype = np.int32 if len(uniques) < 2**31 else np.int64
    ordered = uniques[np.argsort(ranks)]
    if ordered.dtype == object and len(ordered) and not isinstance(ordered[0], str):
        ordered = np.asarray([str(v) for v in ordered], dtype=object)
    return ranks.astype(dtype)[codes], ordered


def time_order(user_rank: np.ndarray, times: Optional[np.ndarray]) -> np.ndarray:
    """Row order by (user, time), ties in input order: one stable sort of a combined int64 key.

    The key is `user * span + (time - min)` when that fits in 62 bits (always, for Unix seconds);
    otherwise times are first replaced by their dense rank. Without times: by user, in file order.
    """
    if times is None:
        return np.argsort(user_rank, kind="stable")
    n_users = int(user_rank.max(initial=0)) + 1
    if np.issubdtype(times.dtype, np.integer):
        t_min, t_max = int(times.min()), int(times.max())
        span = t_max - t_min + 1
        if n_users * span < 2**62:
            key = user_rank.astype(np.int64) * span
            key += times - t_min
            return np.argsort(key, kind="stable")
    t_rank = np.unique(times, return_inverse=True)[1].reshape(-1)
    key = user_rank.astype(np.int64) * (int(t_rank.max(initial=0)) + 1) + t_rank
    return np.argsort(key, kind="stable")


@dataclass
class _Filtering:
    """The events as integer codes in time order, and which of them are still kept: what every
    preprocessing step reads and narrows, and the summary each step appends its counts to."""

    ur: np.ndarray
    ir: np.ndarray
    keep: np.ndarray
    n_users: int
    n_items: int
    summary: dict

    def record(self, step: str, label: str, **settings: object) -> dict:
        """Append the counts after `step`; stop with a clear sentence when nothing is left."""
        rows = np.flatnonzero(self.keep)
        counts = {
            "users": int(np.count_nonzero(np.bincount(self.ur[rows], minlength=self.n_users))),
            "items": int(np.count_nonzero(np.bincount(self.ir[rows], minlength=self.n_items))),
            "interactions": int(len(rows)),
        }
        before = self.summary["steps"][-1] if self.summary["steps"] else self.summary["raw"]
        self.summary["steps"].append({"step": step, **settings, **counts})
        if counts["interactions"] == 0:
            raise UserError(
                f"No interactions are left after {label} (before it: {before['users']} users, "
                f"{before['items']} items, {before['interactions']} interactions): relax that setting."
            )
        return counts


def build_interactions(
    events: pd.DataFrame,
    min_user_count: int,
    min_item_count: int,
    *,
    min_rating: Optional[float] = None,
    dedup: str = "all",
    max_history: Optional[int] = None,
    time_window: Optional[TimeWindow] = None,
) -> tuple[Interactions, dict]:
    """Order, filter and renumber raw events; return them with the counts after each step.

    Steps, in this order (each recorded in `summary["steps"]`): time window; minimum rating; de-duplication of
    repeated (user, item) events (`all` keeps them, `first` / `last` keeps one, in time order);
    cap of each history to its most recent `max_history` events; iterated k-core on users and
    items. The cap comes before the k-core so that the final data really has the minimum counts.
    """
    times = events["time"].to_numpy() if "time" in events else None
    ur, user_ids = _id_codes(events["user"].to_numpy())
    ir, item_ids = _id_codes(events["item"].to_numpy())
    raw = {"users": len(user_ids), "items": len(item_ids), "interactions": len(ur)}
    f = _Filtering(ur, ir, np.ones(len(ur), dtype=bool), len(user_ids), len(item_ids), {"raw": raw, "steps": []})
    _window_and_rating(f, events, times, time_window, min_rating)
    order = time_order(f.ur, times)
    f.ur, f.ir, f.keep = f.ur[order], f.ir[order], f.keep[order]
    times = times[order] if times is not None else None
    del order
    if dedup in DEDUP_KEEP:
        rows = np.flatnonzero(f.keep)
        pair = f.ur[rows].astype(np.int64) * f.n_items + f.ir[rows]
        f.keep[rows[pd.Series(pair, copy=False).duplicated(keep=DEDUP_KEEP[dedup]).to_numpy()]] = False
        f.record("dedup", f"dataset.dedup={dedup}", setting=dedup)
    if max_history is not None:
        _cap_history(f, max_history)
    f.keep, rounds = _kcore(f.ur, f.ir, f.keep, min_user_count, min_item_count)
    label = f"the k-core filter (dataset.min_user_count={min_user_count}, dataset.min_item_count={min_item_count})"
    limits = {"min_user_count": min_user_count, "min_item_count": min_item_count}
    counts = f.record("kcore", label, **limits, rounds=rounds)
    f.summary["filtered"] = {**counts, **limits, "kcore_rounds": rounds}
    return _renumber(f, times, user_ids, item_ids), f.summary


def _window_and_rating(
    f: _Filtering,
    events: pd.DataFrame,
    times: Optional[np.ndarray],
    window: Optional[TimeWindow],
    min_rating: Optional[float],
) -> None:
    if window is not None:
        if times is None:
            raise UserError("dataset.min_time / max_time are set but the data has no timestamps (dataset.time_col).")
        f.keep &= window.mask(times)
        f.record("time_window", window.label(), **window.settings())
    if min_rating is not None:
        if "rating" not in events:
            raise UserError("dataset.min_rating is set but the data has no rating column (dataset.rating_col).")
        f.keep &= events["rating"].to_numpy() >= min_rating
        f.record("min_rating", f"dataset.min_rating={min_rating}", setting=min_rating)


def _cap_history(f: _Filtering, max_history: int) -> None:
    """Keep each user's most recent `max_history` kept events (the events are in time order)."""
    rows = np.flatnonzero(f.keep)
    counts = np.bincount(f.ur[rows], minlength=f.n_users)
    first = np.cumsum(counts) - counts
    from_end = counts[f.ur[rows]] - (np.arange(len(rows)) - first[f.ur[rows]])
    f.keep[rows[from_end > max_history]] = False
    f.record("max_history", f"dataset.max_history={max_history}", setting=max_history)


def _renumber(f: _Filtering, times: Optional[np.ndarray], user_ids: np.ndarray, item_ids: np.ndarray) -> Interactions:
    """The kept events with dense ids: ranks are already in id order, so a cumulative count keeps it."""
    ur, ir = f.ur, f.ir
    if not f.keep.all():
        rows = np.flatnonzero(f.keep)
        ur, ir = ur[rows], ir[rows]
        times = times[rows] if times is not None else None
    u_present = np.bincount(ur, minlength=f.n_users) > 0
    i_present = np.bincount(ir, minlength=f.n_items) > 0
    new_item = (np.cumsum(i_present) - i_present + 1).astype(np.int32)  # 1-based; 0 is padding
    user_counts = np.bincount(ur, minlength=f.n_users)[u_present]
    offsets = np.zeros(len(user_counts) + 1, dtype=np.int64)
    np.cumsum(user_counts, out=offsets[1:])
    return Interactions(
        offsets=offsets,
        items=new_item[ir],
        times=times,
        user_ids=user_ids[u_present],
        item_ids=item_ids[i_present],
    )
