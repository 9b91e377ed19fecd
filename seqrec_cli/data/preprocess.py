"""From raw events to `Interactions`: filter, remap ids, order each user's history.

Contracts (see docs/ARCHITECTURE.md): item 0 is padding and real items are 1..n_items numbered in
ascending order of their original id, so results never depend on file order; each user's events
are sorted by time with ties kept in input order (stable), because real data is full of ties and
the tie rule decides which event becomes the test target. Everything is vectorised: a 20M-row
file must not meet a per-row Python loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np
import pandas as pd

from seqrec_cli.errors import UserError


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


def kcore_mask(users: np.ndarray, items: np.ndarray, min_user: int, min_item: int) -> tuple[np.ndarray, int]:
    """Rows that survive iterated minimum-count filters, and how many rounds it took.

    Dropping rare items can push a user under the minimum and vice versa, so the two filters are
    repeated until neither removes anything (a fixed point).
    """
    u_codes = pd.factorize(users)[0]
    i_codes = pd.factorize(items)[0]
    keep = np.ones(len(users), dtype=bool)
    rounds = 0
    while True:
        rounds += 1
        u_count = np.bincount(u_codes[keep], minlength=u_codes.max(initial=-1) + 1)
        i_count = np.bincount(i_codes[keep], minlength=i_codes.max(initial=-1) + 1)
        new_keep = keep & (u_count[u_codes] >= min_user) & (i_count[i_codes] >= min_item)
        if new_keep.sum() == keep.sum():
            return new_keep, rounds
        keep = new_keep


def build_interactions(
    events: pd.DataFrame, min_user_count: int, min_item_count: int
) -> tuple[Interactions, dict]:
    """Filter, remap and sort raw events; return them with counts before and after each step."""
    summary: dict = {"raw": _counts(events["user"].to_numpy(), events["item"].to_numpy())}
    users = events["user"].to_numpy()
    items = events["item"].to_numpy()
    times = events["time"].to_numpy() if "time" in events else None

    keep, rounds = kcore_mask(users, items, min_user_count, min_item_count)
    users, items = users[keep], items[keep]
    times = times[keep] if times is not None else None
    summary["filtered"] = {
        **_counts(users, items),
        "min_user_count": min_user_count,
        "min_item_count": min_item_count,
        "kcore_rounds": rounds,
    }
    if len(users) == 0:
        raw = summary["raw"]
        raise UserError(
            f"No interactions are left after filtering users with fewer than {min_user_count} and "
            f"items with fewer than {min_item_count} interactions (the data had {raw['users']} users, "
            f"{raw['items']} items, {raw['interactions']} interactions): lower "
            "dataset.min_user_count / dataset.min_item_count."
        )

    # np.unique sorts: numeric order for integer ids, string order otherwise (the id contract).
    user_ids, user_idx = np.unique(users, return_inverse=True)
    item_ids, item_idx = np.unique(items, return_inverse=True)

    # Stable sorts: by time first, then by user, so ties keep their input order.
    order = np.arange(len(user_idx))
    if times is not None:
        order = np.argsort(times, kind="stable")
    order = order[np.argsort(user_idx[order], kind="stable")]

    counts = np.bincount(user_idx, minlength=len(user_ids))
    offsets = np.zeros(len(user_ids) + 1, dtype=np.int64)
    np.cumsum(counts, out=offsets[1:])
    inter = Interactions(
        offsets=offsets,
        items=(item_idx[order] + 1).astype(np.int32),
        times=times[order] if times is not None else None,
        user_ids=user_ids,
        item_ids=item_ids,
    )
    return inter, summary


def _counts(users: np.ndarray, items: np.ndarray) -> dict:
    return {
        "users": int(len(pd.unique(users))),
        "items": int(len(pd.unique(items))),
        "interactions": int(len(users)),
    }
