"""Evaluation path: batch-size independence, popularity baseline, masking of the history."""

import numpy as np
import pytest
import torch

from seqrec_cli.config.schema import EncoderConfig, ModelConfig
from seqrec_cli.data.batches import has_training_rows, side_inputs
from seqrec_cli.models import at_least_rows, build
from seqrec_cli.evaluation import ranking

from data_support import synthetic_splits

KS = [1, 5, 10, 20]


@pytest.fixture(scope="module")
def splits():
    return synthetic_splits(n_users=300, n_items=120, mean_length=15)


@pytest.fixture(scope="module")
def few_users():
    """Batch-independence checks evaluate every row at batch size 1, one padded forward pass each:
    60 users keep them quick and still give odd batch remainders and full MIN_ROWS chunks."""
    return synthetic_splits(n_users=60, n_items=120, mean_length=15)


@pytest.mark.parametrize(
    "name, gaps, users",
    [
        ("attention", False, False),
        ("gru", False, False),
        ("lstm", False, False),
        ("gru_attention", False, False),
        ("attention", True, True),
        ("gru", True, True),
    ],
)
def test_metrics_do_not_depend_on_eval_batch_size(few_users, name, gaps, users):
    splits = few_users
    torch.manual_seed(0)
    side = side_inputs(splits.data, splits.train_end, gaps, users)
    n_rows = int(has_training_rows(splits.data, splits.train_end).sum()) + 1
    model = build(
        ModelConfig(embedding_dim=16, max_len=10, user_embedding=users),
        EncoderConfig(name=name, time_features="gap" if gaps else "none"),
        splits.data.n_items,
        n_rows,
    )
    if users:  # non-zero user vectors, so that batching them wrongly would show
        torch.nn.init.normal_(model.user_embedding.weight, std=0.5)
    inputs = ranking.prepare(splits, splits.test, 10, True, torch.device("cpu"), side)
    results = [ranking.evaluate_model(model, inputs, bs, KS, amp=False) for bs in (1, 7, 4096)]
    assert results[0] == results[1] == results[2]


@pytest.mark.parametrize(
    "name, gaps, users",
    [
        ("attention", False, False),
        ("gru", False, False),
        ("lstm", False, False),
        ("gru_attention", False, False),
        ("attention", True, True),
    ],
)
def test_every_row_gets_the_same_numbers_in_any_batch_or_score_chunk(few_users, name, gaps, users, monkeypatch):
    """Bit for bit, not just equal metrics: BLAS rounds products of a few rows differently (on this
    project's CPUs 1-3 rows on one thread, 1-11 on two), so without the model's padding to
    MIN_ROWS a row evaluated in a batch of 1 or 5 gets other hidden states than in a batch of
    4,096; and scores chunked by rows (SCORE_CHUNK_BYTES) must not change a rank either."""
    splits = few_users
    torch.manual_seed(0)
    side = side_inputs(splits.data, splits.train_end, gaps, users)
    n_rows = int(has_training_rows(splits.data, splits.train_end).sum()) + 1
    model = build(
        ModelConfig(embedding_dim=64, max_len=10, user_embedding=users),
        EncoderConfig(name=name, time_features="gap" if gaps else "none"),
        splits.data.n_items,
        n_rows,
    ).eval()
    inputs = ranking.prepare(splits, splits.test, 10, True, torch.device("cpu"), side)
    scorer = ranking.model_scorer(model, amp=False)

    def queries(batch_size):
        return torch.cat([scorer.encode(inputs, rows) for rows in ranking.batch_slices(inputs.widths, batch_size)])

    reference = queries(4096)
    for batch_size in (1, 5):
        assert torch.equal(queries(batch_size), reference), batch_size
    ranks = [ranking.rank_all(inputs, scorer, bs) for bs in (1, 5, 4096)]
    monkeypatch.setattr(ranking, "SCORE_CHUNK_BYTES", 1)  # chunks of MIN_ROWS rows, and a short last one
    assert ranking.score_chunk_rows(splits.data.n_items, torch.device("cpu"), 4096) == ranking.MIN_ROWS
    ranks.append(ranking.rank_all(inputs, scorer, 4096))
    assert all((r == ranks[0]).all() for r in ranks[1:])


def test_short_batches_are_padded_with_their_last_row():
    x = torch.arange(6).view(3, 2)
    padded = at_least_rows(x, 5)
    assert padded.tolist() == [[0, 1], [2, 3], [4, 5], [4, 5], [4, 5]]
    assert at_least_rows(x, 3) is x
    assert ranking.score_chunk_rows(12_101, torch.device("cpu"), 1024) == 4 * 2**20 // (4 * 12_101)
    assert ranking.score_chunk_rows(500, torch.device("cpu"), 1024) == 1024  # small catalogue: the whole batch


def test_popularity_baseline_by_hand(splits):
    inputs = ranking.prepare(splits, splits.valid, 10, True, torch.device("cpu"))
    counts = splits.seen_item_counts("valid")
    got = ranking.rank_all(inputs, ranking.popularity_scorer(counts, torch.device("cpu")), 64)
    data = splits.data
    for row in range(0, len(splits.valid), 37):  # spot-check rows against a direct computation
        u, end, target = splits.valid.users[row], splits.valid.history_end[row], splits.valid.targets[row]
        seen = set(data.items[data.offsets[u] : end].tolist()) - {target}
        candidates = [i for i in range(1, data.n_items + 1) if i not in seen]
        rank = sum(1 for i in candidates if counts[i] > counts[target] or (counts[i] == counts[target] and i < target))
        assert got[row] == rank


def test_unmasked_evaluation_ranks_history_items_too(splits):
    masked = ranking.prepare(splits, splits.valid, 10, True, torch.device("cpu"))
    unmasked = ranking.prepare(splits, splits.valid, 10, False, torch.device("cpu"))
    scorer = ranking.popularity_scorer(splits.seen_item_counts("valid"), torch.device("cpu"))
    a = ranking.rank_all(masked, scorer, 50)
    b = ranking.rank_all(unmasked, scorer, 50)
    assert (a <= b).all() and (a < b).any()
    assert len(unmasked.mask_items) == 0 and len(masked.mask_items) > 0


def reference_ranks(model, splits, split, max_len):
    """The plain way: full-width forward of every row at once, then a direct count per row."""
    from seqrec_cli.data.batches import history_rows

    items, lengths = history_rows(splits.data, split.users, split.history_end, max_len)
    items, lengths = torch.as_tensor(items), torch.as_tensor(lengths)
    with torch.no_grad():
        hidden = model(items, lengths)[torch.arange(len(items)), lengths - 1]
        scores = model.scores(hidden).numpy()
    data, ranks = splits.data, []
    for row, target in enumerate(split.targets):
        u, end = split.users[row], split.history_end[row]
        seen = set(data.items[data.offsets[u] : end].tolist()) - {target}
        s, t = scores[row], scores[row, target - 1]
        keep = np.array([i not in seen for i in range(1, data.n_items + 1)])
        ids = np.arange(1, data.n_items + 1)
        ranks.append(int(np.sum(keep & ((s > t) | ((s == t) & (ids < target))))))
    return np.array(ranks)


@pytest.mark.parametrize("name", ["attention", "gru"])
def test_grouped_widths_and_last_position_shortcut_give_the_reference_ranks(splits, name):
    """Same numbers before and after the evaluation speed-ups: rows grouped by width, the final
    block run on the last position only, and the float-buffer rank counting give, row by row,
    the ranks of a plain full-width forward pass and a direct count."""
    torch.manual_seed(0)
    model = build(ModelConfig(embedding_dim=16, max_len=10), EncoderConfig(name=name), splits.data.n_items).eval()
    inputs = ranking.prepare(splits, splits.test, 10, True, torch.device("cpu"))
    assert len(set(inputs.widths.tolist())) > 1  # the synthetic lengths really span several widths
    got = ranking.rank_all(inputs, ranking.model_scorer(model, amp=False), 64)
    assert (got == reference_ranks(model, splits, splits.test, 10)).all()


def test_input_widths_and_batches_never_mix_widths():
    assert ranking.input_widths(np.array([1, 8, 9, 16, 17, 49, 50, 80]), 50).tolist() == [
        8,
        8,
        16,
        16,
        24,
        50,
        50,
        50,
    ]
    widths = np.array([8, 8, 8, 16, 24, 24, 24, 24, 24])
    got = ranking.batch_slices(widths, 3)
    assert [(s.start, s.stop) for s in got] == [(0, 3), (3, 4), (4, 7), (7, 9)]
    assert ranking.batch_slices(np.zeros(0, dtype=np.int64), 3) == []
