"""scripts/flops.py: the FLOP count of a training epoch and an evaluation pass, against hand counts."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
import flops  # noqa: E402


def test_training_count_of_a_tiny_attention_model_by_hand():
    # d = 2, one block, one head, feed-forward 3, windows of 1 and 2 positions, 5 items.
    s = flops.Shape("attention", dim=2, layers=1, heads=1, ffn=3)
    got = flops.training_flop(s, np.array([1, 2]), n_items=5)
    positions, pairs = 1 + 2, 1 + (1 + 2)  # causal pairs: position i sees i + 1 keys
    forward_macs = {
        "projections": positions * (3 * 2 * 2 + 2 * 2),  # q, k, v (3 d^2) and the output (d^2)
        "feed_forward": positions * (2 * 3 + 3 * 2),  # d x f up, f x d down
        "attention": pairs * 2 + pairs * 2,  # QK^T and AV: d per pair each
        "output_layer": positions * 2 * 5,  # d x n_items at every target position
    }
    assert forward_macs == {"projections": 48, "feed_forward": 36, "attention": 16, "output_layer": 30}
    for key, macs in forward_macs.items():
        assert got[key] == 2 * macs * 3, key  # 2 FLOP per MAC; backward = 2 x forward
    assert got["softmax"] == (5 + 3) * (positions * 5 + pairs)  # catalogue per position + attention pairs
    assert got["total"] == 780 + 152


def test_evaluation_count_runs_only_what_the_last_position_needs():
    # Two blocks; users with histories of 1 and 2 items.
    s = flops.Shape("attention", dim=2, layers=2, heads=1, ffn=3)
    got = flops.evaluation_flop(s, np.array([1, 2]), n_items=5)
    users, positions, pairs = 2, 3, 4
    macs = {
        # block 1 in full; block 2: k, v at every position, q and the output at the last only
        "projections": positions * 16 + positions * 2 * 4 + users * 2 * 4,
        "feed_forward": positions * 12 + users * 12,
        "attention": pairs * 4 + positions * 4,  # block 2: one query over its row's keys
        "scores": users * 2 * 5,
    }
    assert macs == {"projections": 88, "feed_forward": 60, "attention": 28, "scores": 20}
    for key, value in macs.items():
        assert got[key] == 2 * value, key
    assert got["softmax"] == 5 * (pairs + positions)
    assert got["total"] == 2 * 196 + 35


def test_gru_count_by_hand():
    s = flops.Shape("gru", dim=2, layers=2, hidden=3)
    got = flops.training_flop(s, np.array([2]), n_items=4)
    # 3 gates x (input x hidden + hidden x hidden) per position: layer 1 input 2, layer 2 input 3
    recurrent = 2 * 3 * (2 * 3 + 3 * 3) + 2 * 3 * (3 * 3 + 3 * 3)
    assert got["recurrent"] == 6 * recurrent and got["output_layer"] == 6 * 2 * 3 * 4
    assert got["softmax"] == 8 * 2 * 4 and got["total"] == 6 * (recurrent + 24) + 64


def test_shape_of_reads_the_composed_config():
    from types import SimpleNamespace as NS

    cfg = NS(
        encoder=NS(name="attention", block="sasrec", num_layers=2, num_heads=1, ffn_size=None),
        model=NS(embedding_dim=64),
    )
    assert flops.shape_of(cfg) == flops.Shape("attention", 64, 2, 1, 64)
    cfg.encoder = NS(name="gru", num_layers=1, hidden_size=None)
    assert flops.shape_of(cfg) == flops.Shape("gru", 64, 1, hidden=64)
    cfg.encoder = NS(name="attention", block="ligr", num_layers=2, num_heads=1, ffn_size=None)
    assert flops.shape_of(cfg) is None  # gated blocks are not counted


def test_peak_is_a_positive_rate():
    assert flops.matmul_peak_gflops(threads=1, n=256, repeats=1) > 0


@pytest.mark.parametrize("encoder", ["attention", "gru"])
def test_output_layer_dominates_a_large_catalogue(encoder):
    s = flops.Shape(encoder, dim=64, layers=2, heads=1, ffn=64)
    got = flops.training_flop(s, np.full(100, 50), n_items=100_000)
    assert got["output_layer"] > 0.9 * got["total"]
