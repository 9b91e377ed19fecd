"""`benchmark.py peer` (scripts/peer.py): RecBole sees our split, our settings, and the table adds up.

Nothing here needs RecBole except the one slow test at the end, which is skipped when the RecBole
environment (.venv-recbole/, created by `python scripts/benchmark.py peer`) is absent.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from seqrec_cli.config.schema import DatasetConfig

sys.path.insert(0, str(REPO / "scripts"))
import peer  # noqa: E402
import peer_data  # noqa: E402
import peer_table  # noqa: E402

# user, item, rating, timestamp in file order. Ties at the end of users 1 and 2 decide the test and
# validation targets: our rule keeps file order (user 1: ... 40 then 30; user 2: 50 then 20 then 10).
U_DATA = [
    (1, 10, 5, 100),
    (1, 20, 4, 200),
    (1, 40, 3, 300),
    (1, 30, 5, 300),
    (2, 30, 4, 50),
    (2, 50, 3, 70),
    (2, 20, 2, 70),
    (2, 10, 1, 70),
    (3, 20, 5, 900),
    (3, 10, 4, 800),
    (3, 50, 3, 950),
    (3, 40, 2, 990),
    (4, 40, 1, 10),
    (4, 10, 2, 10),  # two events: trains only, never a target
]


def ml100k_like(tmp_path: Path) -> DatasetConfig:
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in U_DATA))
    return DatasetConfig(
        name="ml-100k",
        source="movielens",
        path=str(folder),
        min_user_count=1,
        min_item_count=1,
        cache_dir=str(tmp_path / "cache"),
    )


def test_positions_reproduce_our_leave_one_out_targets_at_timestamp_ties(tmp_path):
    cfg = ml100k_like(tmp_path)
    ours = peer_data.our_split(cfg)
    assert ours["test"] == {"1": "30", "2": "10", "3": "40"}
    assert ours["valid"] == {"1": "40", "2": "20", "3": "50"}

    path = peer_data.write_atomic(peer_data.ordered_events(cfg), tmp_path / "atomic", "peer_test")
    assert path == tmp_path / "atomic" / "peer_test" / "peer_test.inter"
    table = pd.read_csv(path, sep="\t", dtype=str)
    assert list(table.columns) == ["user_id:token", "item_id:token", "timestamp:float"]
    back = pd.DataFrame(
        {
            "user": table["user_id:token"],
            "item": table["item_id:token"],
            "position": table["timestamp:float"].astype(int),
        }
    )
    assert back["position"].is_unique  # no ties left for RecBole's sort to break its own way
    theirs = peer_data.leave_one_out_targets(back)
    assert theirs == {"valid": ours["valid"], "test": ours["test"]}


def test_raw_timestamps_would_pick_other_targets(tmp_path):
    """The case is not trivial: sorting ties any other way (here by item) changes the targets."""
    raw = pd.DataFrame(U_DATA, columns=["user", "item", "rating", "time"])
    raw = raw.sort_values(["user", "time", "item"]).assign(position=range(len(raw)))
    ours = peer_data.our_split(ml100k_like(tmp_path))
    assert peer_data.leave_one_out_targets(raw)["test"] != ours["test"]


def test_sequence_files_use_the_position_in_the_line(tmp_path):
    path = tmp_path / "Beauty.txt"
    path.write_text("1 5 3 9 3\n2 9 5 7\n3 3 5\n")
    cfg = DatasetConfig(
        name="sequences",
        source="sequences",
        path=str(path),
        time_col=None,
        min_user_count=1,
        min_item_count=1,
        cache_dir=str(tmp_path / "cache"),
    )
    events = peer_data.ordered_events(cfg)
    assert events["position"].tolist() == list(range(9))
    ours = peer_data.our_split(cfg)
    assert ours["test"] == {"1": "3", "2": "7"} and ours["valid"] == {"1": "9", "2": "5"}
    assert peer_data.leave_one_out_targets(events) == {"valid": ours["valid"], "test": ours["test"]}


def test_compare_splits_names_each_difference():
    ours = {
        "counts": {"users": 3, "items": 4, "interactions": 12},
        "valid": {"1": "a", "2": "b"},
        "test": {"1": "c", "2": "d"},
    }
    assert peer_data.compare_splits(ours, json.loads(json.dumps(ours))) == []
    theirs = {
        "counts": {"users": 3, "items": 5, "interactions": 12},
        "valid": {"1": "a", "2": "x"},
        "test": {"1": "c", "2": "d", "9": "e"},
    }
    problems = peer_data.compare_splits(ours, theirs)
    assert problems == [
        "items: ours 4, RecBole 5",
        "valid targets differ for 1 users (e.g. user 2)",
        "test targets differ for 1 users (e.g. user 9)",
    ]


# ------------------------------------------------------------------------------------ configs


def args(**kw):
    base = dict(epochs=7, patience=3, threads=2, seed=5, extra=[])
    return argparse.Namespace(**{**base, **kw})


def test_sasrec_config_mirrors_our_attention_settings(tmp_path):
    overrides = peer.our_overrides(
        peer.DATASETS["ml-100k"], "attention", args(extra=["encoder.num_heads=2", "model.max_len=30"])
    )
    cfg = peer.compose_ours(overrides)
    assert cfg.trainer.max_epochs == 7 and cfg.trainer.num_threads == 2 and cfg.optimizer.betas == [0.9, 0.999]
    c = peer.recbole_config(cfg, "peer_ml100k", tmp_path / "atomic", tmp_path / "saved", 1234)
    assert c["eval_args"] == {"split": {"LS": "valid_and_test"}, "order": "TO", "mode": "full", "group_by": "user"}
    assert c["train_neg_sample_args"] is None and c["loss_type"] == "CE"
    assert (c["user_inter_num_interval"], c["item_inter_num_interval"]) == ("[5,inf)", "[5,inf)")
    assert c["normalize_all"] is False and c["TIME_FIELD"] == "timestamp"
    assert c["MAX_ITEM_LIST_LENGTH"] == 30
    assert (c["n_layers"], c["n_heads"], c["hidden_size"], c["inner_size"]) == (2, 2, 64, 64)
    assert c["hidden_dropout_prob"] == c["attn_dropout_prob"] == cfg.encoder.dropout
    assert (c["learner"], c["learning_rate"], c["epochs"], c["stopping_step"], c["eval_step"]) == (
        "adam",
        cfg.optimizer.lr,
        7,
        3,
        1,
    )
    assert (c["train_batch_size"], c["eval_batch_size"], c["seed"]) == (1234, cfg.trainer.eval_batch_size, 5)
    assert c["metrics"] == ["Hit", "NDCG"] and c["topk"] == [10] and c["valid_metric"] == "NDCG@10"
    assert c["data_path"] == str(tmp_path / "atomic")


def test_gru4rec_config_and_beauty_filters(tmp_path):
    cfg = peer.compose_ours(peer.our_overrides(peer.DATASETS["beauty"], "gru", args()))
    assert cfg.dataset.source == "sequences"
    c = peer.recbole_config(cfg, "peer_beauty", tmp_path, tmp_path, 64)
    # dataset=sequences filters nothing (min counts 1), so RecBole must not filter either.
    assert c["user_inter_num_interval"] is None and c["item_inter_num_interval"] is None
    assert (c["embedding_size"], c["hidden_size"], c["num_layers"], c["dropout_prob"]) == (
        64,
        64,
        1,
        cfg.encoder.dropout,
    )
    assert "n_heads" not in c


def test_settings_recbole_cannot_mirror_are_refused(tmp_path):
    cfg = peer.compose_ours(peer.our_overrides(peer.DATASETS["ml-100k"], "gru", args(extra=["loss=bce"])))
    with pytest.raises(SystemExit, match="cannot mirror loss=bce"):
        peer.recbole_config(cfg, "x", tmp_path, tmp_path, 64)


def test_matched_batch_carries_our_targets_per_step():
    assert peer.matched_batch(32, train_sequences=2500, train_positions=96458) == round(32 * 96458 / 2500)
    assert peer.matched_batch(32, 0, 0) == 1


# ----------------------------------------------------------------------------- table, ratios


def side(s_per_epoch, eval_s, rss, ndcg, sequences, targets=100_000):
    return {
        "epochs_run": 10,
        "best_epoch": 7,
        "s_per_epoch": s_per_epoch,
        "train_sequences": sequences,
        "train_targets": targets,
        "eval_s_per_pass": eval_s,
        "eval_users": 1000,
        "peak_rss_gb": rss,
        "test_ndcg@10": ndcg,
        "test_hr@10": 2 * ndcg,
    }


def canned_rows():
    return [
        peer_table.pair_row(
            "ml-100k",
            "attention vs SASRec",
            side(10.0, 0.05, 0.5, 0.06, 2500),
            side(150.0, 1.0, 1.5, 0.05, 100_000),
            {"train": 5, "eval": 10},
        ),
        peer_table.pair_row(
            "beauty",
            "gru vs GRU4Rec",
            side(20.0, 0.5, 0.5, 0.03, 22_000),
            side(60.0, 2.0, 1.0, 0.04, 150_000),
            {"train": 5, "eval": 10},
        ),
    ]


def test_ratios_read_higher_is_ours_better():
    good, bad = canned_rows()
    r = good["ratios"]
    assert r["s_per_epoch"] == pytest.approx(15.0) and r["targets_per_s"] == pytest.approx(15.0)
    assert r["eval_s_per_pass"] == pytest.approx(20.0) and r["users_per_s"] == pytest.approx(20.0)
    assert r["peak_rss_gb"] == pytest.approx(3.0) and r["test_ndcg@10"] == pytest.approx(1.2)
    assert r["sequences_per_s"] is None  # windows vs prefixes: no meaningful ratio
    assert good["ours"]["sequences_per_s"] == pytest.approx(250.0)
    assert all(good["checks"].values())
    assert list(bad["checks"].values()) == [False, False, False]  # 3x training, 4x eval, lower NDCG


def test_tables_plain_and_markdown():
    rows = canned_rows()
    plain = peer_table.table_lines(rows)
    assert len(plain) == 2 + 2 * len(peer_table.MEASURES)
    assert "15.00x" in plain[2] and plain[2].split()[0] == "ml-100k"
    md = peer_table.table_lines(rows, markdown=True)
    assert md[0].startswith("| dataset |") and md[1] == "|---|---|---|---|---|---|"
    assert "| ml-100k | attention vs SASRec | seconds / eval pass | 0.050 | 1.000 | 20.00x |" in md
    meta = {
        "machine": {"date": "d", "cpu": "CPU X", "cores": 2, "load_average": [0.1], "torch": "t", "recbole": "1.2.1"},
        "threads": 2,
        "epochs": 10,
        "patience": 3,
        "seed": 1,
        "our_batch": "32",
        "recbole_batch_rule": "2048 prefixes",
        "argv": ["--epochs", "10"],
    }
    report = peer_table.markdown_report(rows, meta)
    assert "CPU X" in report and "`python scripts/benchmark.py peer --epochs 10`" in report
    assert "- beauty gru vs GRU4Rec: training >= 5x NO" in report


# ------------------------------------------------------------------------- with RecBole itself

RECBOLE_VENV = REPO / ".venv-recbole"


@pytest.mark.slow
@pytest.mark.skipif(not peer.recbole_ready(RECBOLE_VENV), reason="no RecBole environment at .venv-recbole/")
def test_recbole_runner_sees_our_split(tmp_path):
    """Real RecBole on a small synthetic case with ties: same counts and targets, one epoch trains."""
    rows = [(u, (u * 7 + k * 3) % 23 + 1, 3, 1000 + (k // 2) * 10) for u in range(1, 41) for k in range(8)]
    folder = tmp_path / "ml-100k"
    folder.mkdir()
    (folder / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows))
    cfg = peer.compose_ours(
        peer.our_overrides(
            peer.PeerDataset("t", "ml-100k", folder, "peer_t"), "attention", args(epochs=1, extra=["model.max_len=5"])
        )
    )
    cfg.dataset.cache_dir = str(tmp_path / "cache")
    write = peer_data.write_atomic(peer_data.ordered_events(cfg.dataset), tmp_path / "atomic", "peer_t")
    assert write.is_file()
    config = peer.recbole_config(cfg, "peer_t", tmp_path / "atomic", tmp_path / "saved", 64)
    result = peer.run_recbole(
        peer.recbole_python(RECBOLE_VENV),
        peer.PeerDataset("t", "ml-100k", folder, "peer_t"),
        config,
        "SASRec",
        1,
        tmp_path,
    )
    ours = peer_data.our_split(cfg.dataset)
    theirs = {"counts": result["counts"], "valid": result["valid_targets"], "test": result["test_targets"]}
    assert peer_data.compare_splits(ours, theirs) == []
    assert len(result["epoch_seconds"]) == 1 and result["peak_rss_kb"] > 0
    assert result["train_samples"] == ours["counts"]["interactions"] - 3 * ours["counts"]["users"]


# ---------------------------------------------------------------- RecTools (scripts/peer_rectools.py)

import peer_rectools  # noqa: E402
import rectools_runner  # noqa: E402


def test_exported_events_split_as_ours_at_timestamp_ties(tmp_path):
    """Our filtered events, exported for RecTools, give the runner's leave-one-out our targets."""
    cfg = peer.compose_ours(peer.our_overrides(peer.PeerDataset("t", "ml-100k", tmp_path, "x"), "attention", args()))
    cfg.dataset = ml100k_like(tmp_path)
    events = peer_rectools.export_events(cfg, tmp_path / "out" / "events.csv")
    assert list(events.columns) == ["user", "item", "position"] and events["position"].is_unique
    ours = peer_data.our_split(cfg.dataset)
    assert ours["test"] == {"1": "30", "2": "10", "3": "40"}
    back = pd.read_csv(tmp_path / "out" / "events.csv", dtype={"user": str, "item": str})
    split = rectools_runner.leave_one_out(back)
    assert (split["valid"], split["test"]) == (ours["valid"], ours["test"])
    peer_rectools.check_export(back, ours)  # raises when they differ
    # The training part: everything but the two last events of users with >= 3 (user 4 keeps both).
    assert len(split["train"]) == len(U_DATA) - 2 * 3
    assert sorted(split["valid_events"]["user"]) == ["1", "2", "3"]


def test_check_export_names_the_difference(tmp_path):
    events = pd.DataFrame({"user": ["1"] * 4, "item": ["a", "b", "c", "d"], "position": [0, 1, 2, 3]})
    ours = {"counts": {"users": 1, "items": 4, "interactions": 4}, "valid": {"1": "c"}, "test": {"1": "x"}}
    with pytest.raises(SystemExit, match="test targets differ for 1 users"):
        peer_rectools.check_export(events, ours)


def test_runner_metrics_and_training_windows():
    recs = pd.DataFrame(
        {"user": ["1", "1", "2", "2", "3"], "item": ["a", "b", "c", "d", "e"], "rank": [1, 2, 1, 3, 11]}
    )
    targets = {"1": "b", "2": "x", "3": "e", "4": "a"}  # 2: not in its top 10; 3: rank 11; 4: no recommendation
    m = rectools_runner.ranking_metrics(recs, targets)
    assert m["hit@10"] == pytest.approx(1 / 4) and m["ndcg@10"] == pytest.approx(1 / np.log2(3) / 4)
    train = pd.DataFrame({"user": ["1"] * 60 + ["2"] * 3 + ["3"], "item": ["i"] * 64, "position": range(64)})
    # user 1: the last 51 events, 50 targets; user 2: 2 targets; user 3 (one event) does not train
    assert rectools_runner.training_windows(train, 50) == {"train_users": 2, "train_targets": 52}


def test_rectools_settings_follow_our_config(tmp_path):
    dataset = peer.DATASETS["ml-100k"]
    overrides = peer_rectools.our_overrides(dataset, args(epochs=12))
    cfg = peer.compose_ours(overrides)
    assert cfg.trainer.all_windows is False and cfg.trainer.patience == 12 and cfg.trainer.max_epochs == 12
    kw = peer_rectools.rectools_model(cfg)
    assert kw == {
        "n_blocks": 2,
        "n_heads": 1,
        "n_factors": 64,
        "dropout_rate": 0.2,
        "session_max_len": 50,
        "loss": "softmax",
        "lr": 0.001,
        "batch_size": 128,
        "deterministic": True,
        "recommend_torch_device": "cpu",
        "recommend_batch_size": cfg.trainer.eval_batch_size,
    }
    cfg = peer.compose_ours([*overrides, "loss=bce"])
    with pytest.raises(SystemExit, match="mirrors loss=ce"):
        peer_rectools.rectools_model(cfg)


def rectools_result():
    return {
        "epoch_seconds": [4.0, 2.0],
        "valid_seconds": [1.0, 0.5],
        "best_epoch": 2,
        "train_users": 900,
        "train_targets": 40_000,
        "valid_targets": {str(u): "i" for u in range(943)},
        "peak_rss_kb": 2**20,
        "test": {"ndcg@10": 0.05, "hit@10": 0.1},
        "counts": {},
        "n_params": 1,
        "threads": 2,
        "torch": "t",
    }


def test_rectools_row_ratios_checks_and_markdown():
    theirs = peer_rectools.rectools_side(rectools_result())
    assert theirs["s_per_epoch"] == 3.0 and theirs["eval_s_per_pass"] == 0.75 and theirs["peak_rss_gb"] == 1.0
    ours = side(0.75, 0.05, 0.5, 0.06, 943, targets=40_000)
    row = peer_table.pair_row("ml-100k", "attention vs SASRecModel", ours, theirs, {"train": 0, "eval": 0})
    row["checks"] = peer_rectools.rectools_checks("ml-100k", row["ratios"], row["ours"], row["recbole"])
    assert row["ratios"]["s_per_epoch"] == pytest.approx(4.0) and row["ratios"]["targets_per_s"] == pytest.approx(4.0)
    assert row["checks"] == {"training >= 3x": True, "test NDCG@10 >= RecTools'": True, "less peak RSS": True}
    beauty = peer_rectools.rectools_checks("beauty", row["ratios"], row["ours"], row["recbole"])
    assert beauty["training >= 10x"] is False
    row.update(peer="RecTools", rectools_catalogue_items=1300, load_after="load average 1.00 / 2.00 / 3.00")
    row["ours"]["counts"] = {"items": 1349}
    meta = {
        "date": "d",
        "cpu": "CPU X",
        "cores": 2,
        "threads": 2,
        "torch": "t",
        "rectools": "0.19",
        "epochs": 20,
        "seed": 42,
        "load_start": "0.5 / 0.6 / 0.7",
        "argv": ["--peers", "rectools"],
    }
    text = peer_rectools.markdown([row], meta)
    assert "| dataset | model (ours vs RecTools) | measure | ours | RecTools |" in text
    assert "| ml-100k | attention vs SASRecModel | seconds / training epoch | 0.75 | 3.00 | 4.00x |" in text
    assert "Load average at the start 0.5 / 0.6 / 0.7; after ml-100k load average 1.00 / 2.00 / 3.00" in text
    assert "(RecTools' catalogue: 1,300 of 1,349 items)" in text and "post-LN with a ReLU" in text
    assert "`python scripts/benchmark.py peer --peers rectools`" in text


RECTOOLS_VENV = REPO / ".venv-rectools"


@pytest.mark.slow
@pytest.mark.skipif(
    not peer_rectools.rectools_ready(RECTOOLS_VENV), reason="no RecTools environment at .venv-rectools/"
)
def test_rectools_runner_trains_on_our_split(tmp_path):
    """Real RecTools, one epoch on a small synthetic case: same targets back, figures present."""
    rows = [(u, (u * 7 + k * 3) % 23 + 1, 3, 1000 + k * 10) for u in range(1, 41) for k in range(8)]
    (tmp_path / "u.data").write_text("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows))
    dataset = peer.PeerDataset("t", "ml-100k", tmp_path, "x")
    cfg = peer.compose_ours(peer_rectools.our_overrides(dataset, args(epochs=1)))
    cfg.dataset.cache_dir = str(tmp_path / "cache")
    peer_rectools.export_events(cfg, tmp_path / "events.csv")
    spec = {
        "events": str(tmp_path / "events.csv"),
        "threads": 1,
        "epochs": 1,
        "seed": 0,
        "model": {**peer_rectools.rectools_model(cfg), "session_max_len": 5},
    }
    result = peer_rectools.run_rectools(peer_rectools.rectools_python(RECTOOLS_VENV), spec, tmp_path / "work")
    ours = peer_data.our_split(cfg.dataset)
    assert (
        peer_rectools.split_problems(
            ours, {"counts": result["counts"], "valid": result["valid_targets"], "test": result["test_targets"]}
        )
        == []
    )
    assert len(result["epoch_seconds"]) == 1 and len(result["valid_seconds"]) == 1 and result["peak_rss_kb"] > 0
