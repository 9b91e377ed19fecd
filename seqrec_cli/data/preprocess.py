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


def kcore_mask(users: np.ndarray, items: np.ndarray, min_user: int, min_item: int) -> tuple[np.ndarray, int]:
    """Rows that survive iterated minimum-count filters, and how many rounds it took.

    Dropping rare items can push a user under the minimum and vice versa, so the two filters are
    repeated until neither removes anything (a fixed point).
    """
    u_codes = pd.factorize(users)[0]
    i_codes = pd.factorize(items)[0]
    keep = np.ones(len(users), dtype=bool)
    return _kcore(u_codes, i_codes, keep, min_user, min_item)


def _kcore(u: np.ndarray, i: np.ndarray, keep: np.ndarray, min_user: int, min_item: int) -> tuple[np.ndarray, int]:
    """`kcore_mask` on integer codes, starting from (and not modifying) an existing keep-mask."""
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


def build_interactions(
    events: pd.DataFrame,
    min_user_count: int,
    min_item_count: int,
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
    users, items = events["user"].to_numpy(), events["item"].to_numpy()
    times = events["time"].to_numpy() if "time" in events else None
    ur, user_ids = _id_codes(users)
    ir, item_ids = _id_codes(items)
    n_u, n_i = len(user_ids), len(item_ids)
    summary: dict = {"raw": {"users": n_u, "items": n_i, "interactions": len(ur)}, "steps": []}
    del users, items

    keep = np.ones(len(ur), dtype=bool)
    if time_window is not None:
        if times is None:
            raise UserError("dataset.min_time / max_time are set but the data has no timestamps (dataset.time_col).")
        keep &= time_window.mask(times)
        _record(summary, "time_window", time_window.label(), ur, ir, keep, n_u, n_i, **time_window.settings())
    if min_rating is not None:
        if "rating" not in events:
            raise UserError("dataset.min_rating is set but the data has no rating column (dataset.rating_col).")
        keep &= events["rating"].to_numpy() >= min_rating
        _record(summary, "min_rating", f"dataset.min_rating={min_rating}", ur, ir, keep, n_u, n_i, setting=min_rating)

    order = time_order(ur, times)
    ur, ir, keep = ur[order], ir[order], keep[order]
    times = times[order] if times is not None else None
    del order

    if dedup in DEDUP_KEEP:
        rows = np.flatnonzero(keep)
        pair = ur[rows].astype(np.int64) * n_i + ir[rows]
        repeated = pd.Series(pair, copy=False).duplicated(keep=DEDUP_KEEP[dedup]).to_numpy()
        keep[rows[repeated]] = False
        del pair, rows
        _record(summary, "dedup", f"dataset.dedup={dedup}", ur, ir, keep, n_u, n_i, setting=dedup)

    if max_history is not None:
        rows = np.flatnonzero(keep)
        counts = np.bincount(ur[rows], minlength=n_u)
        first = np.cumsum(counts) - counts
        from_end = counts[ur[rows]] - (np.arange(len(rows)) - first[ur[rows]])
        keep[rows[from_end > max_history]] = False
        del rows, from_end
        _record(
            summary, "max_history", f"dataset.max_history={max_history}", ur, ir, keep, n_u, n_i, setting=max_history
        )

    keep, rounds = _kcore(ur, ir, keep, min_user_count, min_item_count)
    counts = _record(
        summary,
        "kcore",
        f"the k-core filter (dataset.min_user_count={min_user_count}, dataset.min_item_count={min_item_count})",
        ur,
        ir,
        keep,
        n_u,
        n_i,
        min_user_count=min_user_count,
        min_item_count=min_item_count,
        rounds=rounds,
    )
    summary["filtered"] = {
        **counts,
        "min_user_count": min_user_count,
        "min_item_count": min_item_count,
        "kcore_rounds": rounds,
    }

    rows = np.flatnonzero(keep) if not keep.all() else None
    if rows is not None:
        ur, ir = ur[rows], ir[rows]
        times = times[rows] if times is not None else None
    # Renumber the survivors: ranks are already in id order, so a cumulative count keeps it.
    u_present = np.bincount(ur, minlength=n_u) > 0
    i_present = np.bincount(ir, minlength=n_i) > 0
    new_item = (np.cumsum(i_present) - i_present + 1).astype(np.int32)  # 1-based; 0 is padding
    user_counts = np.bincount(ur, minlength=n_u)[u_present]
    offsets = np.zeros(len(user_counts) + 1, dtype=np.int64)
    np.cumsum(user_counts, out=offsets[1:])
    inter = Interactions(
        offsets=offsets,
        items=new_item[ir],
        times=times,
        user_ids=user_ids[u_present],
        item_ids=item_ids[i_present],
    )
    return inter, summary


def _record(
    summary: dict,
    step: str,
    label: str,
    ur: np.ndarray,
    ir: np.ndarray,
    keep: np.ndarray,
    n_u: int,
    n_i: int,
    **settings: object,
) -> dict:
    """Append the counts after `step`; stop with a clear sentence when nothing is left."""
    rows = np.flatnonzero(keep)
    counts = {
        "users": int(np.count_nonzero(np.bincount(ur[rows], minlength=n_u))),
        "items": int(np.count_nonzero(np.bincount(ir[rows], minlength=n_i))),
        "interactions": int(len(rows)),
    }
    before = summary["steps"][-1] if summary["steps"] else summary["raw"]
    summary["steps"].append({"step": step, **settings, **counts})
    if counts["interactions"] == 0:
        raise UserError(
            f"No interactions are left after {label} (before it: {before['users']} users, "
            f"{before['items']} items, {before['interactions']} interactions): relax that setting."
        )
    return counts
