"""Leave-one-out splits over `Interactions`, as index arithmetic on the CSR arrays.

A split never copies histories: each evaluation row is (user, end of its input history, target),
with the history being `items[offsets[user]:history_end]`. The last event of a user is the test
target, the one before it the validation target, the rest is training. Validation input is the
training prefix; test input is the training prefix plus the validation item. Users with fewer
than three events have no room for both targets and go to training whole.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from seqrec_cli.data.preprocess import Interactions


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

    def seen_item_counts(self, split: str) -> np.ndarray:
        """Interactions per item in the data a model may see when predicting `split`.

        For validation that is the training part; for test the training part plus every
        validation item. Index = item id (0 = padding, always 0). Drives the popularity baseline.
        """
        ends = self.train_end.copy()
        if split == "test":
            ends[self.valid.users] += 1
        return prefix_item_counts(self.data, ends)

    def summary(self) -> dict:
        d = self.data
        return {
            "train_interactions": int((self.train_end - d.offsets[:-1]).sum()),
            "valid_users": len(self.valid),
            "test_users": len(self.test),
            "train_only_users": self.n_train_only_users,
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


def prefix_item_counts(data: Interactions, ends: np.ndarray) -> np.ndarray:
    """Count items over every user's history prefix `items[offsets[u]:ends[u]]`."""
    lengths = data.lengths
    position = np.arange(data.n_interactions) - np.repeat(data.offsets[:-1], lengths)
    inside = position < np.repeat(ends - data.offsets[:-1], lengths)
    return np.bincount(data.items[inside], minlength=data.n_items + 1)
