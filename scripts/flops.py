"""The arithmetic a training epoch and a validation pass need, and the machine's measured peak.

Why: "close to the machine" should be a number. `benchmark.py speed` divides these counts by the
measured seconds and prints the achieved GFLOP/s beside the rate of one large float32 matrix
product on the same number of threads (`matmul_peak_gflops`).

What is counted (FLOP = 2 per multiply-add), from the shapes alone:
- matrix products: per block the q/k/v and output projections (4 d^2 per position), the
  feed-forward net (2 d f), the attention products QK^T and AV over the causal pairs only
  (position i attends to i + 1 keys: L (L + 1) / 2 pairs per window of length L); for a GRU
  3 (d_in h + h^2) per position and layer, an LSTM 4 (...); the output layer d x n_items at every
  target position (training: the full-catalogue softmax) or once per user (evaluation scores);
- the softmax: SOFTMAX_FLOP per element forward (max, subtract, exp, sum, divide) and
  SOFTMAX_BACKWARD_FLOP per element backward, over the attention pairs of every head and over
  the catalogue at every target position;
- training = forward + backward, the backward of a product costing twice its forward (gradients
  of both operands);
- evaluation: what `last_hidden` needs, i.e. every block but the last in full, the last block's
  key/value projections at every position but its query, attention, output projection and
  feed-forward net at the last position only; then one score per item.
Not counted: layer norms, GELU, dropout, embedding look-ups, the optimizer, padding (positions
past a row's length, which the batches partly compute), the ranking's comparisons. So the count
is a lower bound of the work done and the achieved rate a lower bound of the useful rate.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np

SOFTMAX_FLOP = 5
SOFTMAX_BACKWARD_FLOP = 3


@dataclass(frozen=True)
class Shape:
    """The sizes the count depends on (taken from a composed TrainConfig by `shape_of`)."""

    encoder: str  # attention | gru | lstm
    dim: int  # embedding width d
    layers: int
    heads: int = 1
    ffn: int = 0  # feed-forward width f (attention); 0 = dim
    hidden: int = 0  # recurrent width h; 0 = dim


def shape_of(cfg: Any) -> Optional[Shape]:
    """The count's sizes for a TrainConfig; None for encoders the count does not cover."""
    e, m = cfg.encoder, cfg.model
    if e.name == "attention" and getattr(e, "block", "sasrec") == "sasrec":
        return Shape("attention", m.embedding_dim, e.num_layers, e.num_heads, e.ffn_size or m.embedding_dim)
    if e.name in ("gru", "lstm"):
        return Shape(e.name, m.embedding_dim, e.num_layers, hidden=e.hidden_size or m.embedding_dim)
    return None


def _encoder_macs(s: Shape, positions: int, pairs: int) -> dict[str, int]:
    """Forward multiply-adds of the whole encoder over `positions` positions with `pairs` causal
    (query, key) pairs."""
    if s.encoder == "attention":
        f = s.ffn or s.dim
        return {
            "projections": s.layers * positions * 4 * s.dim**2,
            "feed_forward": s.layers * positions * 2 * s.dim * f,
            "attention": s.layers * pairs * 2 * s.dim,
        }
    h, gates = s.hidden or s.dim, 3 if s.encoder == "gru" else 4
    inputs = [s.dim] + [h] * (s.layers - 1)
    return {"recurrent": sum(positions * gates * (d_in * h + h * h) for d_in in inputs)}


def _pairs(lengths: np.ndarray) -> int:
    lengths = np.asarray(lengths, dtype=np.int64)
    return int((lengths * (lengths + 1) // 2).sum())


def training_flop(s: Shape, lengths: np.ndarray, n_items: int) -> dict[str, float]:
    """FLOP of one training epoch over windows of these lengths (one target per position)."""
    positions, pairs = int(np.sum(lengths)), _pairs(lengths)
    out_dim = s.dim if s.encoder == "attention" else (s.hidden or s.dim)
    macs = {**_encoder_macs(s, positions, pairs), "output_layer": positions * out_dim * n_items}
    flop = {key: 3 * 2 * value for key, value in macs.items()}  # forward + twice that backward
    per_element = SOFTMAX_FLOP + SOFTMAX_BACKWARD_FLOP
    attention_pairs = s.layers * s.heads * pairs if s.encoder == "attention" else 0
    flop["softmax"] = per_element * (positions * n_items + attention_pairs)
    flop["total"] = sum(flop.values())
    return flop


def evaluation_flop(s: Shape, lengths: np.ndarray, n_items: int) -> dict[str, float]:
    """FLOP of one full-ranking pass over users with these history lengths (capped at max_len)."""
    users, positions, pairs = len(lengths), int(np.sum(lengths)), _pairs(lengths)
    if s.encoder == "attention":
        f, d = s.ffn or s.dim, s.dim
        full = Shape(s.encoder, d, s.layers - 1, s.heads, f)
        macs = _encoder_macs(full, positions, pairs) if s.layers > 1 else {}
        macs = {
            "projections": macs.get("projections", 0) + positions * 2 * d * d + users * 2 * d * d,
            "feed_forward": macs.get("feed_forward", 0) + users * 2 * d * f,
            "attention": macs.get("attention", 0) + positions * 2 * d,
        }
        softmax = SOFTMAX_FLOP * s.heads * ((s.layers - 1) * pairs + positions)
        out_dim = d
    else:
        macs, softmax, out_dim = _encoder_macs(s, positions, pairs), 0, s.hidden or s.dim
    macs["scores"] = users * out_dim * n_items
    flop = {key: 2 * value for key, value in macs.items()}
    flop["softmax"] = softmax
    flop["total"] = sum(flop.values())
    return flop


def matmul_peak_gflops(threads: int, n: int = 4096, repeats: int = 3) -> float:
    """The best rate of an n x n x n float32 product on `threads` torch threads: the machine's
    practical peak for the products the model runs (theirs are smaller and reach less)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        a, b = torch.randn(n, n), torch.randn(n, n)
        out = torch.empty(n, n)
        torch.matmul(a, b, out=out)  # warm-up: page faults, thread pool
        best = float("inf")
        for _ in range(repeats):
            started = time.perf_counter()
            torch.matmul(a, b, out=out)
            best = min(best, time.perf_counter() - started)
    finally:
        torch.set_num_threads(before)
    return 2 * n**3 / best / 1e9


def run_lengths(cfg: Any) -> tuple[np.ndarray, np.ndarray, int]:
    """Training window lengths, validation history lengths (capped at max_len) and the item
    count of the run `cfg` describes, from our own pipeline (the same windows `fit` trains on)."""
    from seqrec_cli.data import load
    from seqrec_cli.data.batches import training_examples

    splits, _ = load(cfg.dataset)
    data = splits.data
    examples = training_examples(data, splits.train_end, cfg.model.max_len, cfg.trainer.all_windows)
    valid = splits.valid
    history = np.minimum(valid.history_end - data.offsets[valid.users], cfg.model.max_len)
    return np.asarray(examples.lengths), history, int(data.n_items)


def speed_columns(overrides: list[str], metrics: dict[str, Any], cache_dir: Any, peak_gflops: Optional[float]) -> dict:
    """The FLOP columns of one `benchmark.py speed` row: the counts of the run `overrides`
    describes, divided by its measured seconds, beside the measured peak."""
    from peer import compose_ours

    cfg = compose_ours(overrides)
    shape = shape_of(cfg)
    if shape is None:
        return {"train_gflops": None}
    cfg.dataset.cache_dir = str(cache_dir)
    train_lengths, valid_lengths, n_items = run_lengths(cfg)
    if int(train_lengths.sum()) != metrics["train_positions"]:  # the count must describe the run
        raise SystemExit(f"FLOP count: {train_lengths.sum()} positions, the run trained {metrics['train_positions']}")
    train = training_flop(shape, train_lengths, n_items)["total"]
    evaluation = evaluation_flop(shape, valid_lengths, n_items)["total"]
    epoch_s = metrics["train_seconds"] / metrics["epochs_run"]
    eval_s = metrics["valid_eval_seconds"] / metrics["epochs_run"]
    train_rate, eval_rate = train / epoch_s / 1e9, evaluation / eval_s / 1e9

    def share(rate: float) -> Optional[str]:
        return f"{rate / peak_gflops:.0%}" if peak_gflops else None

    return {
        "train_gflop_per_epoch": round(train / 1e9, 2),
        "train_gflops": round(train_rate, 1),
        "train_share_of_peak": share(train_rate),
        "eval_gflop_per_pass": round(evaluation / 1e9, 3),
        "eval_gflops": round(eval_rate, 1),
        "eval_share_of_peak": share(eval_rate),
        "matmul_peak_gflops": round(peak_gflops, 1) if peak_gflops else None,
    }
