"""A BERT4Rec run (objective=masked) through the real commands: seqrec-eval reproduces its test
metrics, seqrec-recommend answers, the exported bundle agrees with it, and a resume repeats an
uninterrupted run bit for bit."""

import csv
import json

import pytest

from conftest import run_cli
from serving_support import assert_same_top, bundle, trained_runs  # puts scripts/ on sys.path
from serve_parity import bundle_top, eager_top  # noqa: I001
from seqrec_cli.serving.engine import open_bundle


SMALL = ["debug=smoke", "trainer.patience=100"]


def history_rows(run_dir):
    """history.csv without its timing column (as the resume test of training/ compares it)."""
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    for row in rows:
        row.pop("seconds")
    return rows


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    return trained_runs(tmp_path_factory, ("bert4rec",))["bert4rec"]


def test_the_run_trained_a_mask_token_with_bidirectional_attention(run):
    from seqrec_cli.training.checkpoint import load_checkpoint

    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["config"]["objective"] == {"name": "masked", "mask_prob": 0.2}
    assert "mask_embedding" in best["model"]
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test"]["ndcg@10"] > 0


def test_eval_reproduces_the_test_metrics(run, tmp_path):
    result = run_cli([f"run={run}", f"out={tmp_path / 'eval.json'}"], tmp_path, module="seqrec_cli.cli.eval")
    assert result.returncode == 0, result.stderr[-2000:]
    evaluated = json.loads((tmp_path / "eval.json").read_text())
    assert evaluated["metrics"] == json.loads((run / "metrics.json").read_text())["test"]


def test_recommend_answers_and_the_exported_bundle_agrees(run, tmp_path, tmp_path_factory):
    result = run_cli(
        [f"run={run}", "users=[1,2]", "k=5", f"out={tmp_path / 'recs.csv'}"],
        tmp_path,
        module="seqrec_cli.cli.recommend",
    )
    assert result.returncode == 0, result.stderr[-2000:]
    rows = list(csv.DictReader((tmp_path / "recs.csv").open()))
    assert [r["user"] for r in rows] == ["1"] * 5 + ["2"] * 5
    path = bundle(tmp_path_factory, "bert4rec")
    users = [str(u) for u in open_bundle(path).histories.index][:100]
    eager, exported = eager_top(run, users), bundle_top(path, users)
    for user in users:
        assert_same_top(*eager[user], *exported[user])


@pytest.mark.slow
def test_a_resumed_bert4rec_run_repeats_an_uninterrupted_one_bit_for_bit(tmp_path):
    masked = [*SMALL, "objective=masked", "loss=sampled_softmax", "loss.sampling=mixed", "loss.n_negatives=8"]
    straight = run_cli([*masked, "trainer.max_epochs=4", "hydra.run.dir=straight"], tmp_path)
    assert straight.returncode == 0, straight.stderr[-2000:]
    assert run_cli([*masked, "trainer.max_epochs=2", "hydra.run.dir=resumed"], tmp_path).returncode == 0
    second = run_cli([*masked, "trainer.max_epochs=4", "trainer.resume=resumed"], tmp_path)
    assert second.returncode == 0, second.stderr[-2000:]
    a = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    b = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    for key in ("valid", "test", "best_epoch", "epochs_run"):
        assert a[key] == b[key], key
    assert history_rows(tmp_path / "straight") == history_rows(tmp_path / "resumed")
