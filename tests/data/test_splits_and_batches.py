"""Data contracts: id order, stable time order with ties, k-core, leave-one-out, windows, cache."""

import numpy as np
import pandas as pd

from seqrec_cli.config.schema import DatasetConfig
from seqrec_cli.data import load, load_interactions
from seqrec_cli.data.batches import gather_windows, training_examples
from seqrec_cli.data.preprocess import build_interactions
from seqrec_cli.data.splits import leave_one_out

from data_support import csv_dataset, events, write_events_csv


def history(inter, u):
    return inter.items[inter.offsets[u] : inter.offsets[u + 1]].tolist()


def test_items_are_numbered_in_numeric_order_of_original_ids_from_one():
    inter, _ = build_interactions(events([(7, 100, 1), (7, 20, 2), (7, 3, 3)]), 1, 1)
    assert inter.item_ids.tolist() == [3, 20, 100]
    assert history(inter, 0) == [3, 2, 1]  # 100 -> 3, 20 -> 2, 3 -> 1


def test_string_ids_are_numbered_in_string_order():
    inter, _ = build_interactions(events([("u", "b10", 1), ("u", "b9", 2), ("u", "a", 3)]), 1, 1)
    assert inter.item_ids.tolist() == ["a", "b10", "b9"]


def test_file_order_does_not_change_numbering():
    rows = [(1, 5, 1), (1, 9, 2), (2, 9, 1), (2, 7, 2)]
    a, _ = build_interactions(events(rows), 1, 1)
    b, _ = build_interactions(events(rows[::-1]), 1, 1)
    assert a.item_ids.tolist() == b.item_ids.tolist()
    assert [history(a, u) for u in range(2)] == [history(b, u) for u in range(2)]


def test_time_order_keeps_input_order_for_ties():
    rows = [(1, 10, 5), (1, 11, 3), (1, 12, 5), (1, 13, 3), (1, 14, 4)]
    inter, _ = build_interactions(events(rows), 1, 1)
    # times 3,3,4,5,5 ; ties in file order: 11 before 13, 10 before 12
    assert [inter.item_ids[i - 1] for i in history(inter, 0)] == [11, 13, 14, 10, 12]


def test_kcore_iterates_to_a_fixed_point():
    # item 3 has one interaction; removing it drops user 2 under 2 events, which drops item 2's count
    users = [1, 1, 2, 2, 3, 3, 3]
    items = [1, 2, 2, 3, 1, 2, 1]
    inter, summary = build_interactions(events([(u, i, n) for n, (u, i) in enumerate(zip(users, items))]), 2, 2)
    assert inter.user_ids.tolist() == [1, 3] and sorted(inter.item_ids.tolist()) == [1, 2]
    assert len(inter.items) == 5 and summary["filtered"]["kcore_rounds"] >= 2


def test_leave_one_out_boundaries_and_short_users():
    rows = [(1, i, i) for i in range(1, 6)] + [(2, 1, 1), (2, 2, 2)]
    inter, _ = build_interactions(events(rows), 1, 1)
    s = leave_one_out(inter)
    assert s.valid.users.tolist() == [0] and s.test.users.tolist() == [0]
    assert s.valid.targets.tolist() == [4] and s.test.targets.tolist() == [5]
    assert inter.items[inter.offsets[0] : s.valid.history_end[0]].tolist() == [1, 2, 3]
    assert inter.items[inter.offsets[0] : s.test.history_end[0]].tolist() == [1, 2, 3, 4]
    assert s.train_end.tolist() == [3, 7]  # user 2 (two events) trains on everything
    assert s.n_train_only_users == 1
    assert s.seen_item_counts("valid").tolist() == [0, 2, 2, 1, 0, 0]
    assert s.seen_item_counts("test").tolist() == [0, 2, 2, 1, 1, 0]


def test_gather_windows_keeps_the_last_items_right_padded():
    items = np.arange(1, 11)
    m, n = gather_windows(items, np.array([0, 5]), np.array([4, 6]), 3)
    assert m.tolist() == [[2, 3, 4], [6, 0, 0]]
    assert n.tolist() == [3, 1]


def test_training_windows_cover_every_transition_once():
    rows = [(1, i, i) for i in range(1, 13)]  # 12 events: 10 train, then valid, test
    inter, _ = build_interactions(events(rows), 1, 1)
    s = leave_one_out(inter)
    ex = training_examples(inter, s.train_end, max_len=4, all_windows=True)
    pairs = sorted((int(a), int(b)) for x, y in zip(ex.inputs, ex.targets) for a, b in zip(x, y) if b)
    assert pairs == [(i, i + 1) for i in range(1, 10)]
    last_only = training_examples(inter, s.train_end, max_len=4, all_windows=False)
    assert last_only.inputs.tolist() == [[6, 7, 8, 9]] and last_only.targets.tolist() == [[7, 8, 9, 10]]


def test_cache_is_reused_and_invalidated(tmp_path):
    path = tmp_path / "d.csv"
    write_events_csv(path, [(1, i, i) for i in range(1, 6)] + [(2, i, i) for i in range(2, 6)])
    cfg = csv_dataset(path, cache_dir=tmp_path / "cache")
    _, first = load_interactions(cfg)
    _, second = load_interactions(cfg)
    assert not first["cache"]["hit"] and second["cache"]["hit"]
    # a different preprocessing setting never reuses that cache
    _, other = load_interactions(csv_dataset(path, cache_dir=tmp_path / "cache", min_item_count=2))
    assert not other["cache"]["hit"]
    # neither does a changed file
    write_events_csv(path, [(1, i, i) for i in range(1, 4)])
    inter, changed = load_interactions(cfg)
    assert not changed["cache"]["hit"] and inter.n_interactions == 3


def test_cached_and_fresh_loads_are_identical(tmp_path):
    path = tmp_path / "d.csv"
    write_events_csv(path, [(u, (u * 7 + i) % 11, i // 2) for u in range(1, 9) for i in range(6)])
    cfg = csv_dataset(path, cache_dir=tmp_path / "cache")
    a, _ = load(cfg)
    b, _ = load(cfg)
    for name in ("offsets", "items", "user_ids", "item_ids"):
        assert np.array_equal(getattr(a.data, name), getattr(b.data, name))
    assert np.array_equal(a.test.targets, b.test.targets)


def test_bundled_movielens_summary():
    splits, summary = load(DatasetConfig(use_cache=False))
    assert summary["raw"] == {"users": 610, "items": 9724, "interactions": 100836}
    assert summary["users"] == splits.data.n_users and summary["items"] == splits.data.n_items
    assert summary["split"]["valid_users"] == summary["split"]["test_users"] == 610


def test_ml100k_tie_rule_picks_the_later_row_as_test_target(shared_data):
    raw = pd.read_csv(shared_data / "ml-100k" / "u.data", sep="\t", names=["user", "item", "r", "time"])
    inter, _ = build_interactions(raw[["user", "item", "time"]], 1, 1)
    s = leave_one_out(inter)
    assert inter.n_users == 943 and inter.n_items == 1682 and inter.n_interactions == 100000
    # For each user the test target must be the last row (in file order) among the rows at its
    # latest timestamp.
    last_time = raw.groupby("user")["time"].transform("max")
    expected = raw[raw["time"] == last_time].groupby("user").tail(1).set_index("user")["item"]
    got = inter.item_ids[s.test.targets - 1]
    assert (got == expected.loc[inter.user_ids].to_numpy()).all()
