"""Ranking metrics against values computed by hand (docs/ARCHITECTURE.md, 'Ranking metrics')."""

import math

import numpy as np
import pytest
import torch

from seqrec_cli.evaluation.metrics import ranking_metrics, target_ranks


def ranks(scores, targets, history=None):
    s = torch.tensor(scores, dtype=torch.float32)
    t = torch.tensor(targets)
    if history is None:
        return target_ranks(s, t).tolist()
    rows = torch.tensor([r for r, _ in history])
    cols = torch.tensor([c for _, c in history])
    return target_ranks(s, t, rows, cols).tolist()


def test_rank_counts_strictly_higher_items():
    # target column 2 scores 0.5; columns 0 and 3 score higher
    assert ranks([[0.9, 0.1, 0.5, 0.7]], [2]) == [2]
    assert ranks([[0.9, 0.1, 0.5, 0.7]], [0]) == [0]


def test_ties_count_only_items_with_a_smaller_index():
    # all equal: the target's rank is its index, whatever the values
    assert ranks([[1.0, 1.0, 1.0, 1.0]], [0]) == [0]
    assert ranks([[1.0, 1.0, 1.0, 1.0]], [3]) == [3]
    # one higher + one tied before (col 1) ; col 3 tied after does not count
    assert ranks([[2.0, 1.0, 1.0, 1.0]], [2]) == [2]


def test_history_items_are_masked_but_never_the_target():
    scores = [[0.9, 0.8, 0.5, 0.7]]
    assert ranks(scores, [2], history=[(0, 0), (0, 3)]) == [1]
    # the target itself in the history (a repeat) stays rankable
    assert ranks(scores, [2], history=[(0, 2), (0, 0)]) == [2]


def test_metric_values_by_hand():
    m = ranking_metrics(np.array([0, 1, 4, 10, 25]), ks=[1, 5, 10])
    assert m["hr@1"] == pytest.approx(1 / 5)
    assert m["hr@5"] == pytest.approx(3 / 5)
    assert m["hr@10"] == pytest.approx(3 / 5)  # rank 10 is the 11th place: outside the top 10
    assert m["ndcg@1"] == pytest.approx(1 / 5)
    assert m["ndcg@5"] == pytest.approx((1 + 1 / math.log2(3) + 1 / math.log2(6)) / 5)
    assert m["mrr"] == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 11 + 1 / 26) / 5)


def test_rows_are_independent():
    got = ranks([[0.1, 0.2, 0.3], [0.3, 0.2, 0.1]], [0, 0])
    assert got == [2, 0]
