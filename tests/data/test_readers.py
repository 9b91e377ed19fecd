"""Readers: every dataset option on small files written here, and on the real files in ../shared/data."""

import gzip

import numpy as np
import pandas as pd
import pytest

from seqrec_cli.config.schema import DatasetConfig
from seqrec_cli.data import load, load_interactions
from seqrec_cli.data.columns import EventColumns
from seqrec_cli.data.delimited import ReadOptions, read_delimited
from seqrec_cli.data.metadata import item_titles
from seqrec_cli.data.sources import read_events
from seqrec_cli.errors import UserError
from data_support import csv_dataset


def rows(events):
    """(user, item, time) tuples, or (user, item) when the source has no time."""
    cols = [c for c in ("user", "item", "time") if c in events]
    return [tuple(r) for r in events[cols].itertuples(index=False, name=None)]


# ------------------------------------------------------------------------- generic tables


def test_csv_with_header_keeps_file_order(tmp_path):
    (tmp_path / "d.csv").write_text("item_id,user_id,timestamp,extra\n5,1,30,x\n3,1,10,y\n5,2,20,z\n")
    assert rows(read_events(csv_dataset(tmp_path / "d.csv"))) == [(1, 5, 30), (1, 3, 10), (2, 5, 20)]


@pytest.mark.parametrize("sep", ["\\t", "tab", "\t"])
def test_tsv_separator_spellings(tmp_path, sep):
    (tmp_path / "d.tsv").write_text("user_id\titem_id\ttimestamp\n1\t2\t3\n")
    assert rows(read_events(csv_dataset(tmp_path / "d.tsv", sep=sep))) == [(1, 2, 3)]


def test_headerless_columns_are_numbered(tmp_path):
    (tmp_path / "d.csv").write_text("9,1,2,100\n9,2,5,101\n")
    c = csv_dataset(tmp_path / "d.csv", header=False, user_col="0", item_col="1", time_col="3")
    assert rows(read_events(c)) == [(9, 1, 100), (9, 2, 101)]


def test_without_time_column_file_order_is_time_order(tmp_path):
    (tmp_path / "d.csv").write_text("user_id,item_id\n1,30\n1,10\n1,20\n")
    inter, _ = load_interactions(csv_dataset(tmp_path / "d.csv", time_col=None))
    assert inter.times is None
    assert inter.item_ids[inter.items - 1].tolist() == [30, 10, 20]


def test_gzip_is_recognised_by_content_not_name(tmp_path):
    (tmp_path / "d.csv").write_bytes(gzip.compress(b"user_id,item_id,timestamp\n1,2,3\n"))
    assert rows(read_events(csv_dataset(tmp_path / "d.csv"))) == [(1, 2, 3)]


def test_parquet(tmp_path):
    pytest.importorskip("pyarrow")
    pd.DataFrame({"u": ["a", "b"], "i": [7, 8], "ts": [2, 1]}).to_parquet(tmp_path / "d.parquet")
    events = read_events(csv_dataset(tmp_path / "d.parquet", user_col="u", item_col="i", time_col="ts"))
    assert rows(events) == [("a", 7, 2), ("b", 8, 1)]
    with pytest.raises(UserError, match=r"no column 'item_id'.*'u', 'i', 'ts'"):
        read_events(csv_dataset(tmp_path / "d.parquet", user_col="u", time_col="ts"))


def test_min_rating_keeps_positive_feedback(tmp_path):
    (tmp_path / "d.csv").write_text("user_id,item_id,timestamp,r\n1,1,1,5\n1,2,2,2\n1,3,3,4\n2,1,1,4\n")
    inter, summary = load_interactions(csv_dataset(tmp_path / "d.csv", rating_col="r", min_rating=4))
    assert inter.n_interactions == 3 and inter.item_ids.tolist() == [1, 3]
    assert summary["steps"][0] == {"step": "min_rating", "setting": 4, "users": 2, "items": 2, "interactions": 3}


def test_dates_are_parsed_to_exact_integers_in_time_order(tmp_path):
    (tmp_path / "d.csv").write_text(
        "user_id,item_id,timestamp\n1,1,2020-01-02 10:00:00\n1,2,2020-01-01T23:59:59Z\n1,3,2020-01-02 10:00:01\n"
    )
    inter, _ = load_interactions(csv_dataset(tmp_path / "d.csv"))
    assert inter.times.dtype == np.int64 and inter.items.tolist() == [2, 1, 3]


def test_string_ids_and_id_type_str_keeps_leading_zeros(tmp_path):
    (tmp_path / "d.csv").write_text("user_id,item_id,timestamp\nu1,007,1\nu1,7,2\n")
    assert rows(read_events(csv_dataset(tmp_path / "d.csv"))) == [("u1", 7, 1), ("u1", 7, 2)]  # auto: "007" is 7
    events = read_events(csv_dataset(tmp_path / "d.csv", id_type="str"))
    assert rows(events) == [("u1", "007", 1), ("u1", "7", 2)]


def test_read_options_text_and_id_columns(tmp_path):
    """`text_columns` keep their text; an `id_columns` column the parser reads as floats is read
    again as text (no id goes through float64); the others keep the parser's types."""
    (tmp_path / "d.txt").write_text("007|1.0|3\n8|12345678901234567890|4\n")
    opts = ReadOptions(sep="|", header=False, text_columns=["0"], id_columns=["1"])
    df = read_delimited(tmp_path / "d.txt", ["0", "1", "2"], opts)
    assert df["0"].tolist() == ["007", "8"] and df["1"].tolist() == ["1.0", "12345678901234567890"]
    assert df["2"].tolist() == [3, 4]
    assert EventColumns(user="u", item="i", time="u").wanted == ["u", "i"]  # each column read once


@pytest.mark.parametrize(
    "body, message",
    [
        (
            "user_id,item_id,timestamp\n1,2,3\n1,x,4\n",
            r"'item_id'.*mixes integer ids \(e.g. '2'\).*'x'.*dataset.id_type=str",
        ),
        ("user_id,item_id,timestamp\n1,2,3\n,3,4\n", r"'user_id'.*empty id \(first at data row 2\)"),
        ("user_id,item_id,timestamp\n1,2.5,3\n", r"'item_id'.*not whole numbers"),
        ("user_id,item_id,timestamp\n1,2,3\n1,3,abc\n", r"'timestamp'.*not a number: 'abc' \(data row 2\)"),
        ("user_id,item_id,timestamp\n1,2,soon\n", r"'timestamp'.*neither a number nor a date: 'soon'"),
        ("user_id,item_id,timestamp\n1,2,3\n1,3,\n", r"'timestamp'.*empty timestamp"),
        ("user_id,item_id,timestamp\n", "has a header but no rows"),
        ("", "is empty"),
        (
            "user,item,ts\n1,2,3\n",
            r"no column 'user_id', 'item_id', 'timestamp': the columns found are 'user', 'item', 'ts'",
        ),
    ],
)
def test_bad_tables_raise_one_clear_sentence(tmp_path, body, message):
    (tmp_path / "d.csv").write_text(body)
    with pytest.raises(UserError, match=message):
        read_events(csv_dataset(tmp_path / "d.csv"))


def test_damaged_and_binary_files(tmp_path):
    body = "user_id,item_id,timestamp\n" + "".join(f"{i},{i * 7919 % 1013},{i}\n" for i in range(5000))
    (tmp_path / "cut.csv.gz").write_bytes(gzip.compress(body.encode())[:2000])
    with pytest.raises(UserError, match="gzip data is damaged or truncated"):
        read_events(csv_dataset(tmp_path / "cut.csv.gz"))
    (tmp_path / "bin.csv").write_bytes(b"user_id,item_id,timestamp\n1,\xff\xfe,3\n")
    with pytest.raises(UserError, match="not UTF-8 text.*dataset.encoding"):
        read_events(csv_dataset(tmp_path / "bin.csv"))
    assert rows(read_events(csv_dataset(tmp_path / "bin.csv", encoding="latin-1", id_type="str"))) == [("1", "ÿþ", 3)]
    with pytest.raises(UserError, match="is a folder"):
        read_events(csv_dataset(tmp_path))


# ------------------------------------------------------------------ MovieLens family (small)


def test_movielens_dat_layout_with_double_colon(tmp_path):
    folder = tmp_path / "unzipped" / "ml-1m"
    folder.mkdir(parents=True)
    (folder / "ratings.dat").write_text("1::10::5::978300760\n1::20::3::978300761\n2::10::4::978300000\n")
    (folder / "movies.dat").write_bytes(
        "10::Amélie: Le fabuleux (2001)::Comedy\n20::Heat (1995)::Action\n".encode("latin-1")
    )
    c = DatasetConfig(
        name="ml-1m",
        source="movielens",
        path=str(tmp_path / "unzipped"),
        min_user_count=1,
        min_item_count=1,
        use_cache=False,
    )
    assert rows(read_events(c)) == [(1, 10, 978300760), (1, 20, 978300761), (2, 10, 978300000)]
    assert item_titles(c) == {10: "Amélie: Le fabuleux (2001)", 20: "Heat (1995)"}


def test_movielens_min_rating_uses_the_release_rating_column(tmp_path):
    (tmp_path / "u.data").write_text("1\t10\t5\t100\n1\t20\t2\t101\n")
    c = DatasetConfig(
        name="ml-100k",
        source="movielens",
        path=str(tmp_path / "u.data"),
        min_rating=4,
        min_user_count=1,
        min_item_count=1,
        use_cache=False,
    )
    inter, _ = load_interactions(c)
    assert inter.item_ids.tolist() == [10]


# -------------------------------------------------------------- atomic, sequences, pairs


def test_atomic_file_with_typed_header(tmp_path):
    folder = tmp_path / "mydata"
    folder.mkdir()
    (folder / "mydata.inter").write_text(
        "user_id:token\titem_id:token\trating:float\ttimestamp:float\nA\t10\t4\t5\nA\t11\t3\t4\nB\t10\t1\t9\n"
    )
    c = csv_dataset(folder, source="atomic", id_type="str")
    assert rows(read_events(c)) == [("A", "10", 5), ("A", "11", 4), ("B", "10", 9)]
    with pytest.raises(UserError, match=r"no field 'when': the fields found are 'user_id:token'"):
        read_events(csv_dataset(folder, source="atomic", time_col="when"))
    (tmp_path / "plain.inter").write_text("user_id\titem_id\n1\t2\n")
    with pytest.raises(UserError, match="not a RecBole atomic file"):
        read_events(csv_dataset(tmp_path / "plain.inter", source="atomic", time_col=None))


def test_sequences_one_line_per_user(tmp_path):
    (tmp_path / "s.txt").write_text("1 5 6 7\n\n2\t8 5\r\n3\n1 9\n")
    events = read_events(csv_dataset(tmp_path / "s.txt", source="sequences", time_col=None))
    assert rows(events) == [(1, 5), (1, 6), (1, 7), (2, 8), (2, 5), (1, 9)]
    inter, _ = load_interactions(csv_dataset(tmp_path / "s.txt", source="sequences", time_col=None))
    assert [inter.item_ids[i - 1] for i in inter.items[: inter.offsets[1]]] == [5, 6, 7, 9]


def test_pairs_one_pair_per_line(tmp_path):
    (tmp_path / "p.txt").write_text("1 5\n1 6\n2  7\n")
    assert rows(read_events(csv_dataset(tmp_path / "p.txt", source="pairs", time_col=None))) == [(1, 5), (1, 6), (2, 7)]
    (tmp_path / "bad.txt").write_text("1 5\n2\n")
    with pytest.raises(UserError, match="empty id"):
        read_events(csv_dataset(tmp_path / "bad.txt", source="pairs", time_col=None))


# ----------------------------------------------------------------------- the real files


def one_core(**kw):
    return DatasetConfig(min_user_count=1, min_item_count=1, use_cache=False, **kw)


def counts(c):
    _, summary = load(c)
    return summary["users"], summary["items"], summary["interactions"]


def test_ml100k_from_u_data_and_from_the_atomic_file(shared_data):
    folder = shared_data / "ml-100k"
    assert counts(one_core(name="ml-100k", source="movielens", path=str(folder))) == (943, 1682, 100000)
    atomic = one_core(
        name="ml-100k-inter",
        source="atomic",
        path=str(folder / "ml-100k.inter"),
        user_col="user_id",
        item_col="item_id",
        time_col="timestamp",
    )
    assert counts(atomic) == (943, 1682, 100000)
    a, _ = load_interactions(one_core(name="ml-100k", source="movielens", path=str(folder)))
    b, _ = load_interactions(atomic)
    assert np.array_equal(a.items, b.items) and np.array_equal(a.offsets, b.offsets)


def test_ml100k_titles_are_latin1(shared_data):
    titles = item_titles(one_core(name="ml-100k", source="movielens", path=str(shared_data / "ml-100k")))
    assert len(titles) == 1682 and titles[543] == "Misérables, Les (1995)"


def test_amazon_beauty_sequences(shared_data):
    c = one_core(
        name="beauty", source="sequences", path=str(shared_data / "amazon-beauty" / "Beauty.txt"), time_col=None
    )
    assert counts(c) == (22363, 12101, 198502)


def test_ml_latest_small_from_a_folder_and_bundled_titles(shared_data):
    c = one_core(name="ml-latest-small", source="movielens", path=str(shared_data / "ml-latest-small"))
    assert counts(c) == (610, 9724, 100836)
    assert item_titles(DatasetConfig())[1] == "Toy Story (1995)"
