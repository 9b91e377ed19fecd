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

import numpy as np

from seqrec_cli.data.preprocess import Interactions


def gather_windows(items: np.ndarray, starts: np.ndarray, ends: np.ndarray, width: int) -> tuple[np.ndarray, np.ndarray]:
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


@dataclass
class TrainingExamples:
    inputs: np.ndarray  # int64 [rows, max_len], right-padded
    targets: np.ndarray  # int64 [rows, max_len], 0 where there is no target
    lengths: np.ndarray  # int64 [rows]


def training_examples(data: Interactions, train_end: np.ndarray, max_len: int, all_windows: bool) -> TrainingExamples:
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
    return TrainingExamples(inputs, targets, lengths)


def history_rows(data: Interactions, users: np.ndarray, history_end: np.ndarray, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """The last `max_len` items of each user's history before `history_end`, right-padded."""
    return gather_windows(data.items, data.offsets[users], history_end, max_len)
