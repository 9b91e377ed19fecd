"""`benchmark.py peer` (scripts/peer.py): RecBole sees our split, our settings, and the table adds up.

Nothing here needs RecBole except the one slow test at the end, which is skipped when the RecBole
environment (.venv-recbole/, created by `python scripts/benchmark.py peer`) is absent.
"""

from __future__ import annotations

import json
import sys

import pandas as pd
import pytest

from conftest import REPO
from peer_support import U_DATA, args, ml100k_like, side
from seqrec_cli.config.schema import DatasetConfig

sys.path.insert(0, str(REPO / "scripts"))
import peer  # noqa: E402
import peer_data  # noqa: E402
import peer_recbole  # noqa: E402
import peer_table  # noqa: E402


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


def test_sasrec_config_mirrors_our_attention_settings(tmp_path):
    overrides = peer.our_overrides(
        peer.DATASETS["ml-100k"], "attention", args(extra=["encoder.num_heads=2", "model.max_len=30"])
    )
    cfg = peer.compose_ours(overrides)
    assert cfg.trainer.max_epochs == 7 and cfg.trainer.num_threads == 2 and cfg.optimizer.betas == [0.9, 0.999]
    c = peer_recbole.recbole_config(cfg, "peer_ml100k", tmp_path / "atomic", tmp_path / "saved", 1234)
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
    c = peer_recbole.recbole_config(cfg, "peer_beauty", tmp_path, tmp_path, 64)
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
        peer_recbole.recbole_config(cfg, "x", tmp_path, tmp_path, 64)


def test_matched_batch_carries_our_targets_per_step():
    assert peer_recbole.matched_batch(32, train_sequences=2500, train_positions=96458) == round(32 * 96458 / 2500)
    assert peer_recbole.matched_batch(32, 0, 0) == 1


# ----------------------------------------------------------------------------- table, ratios


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
@pytest.mark.skipif(not peer_recbole.recbole_ready(RECBOLE_VENV), reason="no RecBole environment at .venv-recbole/")
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
    config = peer_recbole.recbole_config(cfg, "peer_t", tmp_path / "atomic", tmp_path / "saved", 64)
    result = peer_recbole.run_recbole(
        peer_recbole.recbole_python(RECBOLE_VENV),
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
