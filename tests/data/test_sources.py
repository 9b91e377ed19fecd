"""Nothing lost, nothing mislabelled in the data layer (issue #15) and time windows (issue #20).

Each test writes a real file and goes through the same `seqrec_cli.data` calls as `seqrec-train`:
ids of any size stay exact and distinct, a replaced file is never read from the old cache, a line
with extra fields is refused or counted, dates that read two ways are refused, and a time window
keeps exactly the events within its (inclusive) bounds.
"""

import gzip
import json
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli, single_run_dir
from seqrec_cli.config.checks import validate_dataset
from seqrec_cli.config.schema import DatasetConfig
from seqrec_cli.data import load, load_interactions
from seqrec_cli.data.sources import read_events
from seqrec_cli.errors import UserError
from data_support import csv_dataset

# 19-digit ids above 2**53: float64 has no room for their last digits (they merged into one).
SNOWFLAKES = [1234567890123456000 + 7 * i for i in range(40)]


def sequences_file(path, items, users=30, length=8):
    path.write_text(
        "".join(
            f"{u} " + " ".join(str(items[(u * 3 + j) % len(items)]) for j in range(length)) + "\n" for u in range(users)
        )
    )
    return path


def csv_file(path, items, users=(1, 2)):
    path.write_text(
        "user_id,item_id,timestamp\n" + "".join(f"{u},{item},{t}\n" for t, item in enumerate(items) for u in users)
    )
    return path


# ---------------------------------------------------------------------------------- large ids


def test_forty_19_digit_ids_stay_forty_items_through_load(tmp_path):
    splits, summary = load(
        csv_dataset(sequences_file(tmp_path / "s.txt", SNOWFLAKES), source="sequences", time_col=None)
    )
    assert summary["items"] == 40 and splits.data.n_items == 40
    assert splits.data.item_ids.tolist() == sorted(SNOWFLAKES)


def test_pairs_keep_19_and_21_digit_ids_apart(tmp_path):
    items = SNOWFLAKES[:20] + [2**64 + 7 * i for i in range(20)]
    path = tmp_path / "p.txt"
    path.write_text("".join(f"{u} {items[(2 * u + j) % 40]}\n" for u in range(20) for j in range(6)))
    inter, _ = load_interactions(csv_dataset(path, source="pairs", time_col=None))
    assert inter.n_items == 40 and inter.item_ids.tolist() == [str(v) for v in sorted(items)]


@pytest.mark.parametrize("base", [2**63, 2**64, 10**30], ids=["uint64", "above-2^64", "30-digits"])
def test_ids_beyond_int64_stay_exact_text_in_numeric_order(tmp_path, base):
    items = [base + 3 * i for i in range(40)]
    inter, _ = load_interactions(csv_dataset(csv_file(tmp_path / "d.csv", items)))
    assert inter.n_items == 40
    assert inter.item_ids.tolist() == [str(v) for v in sorted(items)]  # never wrapped to negative ints


def test_big_integer_ids_are_ordered_numerically_not_as_text(tmp_path):
    items = [10**20, 5, 9 * 10**19, 2**64 + 1, -7]
    inter, _ = load_interactions(csv_dataset(csv_file(tmp_path / "d.csv", items)))
    assert inter.item_ids.tolist() == [
        "-7",
        "5",
        "18446744073709551617",
        "90000000000000000000",
        "100000000000000000000",
    ]


def test_big_ids_in_every_reader(tmp_path):
    big = [2**64 + i for i in range(6)]
    atomic = tmp_path / "a.inter"
    atomic.write_text(
        "user_id:token\titem_id:token\ttimestamp:float\n"
        + "".join(f"{2**70 + u}\t{item}\t{t}\n" for t, item in enumerate(big) for u in range(2))
    )
    inter, _ = load_interactions(csv_dataset(atomic, source="atomic"))
    assert inter.user_ids.tolist() == [str(2**70), str(2**70 + 1)] and inter.item_ids.tolist() == [str(v) for v in big]

    release = tmp_path / "ml-100k"
    release.mkdir()
    (release / "u.data").write_text(
        "".join(f"{SNOWFLAKES[u]}\t{i + 1}\t4\t{100 + i}\n" for u in range(3) for i in range(4))
    )
    inter, _ = load_interactions(
        DatasetConfig(
            name="ml-100k", source="movielens", path=str(release), min_user_count=1, min_item_count=1, use_cache=False
        )
    )
    assert inter.user_ids.tolist() == SNOWFLAKES[:3]

    pytest.importorskip("pyarrow")
    table = tmp_path / "d.parquet"
    pd.DataFrame(
        {
            "user_id": np.array([1, 2, 1], dtype=np.uint64),
            "item_id": np.array([2**64 - 1, 2**63, 7], dtype=np.uint64),
            "timestamp": [1, 2, 3],
        }
    ).to_parquet(table)
    inter, _ = load_interactions(csv_dataset(table))
    assert inter.item_ids.tolist() == ["7", str(2**63), str(2**64 - 1)]


def test_big_ids_survive_the_cache(tmp_path):
    items = [2**64 + i for i in range(10)]
    settings = csv_dataset(csv_file(tmp_path / "d.csv", items), use_cache=True, cache_dir=str(tmp_path / "cache"))
    fresh, first = load_interactions(settings)
    cached, second = load_interactions(settings)
    assert not first["cache"]["hit"] and second["cache"]["hit"]
    assert cached.item_ids.tolist() == fresh.item_ids.tolist() == [str(v) for v in items]


def test_ids_written_as_floats_are_still_whole_numbers_and_fractions_are_plain_in_messages(tmp_path):
    (tmp_path / "d.csv").write_text("user_id,item_id,timestamp\n1,2.0,1\n1,1e1,2\n")
    assert read_events(csv_dataset(tmp_path / "d.csv"))["item"].tolist() == [2, 10]
    (tmp_path / "f.csv").write_text("user_id,item_id,timestamp\n1,32.5,1\n")
    with pytest.raises(UserError) as err:
        read_events(csv_dataset(tmp_path / "f.csv"))
    assert "32.5" in str(err.value) and "np." not in str(err.value)
    pytest.importorskip("pyarrow")
    pd.DataFrame({"user_id": [1, 2], "item_id": [1.0, 32.5], "timestamp": [1, 2]}).to_parquet(tmp_path / "f.parquet")
    with pytest.raises(UserError, match=r"not whole numbers \(e.g. 32.5\)") as err:
        read_events(csv_dataset(tmp_path / "f.parquet"))
    assert "np.float64" not in str(err.value)


# -------------------------------------------------------------------------------- stale cache


def test_a_file_replaced_with_the_same_size_and_mtime_is_not_read_from_the_old_cache(tmp_path):
    path = tmp_path / "d.csv"
    settings = csv_dataset(path, use_cache=True, cache_dir=str(tmp_path / "cache"))
    csv_file(path, [1, 2, 3, 4])
    before = os.stat(path)
    old, _ = load_interactions(settings)
    csv_file(path, [5, 6, 7, 8])  # same length, other items
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = os.stat(path)
    assert (after.st_size, after.st_mtime_ns) == (before.st_size, before.st_mtime_ns)
    new, summary = load_interactions(settings)
    assert not summary["cache"]["hit"]
    assert old.item_ids.tolist() == [1, 2, 3, 4] and new.item_ids.tolist() == [5, 6, 7, 8]


def test_cache_files_are_readable_by_others_like_every_artefact(tmp_path):
    _, summary = load_interactions(
        csv_dataset(csv_file(tmp_path / "d.csv", [1, 2, 3]), use_cache=True, cache_dir=str(tmp_path / "cache"))
    )
    assert oct(os.stat(summary["cache"]["path"]).st_mode & 0o777) == "0o644"
    assert [p.name for p in (tmp_path / "cache").iterdir()] == [Path(summary["cache"]["path"]).name]


# --------------------------------------------------------------------------- ragged lines


RAGGED = "user_id,item_id,timestamp\n1,1,1\n1,2,2,99\n2,1,3\n2,2,4\n1,3,5,7,8\n"


def test_a_line_with_extra_fields_is_refused_naming_it(tmp_path):
    (tmp_path / "d.csv").write_text(RAGGED)
    with pytest.raises(UserError, match=r"line 3 has 4 fields where the header has 3.*dataset.on_bad_lines"):
        read_events(csv_dataset(tmp_path / "d.csv"))
    (tmp_path / "p.txt").write_text("1 2\n1 3 4\n2 3\n")
    with pytest.raises(UserError, match=r"line 2 has 3 fields where the first line has 2"):
        read_events(csv_dataset(tmp_path / "p.txt", source="pairs", time_col=None))


@pytest.mark.parametrize("action", ["warn", "skip"])
def test_lines_with_extra_fields_are_dropped_and_counted_on_request(tmp_path, action):
    (tmp_path / "d.csv.gz").write_bytes(gzip.compress(RAGGED.encode()))
    inter, summary = load_interactions(csv_dataset(tmp_path / "d.csv.gz", on_bad_lines=action))
    assert inter.n_interactions == 3
    assert summary["bad_lines"] == {
        "action": action,
        "dropped_lines": 2,
        "first_line": 3,
        "first_line_fields": 4,
        "expected_fields": 3,
    }


# --------------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    "dates, message",
    [
        (["01/02/2020", "2020-01-03", "05/06/2020"], r"dates in more than one format.*'01/02/2020'.*'2020-01-03'"),
        (["01/02/2020", "03/04/2020", "05/06/2020"], r"read both as %m/%d/%Y and as %d/%m/%Y.*dataset.time_format"),
    ],
)
def test_mixed_or_ambiguous_dates_are_refused(tmp_path, dates, message):
    body = "".join(f"1,{i},{d}\n" for i, d in enumerate(dates))
    (tmp_path / "d.csv").write_text("user_id,item_id,timestamp\n" + body)
    with pytest.raises(UserError, match=message):
        read_events(csv_dataset(tmp_path / "d.csv"))


def test_time_format_reads_day_first_and_a_day_above_12_settles_the_order(tmp_path):
    (tmp_path / "d.csv").write_text("user_id,item_id,timestamp\n1,1,01/02/2020\n1,2,03/04/2020\n")
    days = read_events(csv_dataset(tmp_path / "d.csv", time_format="%d/%m/%Y"))["time"]
    assert pd.to_datetime(days).tolist() == [pd.Timestamp("2020-02-01"), pd.Timestamp("2020-04-03")]
    (tmp_path / "e.csv").write_text("user_id,item_id,timestamp\n1,1,01/02/2020\n1,2,13/04/2020\n")
    days = read_events(csv_dataset(tmp_path / "e.csv"))["time"]
    assert pd.to_datetime(days).tolist() == [pd.Timestamp("2020-02-01"), pd.Timestamp("2020-04-13")]
    with pytest.raises(UserError, match=r"'13/04/2020' \(data row 2\), which does not match dataset.time_format"):
        read_events(csv_dataset(tmp_path / "e.csv", time_format="%m/%d/%Y"))


# ---------------------------------------------------------------------------- time windows


def window_file(path):
    # users 1 and 2, events at 10..60; user 3 only at 70
    path.write_text(
        "user_id,item_id,timestamp\n"
        + "".join(f"{u},{i},{t}\n" for u in (1, 2) for i, t in enumerate((10, 20, 30, 40, 50, 60), start=1))
        + "3,1,70\n"
    )
    return path


def test_time_window_keeps_events_at_both_bounds(tmp_path):
    inter, summary = load_interactions(csv_dataset(window_file(tmp_path / "d.csv"), min_time="20", max_time="50"))
    assert sorted(set(inter.times.tolist())) == [20, 30, 40, 50]  # ties at the bounds are kept
    step = summary["steps"][0]
    assert step == {
        "step": "time_window",
        "min_time": "20",
        "max_time": "50",
        "low": 20,
        "high": 50,
        "users": 2,
        "items": 4,
        "interactions": 8,
    }
    open_ended, _ = load_interactions(csv_dataset(tmp_path / "d.csv", min_time="60"))
    assert open_ended.times.tolist() == [60, 60, 70]


def test_time_window_with_dates_and_is_in_the_cache_key(tmp_path):
    (tmp_path / "d.csv").write_text(
        "user_id,item_id,timestamp\n"
        + "".join(f"{u},{d},2020-01-{d:02d}T00:00:00Z\n" for u in (1, 2) for d in range(1, 11))
    )
    settings = dict(use_cache=True, cache_dir=str(tmp_path / "cache"))
    inter, first = load_interactions(
        csv_dataset(tmp_path / "d.csv", min_time="2020-01-03", max_time="2020-01-05", **settings)
    )
    assert inter.item_ids.tolist() == [3, 4, 5] and not first["cache"]["hit"]
    wider, second = load_interactions(csv_dataset(tmp_path / "d.csv", min_time="2020-01-03", **settings))
    assert not second["cache"]["hit"] and wider.item_ids.tolist() == [3, 4, 5, 6, 7, 8, 9, 10]
    with pytest.raises(UserError, match=r"dataset.min_time='5' is a number, but the time column .* holds dates"):
        load_interactions(csv_dataset(tmp_path / "d.csv", min_time="5"))


def test_date_bounds_on_movielens_seconds_and_refused_on_other_numbers(tmp_path):
    release = tmp_path / "ml-100k"
    release.mkdir()
    day = 86_400
    (release / "u.data").write_text("".join(f"{u}\t{i}\t4\t{i * day}\n" for u in (1, 2) for i in range(1, 6)))
    settings = dict(
        name="ml-100k", source="movielens", path=str(release), min_user_count=1, min_item_count=1, use_cache=False
    )
    inter, _ = load_interactions(DatasetConfig(**settings, min_time="1970-01-03", max_time="1970-01-05"))
    assert inter.item_ids.tolist() == [2, 3, 4]
    with pytest.raises(UserError, match=r"is a date, but the time column .* holds numbers"):
        load_interactions(csv_dataset(window_file(tmp_path / "d.csv"), min_time="1970-01-03"))


def test_an_empty_window_names_the_filter_and_the_counts_before_it(tmp_path):
    with pytest.raises(
        UserError,
        match=r"No interactions are left after the time window \(dataset.min_time=61, "
        r"dataset.max_time=69\) \(before it: 3 users, 6 items, 13 interactions\)",
    ):
        load_interactions(csv_dataset(window_file(tmp_path / "d.csv"), min_time="61", max_time="69"))


@pytest.mark.parametrize(
    "window, message",
    [
        (dict(min_time="50", max_time="20"), r"dataset.min_time='50': expected a time at or before dataset.max_time"),
        (dict(min_time="2020-02-01", max_time="2020-01-01"), r"dataset.min_time='2020-02-01'"),
        (dict(min_time="5", max_time="2020-01-01"), r"both numbers or both dates"),
        (dict(min_time="soon"), r"dataset.min_time='soon': expected a number .* or a date"),
    ],
)
def test_impossible_windows_are_config_errors(tmp_path, window, message):
    with pytest.raises(UserError, match=message):
        validate_dataset(csv_dataset(tmp_path / "d.csv", **window))
    with pytest.raises(UserError, match=r"needs timestamps"):
        validate_dataset(csv_dataset(tmp_path / "s.txt", source="sequences", time_col=None, min_time="1"))


# ---------------------------------------------------------------------- the real CLI, twice


@pytest.fixture(scope="module")
def cli(tmp_path_factory):
    """Two real `seqrec-train` runs side by side: 19-digit ids end to end, and an inverted window."""
    jobs = {}
    folder = tmp_path_factory.mktemp("snowflakes")
    sequences_file(folder / "seq.txt", SNOWFLAKES)
    jobs["snowflakes"] = (folder, ["debug=smoke", "dataset=sequences", "dataset.path=seq.txt"])
    folder = tmp_path_factory.mktemp("window")
    window_file(folder / "d.csv")
    jobs["window"] = (folder, ["dataset=csv", "dataset.path=d.csv", "dataset.min_time=50", "dataset.max_time=20"])
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = {name: pool.submit(run_cli, args, folder) for name, (folder, args) in jobs.items()}
        yield {name: (future.result(), jobs[name][0]) for name, future in futures.items()}


def test_cli_trains_on_forty_19_digit_items(cli):
    result, folder = cli["snowflakes"]
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((single_run_dir(folder) / "data_summary.json").read_text())
    assert summary["raw"]["items"] == summary["items"] == 40


def test_cli_refuses_an_inverted_window_in_one_sentence(cli):
    result, _ = cli["window"]
    assert result.returncode == 2 and "Traceback" not in result.stderr + result.stdout
    message = " ".join(result.stderr.split())
    assert "dataset.min_time='50': expected a time at or before dataset.max_time (20)" in message
