"""Preprocessing steps (min rating, de-duplication, history cap, k-core), the temporal split, cache keys."""

import numpy as np
import pandas as pd
import pytest

from seqrec_cli.config.schema import SplitConfig
from seqrec_cli.data import load, load_interactions
from seqrec_cli.data.preprocess import build_interactions, time_order
from seqrec_cli.data.splits import cut_at_quantile, leave_one_out, split, temporal
from seqrec_cli.errors import UserError
from data_support import csv_dataset, events, interactions, write_events_csv


def histories(inter):
    """{original user: [original items in order]}"""
    return {
        inter.user_ids[u]: [inter.item_ids[i - 1] for i in inter.items[inter.offsets[u] : inter.offsets[u + 1]]]
        for u in range(inter.n_users)
    }


ROWS = [(1, 10, 5), (1, 11, 1), (1, 10, 2), (1, 12, 3), (1, 10, 2), (2, 11, 1), (2, 11, 1)]


@pytest.mark.parametrize(
    "dedup, expected",
    [
        ("all", {1: [11, 10, 10, 12, 10], 2: [11, 11]}),
        ("first", {1: [11, 10, 12], 2: [11]}),  # user 1's item 10 at time 2 (first of the tied pair)
        ("last", {1: [11, 12, 10], 2: [11]}),  # the time-5 event survives
    ],
)
def test_dedup_keeps_first_or_last_in_time_order(dedup, expected):
    inter, summary = build_interactions(events(ROWS), 1, 1, dedup=dedup)
    assert histories(inter) == expected
    if dedup != "all":
        assert summary["steps"][0] == {"step": "dedup", "setting": dedup, "users": 2, "items": 3, "interactions": 4}


def test_max_history_keeps_the_most_recent_events_before_the_kcore():
    rows = [(1, i, i) for i in range(1, 7)] + [(2, 1, 1), (2, 6, 2)]
    inter, summary = build_interactions(events(rows), 1, 2, max_history=3)
    # user 1 keeps items 4, 5, 6; then items seen once (4, 5) fall to the k-core; item 1 too (user 2 only)
    assert histories(inter) == {1: [6], 2: [6]}
    assert [s["step"] for s in summary["steps"]] == ["max_history", "kcore"]
    assert summary["steps"][0]["interactions"] == 5


def test_steps_record_counts_and_an_empty_step_names_its_filter():
    rows = [(1, 1, 1, 5.0), (1, 2, 2, 3.0), (2, 1, 1, 4.0), (2, 3, 2, 2.0)]
    _, summary = build_interactions(events(rows, rating=True), 1, 1, min_rating=4, dedup="first")
    assert summary["raw"] == {"users": 2, "items": 3, "interactions": 4}
    assert [(s["step"], s["interactions"]) for s in summary["steps"]] == [("min_rating", 2), ("dedup", 2), ("kcore", 2)]
    with pytest.raises(UserError, match=r"after dataset.min_rating=6 \(before it: 2 users, 3 items, 4 interactions\)"):
        build_interactions(events(rows, rating=True), 1, 1, min_rating=6)
    with pytest.raises(UserError, match=r"after the k-core filter \(dataset.min_user_count=3"):
        build_interactions(events(rows, rating=True), 3, 1)


def test_time_order_with_dates_in_nanoseconds_and_float_times():
    users = np.array([1, 0, 1, 0])
    ns = np.array([1_700_000_000_000_000_000, 5, 3, 5], dtype=np.int64)  # span too wide for the key
    assert time_order(users, ns).tolist() == [1, 3, 2, 0]
    assert time_order(users, np.array([0.5, 0.25, 0.1, 0.25])).tolist() == [1, 3, 2, 0]


def test_ids_stay_in_ascending_original_order_after_filtering():
    rows = [(5, 30, 1), (5, 20, 2), (3, 10, 1), (3, 30, 2), (4, 99, 1)]
    inter, _ = build_interactions(events(rows), 1, 2)
    assert inter.user_ids.tolist() == [3, 5] and inter.item_ids.tolist() == [30]


# --------------------------------------------------------------------------- temporal split


def test_temporal_split_cuts_every_history_at_the_same_instants():
    rows = (
        [(1, 1, 10), (1, 2, 20), (1, 3, 55), (1, 4, 60), (1, 5, 95), (1, 6, 99)]  # evaluated in both
        + [(2, 7, 70), (2, 8, 96)]  # cold at the valid cut, evaluated at test
        + [(3, 9, 10), (3, 1, 20)]  # training only
    )
    inter = interactions(rows)
    s = temporal(inter, valid_cut=50, test_cut=90)
    # training never holds an event at or after the validation cut
    for u in range(inter.n_users):
        assert (inter.times[inter.offsets[u] : s.train_end[u]] < 50).all()
    assert s.valid.users.tolist() == [0] and s.valid.targets.tolist() == [3]
    assert inter.items[inter.offsets[0] : s.valid.history_end[0]].tolist() == [1, 2]
    assert s.test.users.tolist() == [0, 1] and s.test.targets.tolist() == [5, 8]
    assert inter.items[inter.offsets[0] : s.test.history_end[0]].tolist() == [1, 2, 3, 4]
    assert inter.items[inter.offsets[1] : s.test.history_end[1]].tolist() == [7]
    assert s.n_train_only_users == 1
    summary = s.summary()
    assert summary["kind"] == "temporal" and summary["cold_valid_users"] == 1
    # between the cuts: user 1's second event and cold user 2's event are not validation targets
    assert summary["non_target_events_in_valid_period"] == 2 and summary["non_target_events_in_test_period"] == 1
    # popularity for test sees everything before the test cut, for every user
    assert s.seen_item_counts("test").tolist() == [0, 2, 1, 1, 1, 0, 0, 1, 0, 1]
    assert s.seen_item_counts("valid").tolist() == [0, 2, 1, 0, 0, 0, 0, 0, 0, 1]


def test_temporal_cuts_from_quantiles_and_errors():
    inter = interactions([(u, i, 10 * i + u) for u in range(1, 5) for i in range(1, 11)])
    assert cut_at_quantile(inter.times, 0.5) == np.sort(inter.times)[20]
    s = split(inter, SplitConfig(kind="temporal", valid_quantile=0.5, test_quantile=0.8))
    assert s.details["valid_cut"] < s.details["test_cut"] and len(s.valid) == 4 and len(s.test) == 4
    assert split(inter, SplitConfig()).kind == "leave_one_out"
    no_times = build_interactions(pd.DataFrame({"user": [1, 1], "item": [1, 2]}), 1, 1)[0]
    with pytest.raises(UserError, match="needs timestamps"):
        split(no_times, SplitConfig(kind="temporal"))
    with pytest.raises(UserError, match="not before its test cut"):
        split(inter, SplitConfig(kind="temporal", valid_time=50, test_time=50))


def test_leave_one_out_test_popularity_is_unchanged():
    inter = interactions([(1, i, i) for i in range(1, 6)] + [(2, 1, 1), (2, 2, 2)])
    assert leave_one_out(inter).seen_item_counts("test").tolist() == [0, 2, 2, 1, 1, 0]


# ------------------------------------------------------------------------ cache and load


def test_cache_key_holds_every_preprocessing_setting_but_not_the_split(tmp_path):
    write_events_csv(tmp_path / "d.csv", [(u, i % 4, i) for u in range(1, 4) for i in range(8)])
    base = csv_dataset(tmp_path / "d.csv", cache_dir=tmp_path / "cache")
    assert not load_interactions(base)[1]["cache"]["hit"]
    for change in (dict(dedup="first"), dict(max_history=3), dict(id_type="str"), dict(min_user_count=2)):
        assert not load_interactions(csv_dataset(tmp_path / "d.csv", cache_dir=tmp_path / "cache", **change))[1][
            "cache"
        ]["hit"], change
    other_split = csv_dataset(tmp_path / "d.csv", cache_dir=tmp_path / "cache", split=SplitConfig(kind="temporal"))
    splits, summary = load(other_split)
    assert summary["cache"]["hit"] and summary["split"]["kind"] == "temporal"


def test_single_user_and_unwritable_cache_are_user_errors(tmp_path):
    write_events_csv(tmp_path / "one.csv", [(1, i, i) for i in range(6)])
    with pytest.raises(UserError, match="Only one user"):
        load(csv_dataset(tmp_path / "one.csv", cache_dir=tmp_path / "cache"))
    (tmp_path / "afile").write_text("")
    write_events_csv(tmp_path / "d.csv", [(u, i, i) for u in range(3) for i in range(4)])
    with pytest.raises(UserError, match="Cannot write the data cache"):
        load(csv_dataset(tmp_path / "d.csv", cache_dir=tmp_path / "afile" / "cache"))
