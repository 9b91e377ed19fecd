"""Item features end to end through the real commands: train on the bundled default with
`model.item_features=true`, evaluate, recommend items the model never saw, refuse a resume with
changed features, and the bad-input sentences."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
import torch

from conftest import REPO, run_cli

QUICK = ["trainer.max_epochs=1", "trainer.limit_batches=3", "trainer.progress=false", "model.embedding_dim=16"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    work = tmp_path_factory.mktemp("features")
    args = [*QUICK, "model.item_features=true", "model.id_dropout=0.3", "dataset.split.cold_items=0.2"]
    result = run_cli([*args, "hydra.run.dir=run"], work)
    assert result.returncode == 0, result.stderr[-3000:]
    return work, work / "run"


@pytest.mark.slow
def test_train_reports_warm_cold_beyond_and_carries_vocabularies(trained):
    work, run = trained
    metrics = json.loads((run / "metrics.json").read_text())
    groups = metrics["warm_cold"]
    assert {"test/warm/ndcg@10", "popularity/test/cold/hr@10", "feature_baseline/test/cold/hr@10"} <= set(groups)
    warm, cold = groups["test/warm/targets"], groups["test/cold/targets"]
    assert warm + cold == json.loads((run / "data_summary.json").read_text())["split"]["test_users"]
    assert cold > 0 and "test/cold/ndcg@10_se" in groups and "valid/cold/ndcg@10" in groups
    assert {"coverage@10", "novelty@10", "diversity@10", "avg_popularity@10"} <= set(metrics["beyond"]["test"]["model"])
    assert "hr@10" in metrics["feature_baseline"]["test"]
    best = torch.load(run / "checkpoints" / "best.pt", weights_only=True)
    assert best["item_features"]["multi_valued"]["genres"][:2] == ["Action", "Adventure"]
    assert "year" in best["item_features"]["numeric"]
    summary = json.loads((run / "data_summary.json").read_text())
    assert summary["item_features"]["items_missing_from_table"] == 0
    assert summary["item_features"]["events_missing_from_table"] == 0
    assert summary["split"]["cold_items"] > 0


@pytest.mark.slow
def test_eval_reproduces_the_test_metrics_with_groups(trained):
    work, run = trained
    result = run_cli([f"run={run}"], work, module="seqrec_cli.cli.eval")
    assert result.returncode == 0, result.stderr[-3000:]
    out = json.loads((run / "eval_test.json").read_text())
    metrics = json.loads((run / "metrics.json").read_text())
    assert out["metrics"] == metrics["test"]
    assert out["warm_cold"] == {k: v for k, v in metrics["warm_cold"].items() if "test/" in k}


@pytest.mark.slow
def test_recommend_new_items_from_an_item_table(trained):
    work, run = trained
    table = work / "new_items.csv"
    table.write_text("item_id,genres,year\n900001,Comedy|Romance,2018\n900002,Horror,2018\n1,Comedy,1995\n")
    out = work / "recs.csv"
    args = [f"run={run}", "users=[1]", "k=3", f"item_table={table}", "candidates=in_table", f"out={out}"]
    result = run_cli(args, work, module="seqrec_cli.cli.recommend")
    assert result.returncode == 0, result.stderr[-3000:]
    items = [line.split(",")[2] for line in out.read_text().splitlines()[1:]]
    assert set(items) <= {"900001", "900002", "1"} and {"900001", "900002"} <= set(items)


@pytest.mark.slow
def test_resume_refuses_changed_features(trained):
    work, run = trained
    args = [*QUICK, "model.item_features=true", "model.id_dropout=0.3", "dataset.split.cold_items=0.2"]
    result = run_cli([*args, "model.feature_combine=concat", f"trainer.resume={run}"], work)
    assert result.returncode == 2
    assert "model.feature_combine" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args, expected",
    [
        (["model.item_repr=features", "dataset=synthetic"], "needs item features, and none are configured"),
        (
            ["model.item_features=true", "dataset.item_features.path=missing.csv", "dataset.item_features.numeric=[x]"],
            "Item table not found",
        ),
    ],
)
def test_bad_input_is_one_sentence(tmp_path, args, expected):
    result = run_cli([*QUICK, *args], tmp_path)
    assert result.returncode == 2, result.stderr[-2000:]
    assert expected in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "outputs").exists() or not list((tmp_path / "outputs").rglob("metrics.json"))


EXAMPLE_TRAIN = [
    "dataset=csv",
    "dataset.path=example/events.csv",
    "dataset.item_features.path=example/items.csv",
    "dataset.item_features.categorical=[brand]",
    "dataset.item_features.multi_valued=[tags]",
    "dataset.item_features.multi_sep=|",
    "dataset.item_features.numeric=[price]",
    "dataset.item_features.log_numeric=[price]",
    "dataset.item_features.vectors=example/vectors.npy",
    "dataset.item_features.vectors_ids=example/vector_ids.txt",
    "model.item_features=true",
    "model.id_dropout=0.3",
]


@pytest.mark.slow
def test_readme_generic_table_example(tmp_path):
    """The README's example: made by scripts/make_feature_example.py, trained, evaluated, and
    new items recommended."""
    made = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "make_feature_example.py"), "--out", "example"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert made.returncode == 0, made.stderr
    result = run_cli(
        [*EXAMPLE_TRAIN, "trainer.max_epochs=2", "trainer.progress=false", "hydra.run.dir=example/run"], tmp_path
    )
    assert result.returncode == 0, result.stderr[-3000:]
    summary = json.loads((tmp_path / "example/run/data_summary.json").read_text())
    assert summary["item_features"]["vector_width"] == 8
    assert summary["item_features"]["categorical"] == {"brand": 4}
    evaluated = run_cli(["run=example/run"], tmp_path, module="seqrec_cli.cli.eval")
    assert evaluated.returncode == 0, evaluated.stderr[-3000:]
    args = ["run=example/run", "users=[u1]", "item_table=example/new_items.csv", "candidates=in_table", "k=5"]
    args.append("out=example/recs.csv")
    recommended = run_cli(args, tmp_path, module="seqrec_cli.cli.recommend")
    assert recommended.returncode == 0, recommended.stderr[-3000:]
    rows = (tmp_path / "example/recs.csv").read_text().splitlines()[1:]
    assert len(rows) == 5 and all(9001 <= int(r.split(",")[2]) <= 9010 for r in rows)
