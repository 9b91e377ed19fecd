"""`seqrec-report` on fake run directories (no training): layout on narrow terminals, which folders
count as runs, the tags column. Each test runs the real CLI (it imports no torch, so it is fast)."""

import csv
import json
from dataclasses import asdict
from pathlib import Path

import pytest
import yaml

from conftest import run_cli
from seqrec_cli.config.schema import TrainConfig


def fake_run(
    path: Path, i: int, tags: list[str] | None = None, finished: bool = True, extra: dict | None = None, **settings
) -> dict:
    """A run directory as seqrec-train leaves it: .hydra/config.yaml, history.csv, metrics.json
    (with `extra` sections, e.g. the warm / cold figures)."""
    config = asdict(TrainConfig())
    for dotted, value in settings.items():
        *parents, leaf = dotted.split("__")
        node = config
        for part in parents:
            node = node[part]
        node[leaf] = value
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "config.yaml").write_text(yaml.safe_dump(config))
    (path / "history.csv").write_text("epoch,train_loss,valid/ndcg@10\n1,4.0,0.1\n2,3.5,0.12\n")
    metrics = {
        "monitor": "valid/ndcg@10",
        "objective": 0.1 + i / 1000,
        "best_epoch": 2,
        "epochs_run": 2,
        "valid": {"ndcg@10": 0.1 + i / 1000, "hr@10": 0.2, "mrr": 0.05},
        "test": {"ndcg@10": 0.0901 + i / 1000, "hr@10": 0.1801 + i / 1000, "mrr": 0.0401 + i / 1000},
        "popularity": {"test": {"ndcg@10": 0.02}},
        "encoder": config["encoder"]["name"],
        "loss": config["loss"]["name"],
        "n_params": 1000,
        "device": "cpu",
        "total_seconds": 123.4 + i,
        "tags": tags or [],
        **(extra or {}),
    }
    if finished:
        (path / "metrics.json").write_text(json.dumps(metrics))
    return metrics


def sixteen_run_sweep(root: Path) -> Path:
    """A sweep of 16 jobs varying six settings, like `seqrec-train -m` over a grid."""
    sweep = root / "2026-12-03_10-00-00"
    for i in range(16):
        fake_run(
            sweep / str(i),
            i,
            optimizer__lr=[1e-3, 3e-4][i % 2],
            encoder__dropout=[0.2, 0.5][i // 2 % 2],
            model__embedding_dim=[64, 128][i // 4 % 2],
            trainer__batch_size=[32, 128][i // 8],
            trainer__seed=42 + i % 3,
            dataset__synthetic__n_users=1000 + 7 * i,
            loss__name=["ce", "sampled_softmax"][i % 2],
            encoder__num_layers=2 + i % 2,
        )
    return sweep


@pytest.mark.parametrize("width", [80, 100])
def test_sixteen_runs_stay_readable_on_a_narrow_terminal(tmp_path, width):
    # Before: rich squeezed ~16 columns into the width, so every cell read "…" and headers vanished.
    sweep = sixteen_run_sweep(tmp_path)
    result = run_cli(
        [str(sweep), "--out", "rep"], tmp_path, module="seqrec_cli.reporting.report", env={"COLUMNS": str(width)}
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= width
    assert "…" not in result.stdout
    for i in range(16):
        row = next(line for line in lines if line.split() and line.split()[0] == str(i))
        assert f"{0.0901 + i / 1000:.4f}" in row and f"{0.1801 + i / 1000:.4f}" in row  # test ndcg@10, hr@10
    assert "ndcg@10" in result.stdout and "mrr" in result.stdout
    assert "left out to fit" in result.stdout  # the note says what was dropped
    assert "warm" not in result.stdout and "cold" not in result.stdout  # no run has warm / cold figures
    assert "runs in 2026-12-03_10-00-00/" in result.stdout  # the shared folder, once
    rows = list(csv.DictReader((tmp_path / "rep" / "report.csv").open()))
    assert len(rows) == 16 and {"optimizer.lr", "encoder.dropout", "trainer.seed"} <= set(rows[0])  # CSV keeps all


def test_a_wide_terminal_shows_every_column_without_a_note(tmp_path):
    sweep = sixteen_run_sweep(tmp_path)
    result = run_cli(
        [str(sweep), "--out", "rep"], tmp_path, module="seqrec_cli.reporting.report", env={"COLUMNS": "250"}
    )
    assert result.returncode == 0, result.stderr
    assert "left out" not in result.stdout and "dropout" in result.stdout and "seed" in result.stdout


def test_runs_rejected_before_training_are_not_runs(tmp_path):
    # A job refused at validation leaves .hydra/ (+ error.json, train.log) and nothing else; it used
    # to show as an `incomplete` row and add its refused value as a setting column.
    sweep = tmp_path / "sweep"
    fake_run(sweep / "0", 0)
    fake_run(sweep / "1", 1, optimizer__lr=3e-4)
    fake_run(sweep / "2", 2, optimizer__lr=-1.0, trainer__patience=999, finished=False)
    (sweep / "2" / "history.csv").unlink()
    (sweep / "2" / "error.json").write_text(json.dumps({"error": "Invalid config value optimizer.lr=-1.0"}))
    (sweep / "3").mkdir()
    (sweep / "3" / "error.json").write_text(json.dumps({"error": "Dataset file not found"}))
    (sweep / "3" / "train.log").write_text("error\n")
    # A run that trained an epoch and then failed is a run: listed, marked failed.
    fake_run(sweep / "4", 4, finished=False)
    (sweep / "4" / "error.json").write_text(json.dumps({"error": "non-finite loss"}))
    result = run_cli(
        [str(sweep), "--out", "rep"], tmp_path, module="seqrec_cli.reporting.report", env={"COLUMNS": "200"}
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "rep" / "report.csv").open()))
    assert [(r["run"], r["status"]) for r in rows] == [("sweep/0", "done"), ("sweep/1", "done"), ("sweep/4", "failed")]
    assert "trainer.patience" not in rows[0] and "patience" not in result.stdout
    assert "Skipped 2 folders where no training started" in result.stderr


def test_only_rejected_runs_is_no_runs(tmp_path):
    (tmp_path / "r" / ".hydra").mkdir(parents=True)
    (tmp_path / "r" / ".hydra" / "config.yaml").write_text("optimizer: {lr: -1}\n")
    result = run_cli([str(tmp_path / "r")], tmp_path, module="seqrec_cli.reporting.report")
    assert result.returncode == 2 and "No runs found" in result.stderr and "Traceback" not in result.stderr


def test_tags_get_a_column_and_a_csv_field(tmp_path):
    fake_run(tmp_path / "runs" / "a", 0, tags=["baseline"])
    fake_run(tmp_path / "runs" / "b", 1, tags=["ablation", "no-dropout"], encoder__dropout=0.0)
    result = run_cli(
        [str(tmp_path / "runs"), "--out", "rep"], tmp_path, module="seqrec_cli.reporting.report", env={"COLUMNS": "160"}
    )
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((tmp_path / "rep" / "report.csv").open()))
    assert [r["tags"] for r in rows] == ["baseline", "ablation,no-dropout"]
    assert "tags" in result.stdout and "ablation,no-dropout" in result.stdout


def flat_groups(i: int) -> dict:
    """The `warm_cold` section of a metrics.json (evaluation/warm_cold.py), model and popularity."""
    return {
        "warm_cold": {
            "test/warm/targets": 150 + i,
            "test/warm/ndcg@10": 0.2101 + i / 1000,
            "test/warm/hr@10": 0.4101 + i / 1000,
            "test/cold/targets": 50 - i,
            "test/cold/ndcg@10": 0.0301 + i / 1000,
            "test/cold/hr@10": 0.0601 + i / 1000,
            "popularity/test/cold/ndcg@10": 0.0001,
        }
    }


def nested_groups(i: int) -> dict:
    """The same figures as a run written before the flat names stored them (`cold_start`)."""
    flat = flat_groups(i)["warm_cold"]
    model = {g: {"count": flat[f"test/{g}/targets"]} for g in ("warm", "cold")}
    for g in ("warm", "cold"):
        model[g].update({m: flat[f"test/{g}/{m}"] for m in ("ndcg@10", "hr@10")})
    popularity = {
        "warm": {"count": model["warm"]["count"]},
        "cold": {"count": model["cold"]["count"], "ndcg@10": 0.0001},
    }
    return {"cold_start": {"test": {"model": model, "popularity": popularity}}}


def test_warm_cold_columns_for_new_and_old_runs(tmp_path):
    fake_run(tmp_path / "runs" / "flat", 0, extra=flat_groups(0))
    fake_run(tmp_path / "runs" / "nested", 1, extra=nested_groups(1), encoder__dropout=0.0)
    fake_run(tmp_path / "runs" / "plain", 2, encoder__dropout=0.1)
    result = run_cli(
        [str(tmp_path / "runs"), "--out", "rep"], tmp_path, module="seqrec_cli.reporting.report", env={"COLUMNS": "160"}
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "warm" in result.stdout and "cold" in result.stdout and "targets" in result.stdout
    for name, i in (("flat", 0), ("nested", 1)):
        row = next(line for line in lines if line.split() and line.split()[0] == name)
        assert f"{0.0301 + i / 1000:.4f}" in row and f"{0.4101 + i / 1000:.4f}" in row and f" {50 - i} " in row
    rows = {r["run"]: r for r in csv.DictReader((tmp_path / "rep" / "report.csv").open())}
    assert float(rows["runs/nested"]["test/cold/ndcg@10"]) == pytest.approx(0.0311)
    assert float(rows["runs/flat"]["popularity/test/cold/ndcg@10"]) == pytest.approx(0.0001)
    assert rows["runs/nested"]["test/cold/targets"] == "49" and rows["runs/plain"]["test/cold/targets"] == ""


@pytest.mark.parametrize("width", [80, 100])
def test_warm_cold_columns_fit_a_narrow_terminal(tmp_path, width):
    sweep = tmp_path / "sweep"
    for i in range(16):
        fake_run(sweep / str(i), i, extra=flat_groups(i), optimizer__lr=[1e-3, 3e-4][i % 2], model__id_dropout=i / 20)
    result = run_cli(
        [str(sweep), "--out", "rep"], tmp_path, module="seqrec_cli.reporting.report", env={"COLUMNS": str(width)}
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert max(len(line) for line in lines) <= width and "…" not in result.stdout
    for i in range(16):
        row = next(line for line in lines if line.split() and line.split()[0] == str(i))
        assert f"{0.0901 + i / 1000:.4f}" in row and f"{0.0301 + i / 1000:.4f}" in row  # test and cold ndcg@10
    assert "left out to fit" in result.stdout
