"""The item hold-out split, warm / cold metrics, the feature-only baseline and the
beyond-accuracy metrics, each against a straightforward computation."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from seqrec_cli.config.schema import SplitConfig
from seqrec_cli.data.cold_items import held_out_items
from seqrec_cli.data.preprocess import Interactions
from seqrec_cli.data.splits import leave_one_out, split
from seqrec_cli.evaluation import cold_start, ranking
from feature_support import catalogue


def interactions(seed: int = 0, n_users: int = 40, n_items: int = 25) -> Interactions:
    rng = np.random.default_rng(seed)
    lengths = rng.integers(1, 12, size=n_users)
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    items = rng.integers(1, n_items + 1, size=offsets[-1]).astype(np.int32)
    return Interactions(offsets, items, None, np.arange(n_users), np.arange(100, 100 + n_items))


def test_hold_out_keeps_targets_and_never_trains_on_held_out_items():
    data = interactions()
    cfg = SplitConfig(cold_items=0.2, cold_seed=3)
    splits = split(data, cfg)
    cold = held_out_items(data.n_items, 0.2, 3)
    assert cold.sum() == 5 and np.array_equal(cold, held_out_items(data.n_items, 0.2, 3))
    assert splits.seen_item_counts("valid")[cold].sum() == 0  # no held-out event is trained on
    plain = leave_one_out(data)
    by_user = dict(zip(plain.test.users.tolist(), plain.test.targets.tolist()))
    for u, target in zip(splits.test.users.tolist(), splits.test.targets.tolist()):
        assert by_user[u] == target  # evaluation targets stay leave-one-out
        original = data.items[data.offsets[u] : data.offsets[u + 1] - 2]
        kept = splits.data.items[splits.data.offsets[u] : splits.data.offsets[u + 1] - 2]
        assert kept.tolist() == [i for i in original.tolist() if not cold[i]]
    for u in set(range(data.n_users)) - set(splits.test.users.tolist()):
        history = splits.data.items[splits.data.offsets[u] : splits.data.offsets[u + 1]]
        assert not cold[history].any()  # train-only users keep no held-out event
    assert splits.details["cold_items"] == 5


def test_group_metrics_and_standard_errors():
    ranks = np.array([0, 3, 12, 1, 50, 9])
    warm = np.array([True, True, False, True, False, True])
    groups = cold_start.group_metrics(ranks, warm, [10])
    for name, rows in (("warm", warm), ("cold", ~warm)):
        r = ranks[rows]
        hits = [1.0 if x < 10 else 0.0 for x in r]
        gains = [1 / math.log2(x + 2) if x < 10 else 0.0 for x in r]
        assert groups[name]["count"] == len(r)
        assert groups[name]["hr@10"] == pytest.approx(sum(hits) / len(r))
        assert groups[name]["ndcg@10"] == pytest.approx(sum(gains) / len(r))
        mean = sum(gains) / len(r)
        sd = math.sqrt(sum((g - mean) ** 2 for g in gains) / (len(r) - 1))
        assert groups[name]["ndcg@10_se"] == pytest.approx(sd / math.sqrt(len(r)))


def test_beyond_accuracy_against_plain_loops():
    rng = np.random.default_rng(1)
    n_items, k = 30, 4
    top = np.stack([rng.choice(np.arange(1, n_items + 1), size=k, replace=False) for _ in range(7)])
    counts = np.concatenate([[0], rng.integers(0, 20, size=n_items)])
    matrix = cold_start.feature_matrix(catalogue(n_items))
    got = cold_start.beyond_accuracy(top, counts, [k], matrix)
    total = counts.sum()
    lists = top.tolist()
    assert got[f"coverage@{k}"] == pytest.approx(len({i for row in lists for i in row}) / n_items)
    info = [-math.log2((counts[i] + 1) / (total + n_items)) for row in lists for i in row]
    assert got[f"novelty@{k}"] == pytest.approx(sum(info) / len(info))
    assert got[f"avg_popularity@{k}"] == pytest.approx(sum(counts[i] for row in lists for i in row) / (7 * k))

    def cosine(a: int, b: int) -> float:
        x, y = matrix[a].astype(np.float64), matrix[b].astype(np.float64)
        return float(x @ y / (np.linalg.norm(x) * np.linalg.norm(y)))

    ild = [1 - np.mean([cosine(a, b) for a, b in itertools.combinations(row, 2)]) for row in lists]
    assert got[f"diversity@{k}"] == pytest.approx(float(np.mean(ild)), rel=1e-5)


def test_feature_baseline_scores_are_cosine_to_the_mean_history_row():
    data = interactions(n_items=30)
    splits = leave_one_out(data)
    inputs = ranking.prepare(splits, splits.test, 8, True, torch.device("cpu"))
    matrix = cold_start.feature_matrix(catalogue(30))
    scorer = cold_start.feature_scorer(matrix, torch.device("cpu"))
    rows = slice(0, 3)
    queries = scorer.encode(inputs, rows)
    scores = scorer.score(queries, torch.empty(3, 30))
    for r in range(3):
        history = inputs.items[r, : int(inputs.lengths[r])].numpy()
        profile = matrix[history].mean(0)
        expected = matrix[1:] @ (profile / np.linalg.norm(profile))
        np.testing.assert_allclose(scores[r].numpy(), expected, rtol=1e-5, atol=1e-6)


def test_top_lists_from_ranking_respect_the_mask():
    data = interactions(n_items=30)
    splits = leave_one_out(data)
    inputs = ranking.prepare(splits, splits.test, 8, True, torch.device("cpu"))
    counts = splits.seen_item_counts("test")
    top = np.zeros((len(inputs), 5), dtype=np.int64)
    ranks = ranking.rank_all(inputs, ranking.popularity_scorer(counts, torch.device("cpu")), 7, top)
    assert np.array_equal(ranks, ranking.rank_all(inputs, ranking.popularity_scorer(counts, torch.device("cpu")), 7))
    for row, (u, end, target) in enumerate(zip(splits.test.users, splits.test.history_end, splits.test.targets)):
        seen = set(data.items[data.offsets[u] : end].tolist()) - {int(target)}
        assert not seen & set(top[row].tolist())
        assert sorted(counts[top[row]].tolist(), reverse=True) == counts[top[row]].tolist()
