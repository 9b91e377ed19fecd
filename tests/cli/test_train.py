"""End-to-end: the real `seqrec-train` CLI in a temporary directory."""

import csv
import json
import subprocess
import sys

import pytest
import torch

from conftest import REPO, run_cli, single_run_dir

from seqrec_cli.api import compose
from seqrec_cli.errors import UserError

METRIC_KEYS = {"hr@1", "hr@5", "hr@10", "hr@20", "ndcg@1", "ndcg@5", "ndcg@10", "ndcg@20", "mrr"}


def assert_complete_run_dir(run_dir, epochs=2):
    for name in (
        ".hydra/config.yaml",
        ".hydra/overrides.yaml",
        "train.log",
        "data_summary.json",
        "history.csv",
        "metrics.json",
        "checkpoints/best.pt",
        "checkpoints/last.pt",
    ):
        assert (run_dir / name).is_file(), name
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert isinstance(metrics["best_epoch"], int) and metrics["epochs_run"] == epochs
    assert set(metrics["valid"]) == set(metrics["test"]) == METRIC_KEYS
    assert set(metrics["popularity"]) == {"valid", "test"} and set(metrics["popularity"]["test"]) == METRIC_KEYS
    assert metrics["n_params"] > 0 and metrics["device"] == "cpu"
    assert metrics["train_seconds"] > 0 and metrics["eval_seconds"] > 0
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    assert [int(r["epoch"]) for r in rows] == list(range(1, epochs + 1))
    assert {"train_loss", "valid/ndcg@10", "lr", "seconds"} <= set(rows[0])
    summary = json.loads((run_dir / "data_summary.json").read_text())
    assert summary["users"] > 0 and summary["split"]["test_users"] > 0
    return metrics


def test_smoke_run_writes_a_complete_run_dir(tmp_path):
    result = run_cli(["debug=smoke"], tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = single_run_dir(tmp_path)
    metrics = assert_complete_run_dir(run_dir)
    assert "Test metrics" in result.stdout and "popularity" in result.stdout
    log = (run_dir / "train.log").read_text()
    assert "epoch 2/2" in log and "Test metrics" in log
    assert metrics["encoder"] == "attention"


def test_multirun_leaves_one_complete_run_dir_per_encoder(tmp_path):
    result = run_cli(["-m", "encoder=gru,lstm,attention", "debug=smoke"], tmp_path)
    assert result.returncode == 0, result.stderr
    job_dirs = sorted(p.parent for p in (tmp_path / "outputs" / "multirun").rglob(".hydra"))
    assert [d.name for d in job_dirs] == ["0", "1", "2"]
    encoders = [assert_complete_run_dir(d)["encoder"] for d in job_dirs]
    assert encoders == ["gru", "lstm", "attention"]


def test_ligr_block_trains_end_to_end_and_its_checkpoint_reloads(tmp_path):
    result = run_cli(["debug=smoke", "encoder.block=ligr", "encoder.ffn_size=32", "hydra.run.dir=ligr"], tmp_path)
    assert result.returncode == 0, result.stderr
    trained = assert_complete_run_dir(tmp_path / "ligr")
    weights = torch.load(tmp_path / "ligr" / "checkpoints" / "best.pt", map_location="cpu", weights_only=False)["model"]
    assert any("gate_attn" in key for key in weights) and any("ffn.up" in key for key in weights)
    result = run_cli(["run=ligr"], tmp_path, module="seqrec_cli.cli.eval")
    assert result.returncode == 0, result.stderr
    assert json.loads((tmp_path / "ligr" / "eval_test.json").read_text())["metrics"] == trained["test"]


def test_help_lists_groups_and_options(tmp_path):
    result = run_cli(["--help"], tmp_path)
    assert result.returncode == 0
    for word in (
        "dataset:",
        "encoder:",
        "attention, gru, gru_attention, lstm",
        "optimizer:",
        "adam, adamw, sgd",
        "debug:",
        "smoke",
    ):
        assert word in result.stdout, word


def test_cfg_job_prints_the_composed_config(tmp_path):
    result = run_cli(["encoder=gru", "optimizer.lr=0.01", "--cfg", "job"], tmp_path)
    assert result.returncode == 0
    assert "name: gru" in result.stdout and "lr: 0.01" in result.stdout
    assert not (tmp_path / "outputs").exists()


def test_same_seed_gives_the_same_metrics(tmp_path):
    # seed 0 is a seed like any other; deterministic algorithms on
    same = ["debug=smoke", "trainer.seed=0", "trainer.deterministic=true"]
    first = run_cli([*same, "hydra.run.dir=a"], tmp_path)
    second = run_cli([*same, "hydra.run.dir=b"], tmp_path)
    assert first.returncode == second.returncode == 0
    a = json.loads((tmp_path / "a" / "metrics.json").read_text())
    b = json.loads((tmp_path / "b" / "metrics.json").read_text())
    assert a["test"] == b["test"] and a["valid"] == b["valid"]


BAD_VALUES = [
    (["trainer.max_epoch=3"], ["Unknown config key trainer.max_epoch"]),
    (["trainer.max_epochs=three"], ["max_epochs", "three"]),
    (["encoder=transformer"], ["transformer", "Available options in 'encoder'", "lstm"]),
    (["optimizer.lr=-1"], ["optimizer.lr=-1.0", "> 0"]),
    (["model.max_len=0"], ["model.max_len=0", "> 0"]),
    (["encoder.dropout=1.0"], ["encoder.dropout", "[0, 1)"]),
    (["encoder.num_heads=3"], ["encoder.num_heads=3", "divisor"]),
    (["trainer.monitor=auc"], ["trainer.monitor", "ndcg@10"]),
    (["eval.ks=[0,10]"], ["eval.ks", "> 0"]),
    (["trainer.patience=-1"], ["trainer.patience=-1", ">= 0"]),
    (["trainer.batch_size=0"], ["trainer.batch_size=0", "> 0"]),
    (["trainer.profile_steps=-2"], ["trainer.profile_steps=-2", "integer"]),
    (["trainer.device=tpu"], ["trainer.device", "cuda:N"]),
    (["+trainer.foo=1"], ["Unknown config key trainer.foo"]),
    (["encoder.time_features=hours"], ["encoder.time_features", "gap"]),
    (["encoder.block=bert"], ["encoder.block='bert'", "ligr"]),
    (["encoder.block=ligr", "encoder.pre_norm=false"], ["encoder.pre_norm=False", "pre-LN only"]),
    (["encoder=gru", "encoder.block=ligr"], ["encoder.block='ligr'", "no attention blocks"]),
    (["encoder=gru_attention", "encoder.hidden_size=30", "encoder.num_heads=4"], ["encoder.num_heads=4", "divisor"]),
]


@pytest.mark.parametrize("args, words", BAD_VALUES)
def test_bad_values_are_one_sentence_naming_the_key(args, words):
    """The checks `seqrec-train` runs before anything is written, called in-process (the exit path
    itself is tested through the real CLI below)."""
    with pytest.raises(UserError) as info:
        compose(["debug=smoke", *args])
    message = str(info.value)
    assert "\n" not in message and all(w in message for w in words), message


@pytest.mark.parametrize(
    "args, words",
    [
        (["debug=smoke", "trainer.max_epoch=3"], ["Unknown config key trainer.max_epoch"]),  # Hydra composition
        (["debug=smoke", "optimizer.lr=-1"], ["optimizer.lr=-1.0", "> 0"]),  # our value checks
        (["dataset=csv", "dataset.path=missing.csv"], ["not found", "missing.csv"]),  # the data stage
        (["dataset=sequences", "dataset.path=s.txt", "encoder.time_features=gap"], ["time_features", "timestamps"]),
    ],
)
def test_bad_input_through_the_cli_is_one_sentence_exit_2_and_no_run_dir(tmp_path, args, words):
    result = run_cli(args, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr + result.stdout
    for word in words:
        assert word in " ".join(result.stderr.split()), (word, result.stderr)
    assert not list(tmp_path.rglob(".hydra")) and not list(tmp_path.rglob("metrics.json")), (
        "a refused run records no run"
    )


def test_csv_dataset_with_wrong_column_lists_the_columns_found(tmp_path):
    (tmp_path / "d.csv").write_text("user,item,ts\n1,1,1\n1,2,2\n")
    result = run_cli(["dataset=csv", "dataset.path=d.csv", "dataset.user_col=user", "dataset.item_col=item"], tmp_path)
    assert result.returncode == 2
    assert "'timestamp'" in result.stderr and "'ts'" in result.stderr
    assert "Traceback" not in result.stderr


def test_csv_dataset_trains(tmp_path):
    rows = ["user_id,item_id,timestamp"] + [f"{u},{(u * 3 + i) % 17},{i}" for u in range(40) for i in range(8)]
    (tmp_path / "d.csv").write_text("\n".join(rows) + "\n")
    result = run_cli(
        [
            "dataset=csv",
            "dataset.path=d.csv",
            "dataset.min_user_count=1",
            "dataset.min_item_count=1",
            "model.embedding_dim=8",
            "model.max_len=5",
            "trainer.max_epochs=1",
            "encoder=gru",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert_complete_run_dir(single_run_dir(tmp_path), epochs=1)


def test_sampled_losses_run_through_the_cli(tmp_path):
    result = run_cli(["-m", "debug=smoke", "trainer.max_epochs=1", "loss=sampled_softmax,bce,gbce,bpr"], tmp_path)
    assert result.returncode == 0, result.stderr
    jobs = sorted(p.parent for p in (tmp_path / "outputs" / "multirun").rglob("metrics.json"))
    assert [json.loads((j / "metrics.json").read_text())["loss"] for j in jobs] == [
        "sampled_softmax",
        "bce",
        "gbce",
        "bpr",
    ]


def test_benchmark_speed_reports_a_row_per_encoder(tmp_path):
    out = tmp_path / "speed.json"
    result = subprocess.run(
        [
            sys.executable,
            str(REPO / "scripts" / "benchmark.py"),
            "speed",
            "--dataset",
            "synthetic",
            "--path",
            "",
            "--encoders",
            "gru",
            "--epochs",
            "1",
            "--extra",
            "debug=smoke",
            "trainer.batch_size=16",
            "trainer.profile_steps=1",
            "--out",
            str(out),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    (row,) = json.loads(out.read_text())
    assert row["encoder"] == "gru" and row["sequences_per_s"] > 0 and row["peak_rss_gb"] > 0
    assert row["eval_s_per_pass"] > 0 and row["profile_wall_ms_per_step"] > 0 and row["profile_device_share"] is None


def test_profile_steps_write_the_operator_table_and_a_summary(tmp_path):
    result = run_cli(["debug=smoke", "trainer.profile_steps=2", "trainer.num_threads=1"], tmp_path)
    assert result.returncode == 0, result.stderr
    run_dir = single_run_dir(tmp_path)
    table = (run_dir / "profile.txt").read_text()
    assert "Self CPU" in table and "aten::" in table
    profile = json.loads((run_dir / "metrics.json").read_text())["profile"]
    assert profile["steps"] == 2 and profile["warmup_steps"] == 5 and profile["device"] == "cpu"
    assert profile["wall_ms_per_step"] > 0 and profile["host_op_ms_per_step"] > 0
    assert profile["device_share"] is None  # no GPU kernels to measure on a CPU
