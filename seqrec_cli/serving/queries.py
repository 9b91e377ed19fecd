"""Requests as graph inputs: one `Query` per history, many queries packed into one forward pass.

A history longer than the model's window contributes its newest `max_len` items to the input (as
in training and `seqrec-recommend`); exclusion still covers the whole history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Optional, Sequence

import numpy as np

from seqrec_cli.serving.engine import Bundle


@dataclass
class Query:
    """One history to recommend after, in model item rows (1..n_items)."""

    history: np.ndarray  # int64, oldest first, non-empty
    k: int
    gaps: Optional[np.ndarray] = None  # gap bucket per history event (models with time gaps)
    user_row: int = 0  # the model's user-vector row; 0 = the history alone
    exclude: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))  # rows never to recommend
    candidates: Optional[np.ndarray] = None  # the only rows that may be recommended; None = all
    explain: bool = False
    label: Any = None  # what the answer calls this history (the user id, or None)
    unknown: list[str] = field(default_factory=list)  # ids skipped under on_unknown=skip

    def window(self, max_len: int) -> np.ndarray:
        return self.history[-max_len:]


def pack(queries: Sequence[Query], bundle: Bundle) -> dict[str, np.ndarray]:
    """The graph inputs of a batch of queries: windows right-padded to the longest one, exclusion
    and candidate lists right-padded with 0 (at least one column: a zero row means "none")."""
    max_len = bundle.max_len
    windows = [q.window(max_len) for q in queries]
    lengths = np.array([len(w) for w in windows], dtype=np.int64)
    inputs = {
        "items": _padded(windows),
        "lengths": lengths,
        "exclude": _padded([q.exclude for q in queries]),
        "candidates": _padded([q.candidates if q.candidates is not None else np.zeros(0, np.int64) for q in queries]),
    }
    if bundle.meta["uses_time_gaps"]:
        inputs["gaps"] = _padded([q.gaps[-max_len:] for q in queries])
    if bundle.meta["uses_users"]:
        inputs["users"] = np.array([q.user_row for q in queries], dtype=np.int64)
    return inputs


def _padded(rows: Sequence[np.ndarray]) -> np.ndarray:
    width = max([1] + [len(r) for r in rows])
    out = np.zeros((len(rows), width), dtype=np.int64)
    for i, r in enumerate(rows):
        out[i, : len(r)] = r
    return out
