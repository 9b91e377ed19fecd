"""Warm / cold figures under their flat names (`test/cold/ndcg@10`, ...) through the real
commands: a smoke run with an item table and the item hold-out, then seqrec-eval and
seqrec-report on it; and the events whose items the table lacks, counted in data_summary.json."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest

from conftest import run_cli
from seqrec_cli import api
from seqrec_cli import data as data_module

IN_TABLE = 55  # items 1..55 of the smoke data's 60 are in the table; 56..60 are not
ARGS = [
    "debug=smoke",
    "trainer.max_epochs=1",
    "dataset.item_features.path=items.csv",
    "dataset.item_features.categorical=[brand]",
    "model.item_features=true",
    "dataset.split.cold_items=0.2",
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("warm_cold")
    rows = "".join(f"{i},b{i % 4}\n" for i in range(1, IN_TABLE + 1))
    (work / "items.csv").write_text("item_id,brand\n" + rows)
    result = run_cli([*ARGS, "hydra.run.dir=run"], work)
    assert result.returncode == 0, result.stderr[-3000:]
    return work, work / "run", result.stdout


def test_train_writes_the_flat_names_and_shows_them(trained):
    work, run, stdout = trained
    metrics = json.loads((run / "metrics.json").read_text())
    groups = metrics["warm_cold"]
    for split in ("valid", "test"):
        for name in (f"{split}/warm/ndcg@10", f"{split}/cold/hr@10", f"{split}/cold/ndcg@10_se"):
            assert {name, f"popularity/{name}", f"feature_baseline/{name}"} <= set(groups)
    assert groups["test/warm/targets"] + groups["test/cold/targets"] == 200 and groups["test/cold/targets"] > 0
    assert "cold_start" not in metrics  # one form only: the flat names
    for text in (stdout, (run / "train.log").read_text()):  # the console table, and its copy in train.log
        assert "test/cold/ndcg@10" in text and f"{groups['test/cold/ndcg@10']:.4f}" in text
        assert "valid/warm/targets" in text


def test_data_summary_counts_the_events_whose_items_the_table_lacks(trained):
    work, run, _ = trained
    summary = json.loads((run / "data_summary.json").read_text())["item_features"]
    splits, _ = data_module.load(api.compose(ARGS).dataset)  # the run's events, as it read them
    original = splits.data.item_ids[splits.data.items - 1].astype(np.int64)
    assert summary["items_missing_from_table"] == 5
    assert summary["events_missing_from_table"] == int((original > IN_TABLE).sum()) > 0


def test_eval_shows_and_reproduces_the_warm_cold_figures(trained):
    work, run, _ = trained
    result = run_cli([f"run={run}"], work, module="seqrec_cli.cli.eval")
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads((run / "eval_test.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert out["warm_cold"] == {k: v for k, v in metrics["warm_cold"].items() if "test/" in k}
    assert "test/cold/ndcg@10" in result.stdout and f"{out['warm_cold']['test/cold/hr@10']:.4f}" in result.stdout


def test_report_shows_the_warm_cold_group(trained):
    work, run, _ = trained
    result = run_cli([str(run), "--out", "rep"], work, module="seqrec_cli.reporting.report", env={"COLUMNS": "100"})
    assert result.returncode == 0, result.stderr[-3000:]
    groups = json.loads((run / "metrics.json").read_text())["warm_cold"]
    row = [line for line in result.stdout.splitlines() if line.split() and line.split()[0] == "run"][
        -1
    ]  # not the header
    assert f"{groups['test/cold/ndcg@10']:.4f}" in row and f"{groups['test/warm/ndcg@10']:.4f}" in row
    assert max(len(line) for line in result.stdout.splitlines()) <= 100
    (csv_row,) = csv.DictReader((work / "rep" / "report.csv").open())
    assert int(csv_row["test/cold/targets"]) == groups["test/cold/targets"]
    assert float(csv_row["feature_baseline/test/cold/hr@10"]) == pytest.approx(
        groups["feature_baseline/test/cold/hr@10"]
    )
