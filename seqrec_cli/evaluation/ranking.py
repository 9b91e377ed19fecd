"""Full-ranking evaluation of a split, for the model and for the popularity baseline.

The inputs of a split (padded histories, targets, the history items to mask) are built once and
kept on the device; each evaluation then only runs the model in large batches and counts, per
user, the items that outrank the target. Metrics are computed from integer ranks over all users,
so they do not depend on the evaluation batch size.

Rows are stored grouped by input width: each row's width is its own history length rounded up to
a multiple of WIDTH_STEP (capped at max_len), and a batch never mixes widths. Short histories
then skip most of their padding (Amazon Beauty: mean history 9 of a 50-wide window; with the
changes in metrics.py and models/attention.py a validation pass went from 7.0 s to 1.4 s on one
loaded core), while a row's arithmetic still depends only on the row itself, never on which batch
it lands in.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional, Sequence

import numpy as np
import torch

from seqrec_cli.data import EvalSplit, SequenceSplits
from seqrec_cli.data.batches import SideInputs, history_gaps, history_rows
from seqrec_cli.evaluation.metrics import ranking_metrics, target_ranks
from seqrec_cli.models import MIN_ROWS, SequentialRecommender, autocast


WIDTH_STEP = 8


@dataclass
class EvalInputs:
    """One split's rows, sorted by input width (`order` maps them back to the split's order)."""

    items: torch.Tensor  # [n, max_len] right-padded model input
    lengths: torch.Tensor  # [n]
    targets: torch.Tensor  # [n] item ids
    mask_offsets: np.ndarray  # [n + 1] CSR offsets into mask_items
    mask_items: torch.Tensor  # flat item ids to exclude from each row's ranking
    widths: np.ndarray  # [n] input width of each row, non-decreasing
    order: np.ndarray  # [n] the split row each row holds
    n_items: int  # catalogue size: the columns of a score matrix
    gaps: Optional[torch.Tensor] = None  # [n, max_len] time-gap buckets, when the model uses them
    users: Optional[torch.Tensor] = None  # [n] model user rows, when the model has user vectors

    def __len__(self) -> int:
        return len(self.targets)


def input_widths(lengths: np.ndarray, max_len: int) -> np.ndarray:
    """Each row's input width: its length rounded up to a multiple of WIDTH_STEP, at most max_len."""
    return np.minimum(-(-np.asarray(lengths, dtype=np.int64) // WIDTH_STEP) * WIDTH_STEP, max_len)


def prepare(
    splits: SequenceSplits,
    split: EvalSplit,
    max_len: int,
    mask_history: bool,
    device: torch.device,
    side: SideInputs = SideInputs(),
) -> EvalInputs:
    """The split's model inputs and masks, on `device`; `side` adds the inputs optional model
    features need (time gaps, user rows)."""
    data = splits.data
    lengths = np.minimum(split.history_end - data.offsets[split.users], max_len)
    widths = input_widths(lengths, max_len)
    order = np.argsort(widths, kind="stable")
    users, history_end = split.users[order], split.history_end[order]
    items, lengths = history_rows(data, users, history_end, max_len)
    starts = data.offsets[users]
    n_mask = (history_end - starts) if mask_history else np.zeros(len(split), dtype=np.int64)
    mask_offsets = np.zeros(len(split) + 1, dtype=np.int64)
    np.cumsum(n_mask, out=mask_offsets[1:])
    flat = np.repeat(starts, n_mask) + (np.arange(mask_offsets[-1]) - np.repeat(mask_offsets[:-1], n_mask))
    return EvalInputs(
        items=torch.as_tensor(items, device=device),
        lengths=torch.as_tensor(lengths, device=device),
        targets=torch.as_tensor(split.targets[order], device=device),
        mask_offsets=mask_offsets,
        mask_items=torch.as_tensor(data.items[flat].astype(np.int64), device=device),
        widths=widths[order],
        order=order,
        n_items=data.n_items,
        gaps=(
            torch.as_tensor(history_gaps(side.gaps, data, users, history_end, max_len), device=device)
            if side.gaps is not None
            else None
        ),
        users=torch.as_tensor(side.user_rows[users], device=device) if side.user_rows is not None else None,
    )


def batch_slices(widths: np.ndarray, batch_size: int) -> list[slice]:
    """Consecutive runs of at most `batch_size` rows, never mixing two widths."""
    bounds = np.flatnonzero(np.diff(widths)) + 1
    edges = np.concatenate([[0], bounds, [len(widths)]]) if len(widths) else np.zeros(1, dtype=np.int64)
    return [
        slice(start, min(start + batch_size, stop))
        for first, stop in zip(edges[:-1].tolist(), edges[1:].tolist())
        for start in range(first, stop, batch_size)
    ]


@dataclass(frozen=True)
class Scorer:
    """How rows get their scores, in two steps so that each runs at the size that suits it:
    `encode(inputs, rows)` turns a batch of rows of one width into one query per row (the model's
    encoder, most efficient on large batches), and `score(queries, out)` turns a chunk of those
    queries into float32 scores for every item (written into `out` when it can be), a chunk small
    enough for its score block to stay in the CPU cache while it is ranked."""

    encode: Callable[[EvalInputs, slice], torch.Tensor]
    score: Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


# Rows per score chunk on a CPU: about this many bytes of scores, so that the block is still in
# cache when it is compared with the targets (the sizes tried are in docs/PERFORMANCE.md).
SCORE_CHUNK_BYTES = 4 * 2**20


def score_chunk_rows(n_items: int, device: torch.device, batch_size: int) -> int:
    """Rows per score chunk: the whole batch on a GPU, a cache-sized block on a CPU."""
    if device.type != "cpu":
        return batch_size
    return max(MIN_ROWS, min(batch_size, SCORE_CHUNK_BYTES // (4 * max(n_items, 1))))


def rank_all(inputs: EvalInputs, scorer: Scorer, batch_size: int, top: Optional[np.ndarray] = None) -> np.ndarray:
    """0-based target ranks of every row, in the split's order. Rows are encoded in batches of at
    most `batch_size` rows of one width, then scored and ranked chunk by chunk. `top` ([n, K]
    int64, split order), when given, receives each row's K best items after masking (the list a
    user would get; `torch.topk` orders ties), for the beyond-accuracy metrics."""
    slices = batch_slices(inputs.widths, batch_size)
    if not slices:
        return np.zeros(0, dtype=np.int64)
    n_items = int(inputs.n_items)
    device = inputs.items.device
    chunk = min(score_chunk_rows(n_items, device, batch_size), max(s.stop - s.start for s in slices))
    # Two [chunk, n_items] buffers reused by every chunk: a fresh tensor per chunk costs its page
    # faults each time on a CPU (measured in docs/PERFORMANCE.md).
    score_buf = torch.empty(chunk, n_items, device=device)
    count_buf = torch.empty(chunk, n_items, device=device)
    sorted_ranks = torch.empty(len(inputs), dtype=torch.int64, device=device)  # read back once
    k_top = min(top.shape[1], n_items) if top is not None else 0
    sorted_top = torch.zeros(len(inputs), k_top, dtype=torch.int64, device=device)
    for rows in slices:
        queries = scorer.encode(inputs, rows)
        for lo in range(0, len(queries), chunk):
            q = queries[lo : lo + chunk]
            n, first = len(q), rows.start + lo
            scores = scorer.score(q, score_buf[:n]).float()
            a, b = inputs.mask_offsets[first], inputs.mask_offsets[first + n]
            counts = torch.as_tensor(np.diff(inputs.mask_offsets[first : first + n + 1]), device=device)
            mask_rows = torch.repeat_interleave(torch.arange(n, device=device), counts)
            sorted_ranks[first : first + n] = target_ranks(
                scores, inputs.targets[first : first + n] - 1, mask_rows, inputs.mask_items[a:b] - 1, count_buf[:n]
            )
            if k_top:
                sorted_top[first : first + n] = torch.topk(scores, k_top, dim=1).indices + 1
    ranks = np.empty(len(inputs), dtype=np.int64)
    ranks[inputs.order] = sorted_ranks.cpu().numpy()
    if top is not None:
        top[inputs.order, :k_top] = sorted_top.cpu().numpy()
    return ranks


def model_scorer(model: SequentialRecommender, amp: bool) -> Scorer:
    def encode(inputs: EvalInputs, rows: slice) -> torch.Tensor:
        # The width comes from the rows themselves (all equal within a slice), never from the
        # batch, so a row's arithmetic is the same whatever batch it lands in.
        width = int(inputs.widths[rows.start])
        gaps = inputs.gaps[rows, :width] if inputs.gaps is not None else None
        users = inputs.users[rows] if inputs.users is not None else None
        with torch.no_grad(), autocast(inputs.items.device, amp):
            hidden = model.last_hidden(inputs.items[rows, :width], inputs.lengths[rows], gaps, users)
        # Scores stay float32 under autocast: bf16's 8-bit mantissa would tie many items, and
        # ties are broken against the target.
        return hidden.float()

    def score(queries: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            return model.scores(queries, out=out)

    return Scorer(encode, score)


def popularity_scorer(item_counts: np.ndarray, device: torch.device) -> Scorer:
    """Every user gets the same scores: how often each item occurs in the data seen so far."""
    counts = torch.as_tensor(item_counts[1:], dtype=torch.float32, device=device)

    def encode(inputs: EvalInputs, rows: slice) -> torch.Tensor:
        return torch.zeros(rows.stop - rows.start, 0, device=device)  # no per-user query

    def score(queries: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
        return out.copy_(counts.expand(len(queries), -1))

    return Scorer(encode, score)


Gather = Callable[[np.ndarray], np.ndarray]


def _local(ranks: np.ndarray) -> np.ndarray:
    return ranks


def shard(split: EvalSplit, rank: int, world_size: int) -> EvalSplit:
    """Rows `rank::world_size` of a split: each distributed process ranks its own users."""
    take = slice(rank, None, world_size)
    return EvalSplit(split.users[take], split.history_end[take], split.targets[take])


def evaluate(
    inputs: EvalInputs, scorer: Scorer, batch_size: int, ks: Sequence[int], gather: Gather = _local
) -> dict[str, float]:
    """Metrics over all rows; under torch.distributed `gather` joins every process's ranks first,
    so every process computes the same numbers."""
    return ranking_metrics(gather(rank_all(inputs, scorer, batch_size)), ks)


def evaluate_model(
    model: SequentialRecommender,
    inputs: EvalInputs,
    batch_size: int,
    ks: Sequence[int],
    amp: bool,
    gather: Gather = _local,
) -> dict[str, float]:
    was_training = model.training
    model.eval()
    try:
        with model.precomputed_items():  # item features: the item table once per pass
            return evaluate(inputs, model_scorer(model, amp), batch_size, ks, gather)
    finally:
        model.train(was_training)
