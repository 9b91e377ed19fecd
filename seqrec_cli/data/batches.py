"""Padded sequence matrices: the training examples and the evaluation inputs.

Layout: rows are right-padded (real items first, 0 after), so a causal encoder's output at a real
position never sees padding, and a row's prediction sits at index `length - 1`. The whole matrix is
built once with vectorised index arithmetic and moved to the device as one tensor; batches are then
drawn by row index, with no per-sample Python.

Training rows follow SASRec: a window of `max_len + 1` consecutive training items gives an input
(all but the last) and targets (the input shifted by one); the loss uses every non-padding position.
With `all_windows`, longer histories also give their earlier non-overlapping windows, so a
500-event user is not cut to 50. Never one row per prefix: that grows with L².
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

import numpy as np

from seqrec_cli.data.preprocess import Interactions
from seqrec_cli.errors import UserError


def gather_windows(
    items: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int
) -> tuple[np.ndarray, np.ndarray]:
    """Rows of `items[start:end]` (keeping at most the last `width`), right-padded with 0.

    Returns the int64 matrix [rows, width] and the int64 lengths.
    """
    starts = np.maximum(starts, ends - width)
    lengths = np.maximum(ends - starts, 0).astype(np.int64)
    out = np.zeros((len(starts), width), dtype=np.int64)
    rows = np.repeat(np.arange(len(starts)), lengths)
    cols = np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
    out[rows, cols] = items[np.repeat(starts, lengths) + cols]
    return out, lengths


# Time-gap buckets: 0 is padding, 1 marks a user's first event (no gap), and bucket 2 + b holds
# gaps g with floor(log2(1 + g)) = b, capped at b = MAX_GAP_LOG2. Log buckets make the feature
# unit-free in practice: seconds and milliseconds only shift it by ten buckets.
MAX_GAP_LOG2 = 45
N_GAP_BUCKETS = MAX_GAP_LOG2 + 3


def gap_buckets(data: Interactions) -> np.ndarray:
    """The time-gap bucket of every interaction (aligned with `data.items`): how long after the
    user's previous event it happened, so an encoder can tell a session from a return visit."""
    if data.times is None:
        raise UserError(
            "encoder.time_features=gap needs timestamps, and this dataset has none: set dataset.time_col "
            "or use encoder.time_features=none."
        )
    times = data.times.astype(np.float64)
    gaps = np.diff(times, prepend=times[:1]) if len(times) else times
    buckets = 2 + np.minimum(np.floor(np.log2(1.0 + np.maximum(gaps, 0.0))), MAX_GAP_LOG2).astype(np.int64)
    buckets[data.offsets[:-1][data.lengths > 0]] = 1  # a user's first event has no previous one
    return buckets


def user_rows(has_training: np.ndarray) -> np.ndarray:
    """Each user's row in the model's user-embedding table: 1..n for users with training rows
    (in user order), 0 (the zero vector: sequence alone) for users the model never trained on."""
    return (np.cumsum(has_training) * has_training).astype(np.int64)


@dataclass
class SideInputs:
    """Per-interaction and per-user inputs besides the item ids, for the options that use them."""

    gaps: Optional[np.ndarray] = None  # int64 gap bucket per interaction (encoder.time_features=gap)
    user_rows: Optional[np.ndarray] = None  # int64 model user row per data user (model.user_embedding)


@dataclass
class TrainingExamples:
    inputs: np.ndarray  # int64 [rows, max_len], right-padded
    targets: np.ndarray  # int64 [rows, max_len], 0 where there is no target
    lengths: np.ndarray  # int64 [rows]
    gaps: Optional[np.ndarray] = None  # int64 [rows, max_len] gap buckets of the inputs, 0 = padding
    users: Optional[np.ndarray] = None  # int64 [rows] model user row of each row


def training_examples(
    data: Interactions, train_end: np.ndarray, max_len: int, all_windows: bool, side: SideInputs = SideInputs()
) -> TrainingExamples:
    """SASRec-style training rows from each user's training prefix (see the module docstring)."""
    starts, ends = data.offsets[:-1], train_end
    # Windows end at the prefix end and, with all_windows, every max_len items before it; each
    # window spans max_len + 1 items, so consecutive windows share one item and every transition
    # (item -> next item) is trained on exactly once.
    n_windows = np.ones(len(starts), dtype=np.int64)
    if all_windows:
        n_transitions = np.maximum(ends - starts - 1, 0)
        n_windows = np.maximum(-(-n_transitions // max_len), 1)
    user = np.repeat(np.arange(len(starts)), n_windows)
    k = np.arange(n_windows.sum()) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
    w_end = ends[user] - k * max_len
    w_start = np.maximum(starts[user], w_end - max_len - 1)
    keep = (w_end - w_start) >= 2
    w_start, w_end = w_start[keep], w_end[keep]
    inputs, lengths = gather_windows(data.items, w_start, w_end - 1, max_len)
    targets, _ = gather_windows(data.items, w_start + 1, w_end, max_len)
    gaps = gather_windows(side.gaps, w_start, w_end - 1, max_len)[0] if side.gaps is not None else None
    users = side.user_rows[user[keep]] if side.user_rows is not None else None
    return TrainingExamples(inputs, targets, lengths, gaps, users)


def history_rows(
    data: Interactions, users: np.ndarray, history_end: np.ndarray, max_len: int
) -> tuple[np.ndarray, np.ndarray]:
    """The last `max_len` items of each user's history before `history_end`, right-padded."""
    return gather_windows(data.items, data.offsets[users], history_end, max_len)


def history_gaps(
    gaps: np.ndarray, data: Interactions, users: np.ndarray, history_end: np.ndarray, max_len: int
) -> np.ndarray:
    """The gap buckets aligned with `history_rows` (same windows, 0 on padding)."""
    return gather_windows(gaps, data.offsets[users], history_end, max_len)[0]


def has_training_rows(data: Interactions, train_end: np.ndarray) -> np.ndarray:
    """Users with at least one training transition (two training events): the users
    `training_examples` gives rows, and so the only ones a user vector is ever trained for."""
    return (train_end - data.offsets[:-1]) >= 2


def side_inputs(data: Interactions, train_end: np.ndarray, time_gaps: bool, user_vectors: bool) -> SideInputs:
    """The optional inputs a configured model needs, for the data it trains on."""
    return SideInputs(
        gaps=gap_buckets(data) if time_gaps else None,
        user_rows=user_rows(has_training_rows(data, train_end)) if user_vectors else None,
    )
