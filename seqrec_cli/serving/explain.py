"""Why an item was recommended: occlusion over the history window.

For each history item in the model's window, the history is scored again without it; the item's
contribution to a recommendation is the score it had minus the score without that history item.
All the occluded histories go through the model as one batch (the window plus one row per
removed item), so it works for every encoder and costs one forward pass of `len(window) + 1` rows.
Time-gap buckets are removed with their item; the others keep theirs. A one-item history is
compared with a history of padding alone, the model's empty input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

import numpy as np

# score_fn(items [r, L], lengths [r], gaps [r, L] | None, user_row, targets [t]) -> scores [r, t]
ScoreFn = Callable[[np.ndarray, np.ndarray, Optional[np.ndarray], int, np.ndarray], np.ndarray]


@dataclass
class Reason:
    position: int  # index in the window (0 = oldest)
    item_row: int
    contribution: float  # score with the item minus score without it


def occluded(window: np.ndarray, gaps: Optional[np.ndarray]) -> tuple[np.ndarray, np.ndarray, Optional[np.ndarray]]:
    """Row 0: the window itself; row 1 + j: the window without position j (right-padded)."""
    n = len(window)
    width = max(n, 1)
    items = np.zeros((n + 1, width), dtype=np.int64)
    gap_rows = np.zeros((n + 1, width), dtype=np.int64) if gaps is not None else None
    lengths = np.full(n + 1, max(n - 1, 1), dtype=np.int64)
    lengths[0] = n
    items[0, :n] = window
    if gap_rows is not None:
        gap_rows[0, :n] = gaps
    for j in range(n):
        keep = np.delete(np.arange(n), j)
        items[1 + j, : n - 1] = window[keep]
        if gap_rows is not None:
            gap_rows[1 + j, : n - 1] = gaps[keep]
    return items, lengths, gap_rows


def explain(
    score_fn: ScoreFn, window: np.ndarray, gaps: Optional[np.ndarray], user_row: int, targets: np.ndarray, top: int
) -> list[list[Reason]]:
    """For each target row, the `top` window items that raised its score most (contribution > 0),
    largest first."""
    if len(targets) == 0:
        return []
    items, lengths, gap_rows = occluded(np.asarray(window, np.int64), gaps)
    scores = np.asarray(score_fn(items, lengths, gap_rows, user_row, np.asarray(targets, np.int64)), np.float64)
    contributions = scores[0][None, :] - scores[1:]  # [window position, target]
    out = []
    for t in range(len(targets)):
        order = np.argsort(-contributions[:, t], kind="stable")[:top]
        out.append(
            [Reason(int(j), int(window[j]), float(contributions[j, t])) for j in order if contributions[j, t] > 0]
        )
    return out


def torch_score_fn(model) -> ScoreFn:
    """A ScoreFn from an eager SequentialRecommender (what seqrec-recommend explains with)."""
    import torch

    device = next(model.parameters()).device

    def score(items, lengths, gaps, user_row, targets):
        def put(x: np.ndarray) -> torch.Tensor:
            return torch.as_tensor(x, device=device)

        with torch.no_grad():
            users = put(np.full(len(items), user_row, dtype=np.int64)) if model.uses_users else None
            hidden = model.last_hidden(put(items), put(lengths), put(gaps) if gaps is not None else None, users)
            table = model.item_embedding.weight[put(targets)]
            return (hidden.float() @ table.float().T).cpu().numpy()

    return score


def bundle_score_fn(bundle) -> ScoreFn:
    """A ScoreFn from a bundle's graph: the targets as its candidate list, nothing excluded, so its
    top-K holds exactly the targets (there are at most K of them); scores are read back by row."""

    def score(items, lengths, gaps, user_row, targets):
        r = len(items)
        inputs = {
            "items": items,
            "lengths": lengths,
            "exclude": np.zeros((r, 1), np.int64),
            "candidates": np.repeat(targets[None, :], r, axis=0),
        }
        if bundle.meta["uses_time_gaps"]:
            inputs["gaps"] = gaps
        if bundle.meta["uses_users"]:
            inputs["users"] = np.full(r, user_row, dtype=np.int64)
        rows, scores = bundle.run(inputs)
        out = np.empty((r, len(targets)), dtype=np.float64)
        column = {int(t): c for c, t in enumerate(targets)}
        for i in range(r):
            for row, value in zip(rows[i, : len(targets)], scores[i, : len(targets)]):
                out[i, column[int(row)]] = value
        return out

    return score


def explain_histories(
    model,
    item_ids: np.ndarray,
    histories: list[np.ndarray],
    top_items: np.ndarray,
    *,
    gaps: list[Optional[np.ndarray]],
    user_rows: list[int],
    max_len: int,
    top: int = 3,
) -> list[list[str]]:
    """`seqrec-recommend explain=true`: per history, per recommended item (0 = none), the history
    items that raised its score most, as `original id (+contribution)` joined by `; `."""
    score_fn = torch_score_fn(model)
    out = []
    for i, history in enumerate(histories):
        targets = top_items[i][top_items[i] > 0]
        history_gaps = gaps[i][-max_len:] if model.uses_time_gaps else None
        reasons = explain(score_fn, history[-max_len:], history_gaps, user_rows[i], targets, top)
        out.append(["; ".join(f"{item_ids[r.item_row - 1]} (+{r.contribution:.4f})" for r in why) for why in reasons])
    return out
