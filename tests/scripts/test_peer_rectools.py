"""`benchmark.py peer --peers rectools` (scripts/peer_rectools.py): RecTools sees our split and
settings, and its row adds up.

Nothing here needs RecTools except the one slow test at the end, which is skipped when the RecTools
environment (.venv-rectools/, created by `python scripts/benchmark.py peer --peers rectools`) is absent.
"""

from __future__ import annotations

import sys

import numpy as np
import pandas as pd
import pytest

from conftest import REPO
from peer_support import U_DATA, args, ml100k_like, side

sys.path.insert(0, str(REPO / "scripts"))
import peer  # noqa: E402
import peer_data  # noqa: E402
import peer_rectools  # noqa: E402
import peer_table  # noqa: E402
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
