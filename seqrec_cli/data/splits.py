"""Train / validation / test splits over `Interactions`, as index arithmetic on the CSR arrays.

A split never copies histories: each evaluation row is (user, end of its input history, target),
with the history being `items[offsets[user]:history_end]`, and training uses
`items[offsets[u]:train_end[u]]`.

Leave-one-out: the last event of a user is the test target, the one before it the validation
target, the rest is training. Validation input is the training prefix; test input is the training
prefix plus the validation item. Users with fewer than three events go to training whole.

Temporal: two global instants cut every history at the same moment. Training is every event
before the validation cut, so no event after it is ever trained on, for any user. A user's
validation target is their first event in [valid cut, test cut), with everything before the
validation cut as input; their test target is their first event at or after the test cut, with
everything before the test cut as input (validation-period events included, as leave-one-out's
test input includes the validation item). Other events after a cut are not targets (the summary
counts them); those between the cuts still serve as test input, those after the test cut are
unused. A user needs at least one event before a cut to be evaluated there (a model cannot rank
from an empty history); such cold users are counted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from seqrec_cli.config.schema import SplitConfig
from seqrec_cli.data.preprocess import Interactions
from seqrec_cli.errors import UserError


@dataclass
class EvalSplit:
    users: np.ndarray  # int64 user indices with a target in this split
    history_end: np.ndarray  # int64 absolute index into Interactions.items (exclusive)
    targets: np.ndarray  # int64 item ids

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class SequenceSplits:
    data: Interactions
    train_end: np.ndarray  # int64 per user: training part is items[offsets[u]:train_end[u]]
    valid: EvalSplit
    test: EvalSplit
    n_train_only_users: int
    # int64 per user: the events visible when predicting test targets are items[offsets[u]:end];
    # None means leave-one-out's rule (training part + each validation item).
    test_visible_end: Optional[np.ndarray] = None
    kind: str = "leave_one_out"
    details: Optional[dict] = None

    def seen_item_counts(self, split: str) -> np.ndarray:
        """Interactions per item in the data a model may see when predicting `split`.

        For validation that is the training part; for test everything before the test targets
        (leave-one-out: training part plus every validation item). Index = item id (0 = padding,
        always 0). Drives the popularity baseline.
        """
        if split == "test":
            ends = self.test_visible_end
            if ends is None:
                ends = self.train_end.copy()
                ends[self.valid.users] += 1
        else:
            ends = self.train_end
        return prefix_item_counts(self.data, ends)

    def summary(self) -> dict:
        d = self.data
        return {
            "kind": self.kind,
            "train_interactions": int((self.train_end - d.offsets[:-1]).sum()),
            "valid_users": len(self.valid),
            "test_users": len(self.test),
            "train_only_users": self.n_train_only_users,
            **(self.details or {}),
        }


def leave_one_out(data: Interactions) -> SequenceSplits:
    starts, ends = data.offsets[:-1], data.offsets[1:]
    evaluable = (ends - starts) >= 3
    users = np.flatnonzero(evaluable).astype(np.int64)
    train_end = np.where(evaluable, ends - 2, ends).astype(np.int64)
    valid_end = ends[users] - 2
    test_end = ends[users] - 1
    return SequenceSplits(
        data=data,
        train_end=train_end,
        valid=EvalSplit(users, valid_end, data.items[valid_end].astype(np.int64)),
        test=EvalSplit(users, test_end, data.items[test_end].astype(np.int64)),
        n_train_only_users=int((~evaluable).sum()),
    )


def cut_at_quantile(times: np.ndarray, q: float) -> float | int:
    """The timestamp of the event at quantile `q`: about a fraction q of events come before it.

    With ties at the cut, fewer than q of the events are strictly before it (the tied events all
    fall after the cut, together). O(n) selection, no full sort.
    """
    k = min(int(np.ceil(q * len(times))), len(times) - 1)
    return np.partition(times, k)[k].item()


def temporal(data: Interactions, valid_cut: float, test_cut: float) -> SequenceSplits:
    """Split at two global instants (see the module docstring for what each part holds)."""
    if data.times is None:
        raise UserError(
            "A temporal split needs timestamps, and this dataset has none: use dataset.split.kind=leave_one_out."
        )
    if not valid_cut < test_cut:
        raise UserError(f"The validation cut ({valid_cut}) must come before the test cut ({test_cut}).")
    starts, ends = data.offsets[:-1], data.offsets[1:]
    user_of = np.repeat(np.arange(data.n_users), data.lengths)
    before_valid = np.bincount(user_of[data.times < valid_cut], minlength=data.n_users)
    before_test = np.bincount(user_of[data.times < test_cut], minlength=data.n_users)
    train_end = (starts + before_valid).astype(np.int64)
    test_visible_end = (starts + before_test).astype(np.int64)

    has_valid = before_test > before_valid  # an event in [valid cut, test cut)
    valid_users = np.flatnonzero(has_valid & (before_valid > 0)).astype(np.int64)
    has_test = test_visible_end < ends
    test_users = np.flatnonzero(has_test & (before_test > 0)).astype(np.int64)
    valid_end, test_end = train_end[valid_users], test_visible_end[test_users]

    evaluated = np.zeros(data.n_users, dtype=bool)
    evaluated[valid_users] = True
    evaluated[test_users] = True
    details = {
        "valid_cut": valid_cut,
        "test_cut": test_cut,
        "cold_valid_users": int((has_valid & (before_valid == 0)).sum()),
        "cold_test_users": int((has_test & (before_test == 0)).sum()),
        "non_target_events_in_valid_period": int((before_test - before_valid).sum() - len(valid_users)),
        "non_target_events_in_test_period": int((ends - test_visible_end).sum() - len(test_users)),
    }
    return SequenceSplits(
        data=data,
        train_end=train_end,
        valid=EvalSplit(valid_users, valid_end, data.items[valid_end].astype(np.int64)),
        test=EvalSplit(test_users, test_end, data.items[test_end].astype(np.int64)),
        n_train_only_users=int((~evaluated).sum()),
        test_visible_end=test_visible_end,
        kind="temporal",
        details=details,
    )


def split(data: Interactions, cfg: SplitConfig) -> SequenceSplits:
    """The configured split: leave-one-out (with an item hold-out when `cfg.cold_items` > 0), or
    temporal at timestamps or quantiles."""
    if cfg.kind == "leave_one_out" and cfg.cold_items > 0:
        from seqrec_cli.data.cold_items import hold_out

        held, details = hold_out(data, cfg.cold_items, cfg.cold_seed)
        splits = leave_one_out(held)
        splits.kind, splits.details = "leave_one_out+cold_items", details
        return splits
    if cfg.kind == "leave_one_out":
        return leave_one_out(data)
    if data.times is None:
        raise UserError(
            "A temporal split needs timestamps, and this dataset has none: use dataset.split.kind=leave_one_out."
        )
    valid_cut = cfg.valid_time if cfg.valid_time is not None else cut_at_quantile(data.times, cfg.valid_quantile)
    test_cut = cfg.test_time if cfg.test_time is not None else cut_at_quantile(data.times, cfg.test_quantile)
    if not valid_cut < test_cut:
        raise UserError(
            f"The temporal split's validation cut ({valid_cut}) is not before its test cut ({test_cut}): "
            "set dataset.split.valid_quantile / test_quantile (or valid_time / test_time) further apart."
        )
    return temporal(data, valid_cut, test_cut)


def prefix_item_counts(data: Interactions, ends: np.ndarray) -> np.ndarray:
    """Count items over every user's history prefix `items[offsets[u]:ends[u]]`."""
    lengths = data.lengths
    position = np.arange(data.n_interactions) - np.repeat(data.offsets[:-1], lengths)
    inside = position < np.repeat(ends - data.offsets[:-1], lengths)
    return np.bincount(data.items[inside], minlength=data.n_items + 1)
