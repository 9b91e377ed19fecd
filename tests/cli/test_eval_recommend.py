"""End-to-end: `seqrec-eval`, `seqrec-recommend` and `seqrec-report` through the real CLIs, on one
smoke run made once for the whole module."""

import csv
import json
from pathlib import Path

import pytest

from conftest import assert_valid_png, run_cli
from seqrec_cli.config.schema import SyntheticConfig
from seqrec_cli.data.synthetic import generate_events
from seqrec_cli.training.checkpoint import load_checkpoint


def files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file() and ".cache" not in p.parts}


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    """A folder holding `smoke/`, a finished `seqrec-train debug=smoke` run."""
    root = tmp_path_factory.mktemp("postrun")
    result = run_cli(["debug=smoke", "hydra.run.dir=smoke"], root)
    assert result.returncode == 0, result.stderr
    return root


def test_eval_reproduces_the_test_metrics_and_writes_only_its_json(work):
    before = files_under(work)
    result = run_cli(["run=smoke"], work, module="seqrec_cli.cli.eval")
    assert result.returncode == 0, result.stderr
    assert files_under(work) - before == {"smoke/eval_test.json"} and before <= files_under(work)
    evaluated = json.loads((work / "smoke" / "eval_test.json").read_text())
    trained = json.loads((work / "smoke" / "metrics.json").read_text())
    assert evaluated["metrics"] == trained["test"]
    assert evaluated["popularity"] == trained["popularity"]["test"]
    assert evaluated["users"] == 200 and evaluated["best_epoch"] == trained["best_epoch"]
    assert "Test metrics" in result.stdout and "popularity" in result.stdout


def test_eval_on_another_file_prepared_the_same_way_at_other_cutoffs(work):
    # The smoke run's own events written out as a CSV with the run's reader columns: evaluating on
    # that file must give exactly the run's validation metrics.
    synthetic = load_checkpoint(work / "smoke" / "checkpoints" / "best.pt")["config"]["dataset"]["synthetic"]
    events = generate_events(SyntheticConfig(**synthetic))
    events.rename(columns={"user": "u", "item": "i", "time": "t"}).to_csv(work / "other.csv", index=False)
    result = run_cli(
        [
            "run=smoke",
            "split=valid",
            "k=[1,10,50]",
            "data.path=other.csv",
            "data.user_col=u",
            "data.item_col=i",
            "data.time_col=t",
        ],
        work,
        module="seqrec_cli.cli.eval",
    )
    assert result.returncode == 0, result.stderr
    evaluated = json.loads((work / "smoke" / "eval_valid_other.json").read_text())
    trained = json.loads((work / "smoke" / "metrics.json").read_text())
    assert set(evaluated["metrics"]) == {"hr@1", "hr@10", "hr@50", "ndcg@1", "ndcg@10", "ndcg@50", "mrr"}
    for key in ("hr@1", "ndcg@10", "mrr"):
        assert evaluated["metrics"][key] == trained["valid"][key]
    assert evaluated["metrics"]["hr@50"] >= evaluated["metrics"]["hr@10"]
    assert evaluated["dataset"].endswith("other.csv") and evaluated["unknown_item_events"] == 0


def test_eval_of_a_missing_run_is_one_sentence_and_exit_2(work):
    result = run_cli(["run=nowhere"], work, module="seqrec_cli.cli.eval")
    assert result.returncode == 2
    assert "Run directory not found: nowhere" in result.stderr and "Traceback" not in result.stderr


def test_recommend_writes_original_ids_and_skips_unknown_users(work):
    before = files_under(work)
    result = run_cli(
        ["run=smoke", "users=[3,1,99999]", "history=[5,6]", "k=5", "on_unknown=skip", "out=recs.csv"],
        work,
        module="seqrec_cli.cli.recommend",
    )
    assert result.returncode == 0, result.stderr
    assert files_under(work) - before == {"recs.csv"}
    assert "Skipping unknown user id 99999" in result.stderr
    rows = list(csv.DictReader((work / "recs.csv").open()))
    assert [r["user"] for r in rows] == ["3"] * 5 + ["1"] * 5 + ["history"] * 5
    assert [int(r["rank"]) for r in rows[:5]] == [1, 2, 3, 4, 5]
    assert not {"5", "6"} & {r["item"] for r in rows if r["user"] == "history"}
    events = generate_events(
        SyntheticConfig(**load_checkpoint(work / "smoke" / "checkpoints" / "best.pt")["config"]["dataset"]["synthetic"])
    )
    seen_by_3 = set(events.loc[events["user"] == 3, "item"].astype(str))  # every event, incl. valid/test
    assert not seen_by_3 & {r["item"] for r in rows if r["user"] == "3"}
    assert "Top-5 recommendations" in result.stdout


def test_recommend_unknown_user_is_one_sentence_and_exit_2(work):
    result = run_cli(["run=smoke", "users=[1,99999]"], work, module="seqrec_cli.cli.recommend")
    assert result.returncode == 2
    assert "Unknown user id 99999" in result.stderr and "on_unknown=skip" in result.stderr
    assert "Traceback" not in result.stderr


def test_report_writes_a_table_csv_and_valid_pngs(work):
    result = run_cli([str(work / "smoke"), "--out", "rep"], work, module="seqrec_cli.reporting.report")
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((work / "rep" / "report.csv").open()))
    metrics = json.loads((work / "smoke" / "metrics.json").read_text())
    assert len(rows) == 1 and rows[0]["run"] == "smoke" and rows[0]["encoder.name"] == "attention"
    assert float(rows[0]["test/ndcg@10"]) == pytest.approx(metrics["test"]["ndcg@10"])
    assert "smoke" in result.stdout and "attention" in result.stdout
    pytest.importorskip("matplotlib")
    assert_valid_png(work / "rep" / "curves.png")
    assert_valid_png(work / "smoke" / "curves.png")  # each training run draws its own


def test_report_of_an_empty_folder_exits_2(tmp_path):
    result = run_cli([str(tmp_path)], tmp_path, module="seqrec_cli.reporting.report")
    assert result.returncode == 2 and "No runs found" in result.stderr and "Traceback" not in result.stderr


def test_options_model_trains_and_eval_and_recommend_reuse_its_gaps_and_user_vectors(tmp_path):
    # gru_attention + time gaps + user vectors through train, eval (same test metrics, so the
    # checkpoint's user ids and the gap buckets are rebuilt exactly) and recommend.
    result = run_cli(
        [
            "debug=smoke",
            "encoder=gru_attention",
            "encoder.time_features=gap",
            "model.user_embedding=true",
            "trainer.max_epochs=2",
            "hydra.run.dir=opt",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    ckpt = load_checkpoint(tmp_path / "opt" / "checkpoints" / "best.pt")
    assert len(ckpt["user_ids"]) + 1 == ckpt["model"]["user_embedding.weight"].shape[0]
    assert "gap_embedding.weight" in ckpt["model"]
    result = run_cli(["run=opt"], tmp_path, module="seqrec_cli.cli.eval")
    assert result.returncode == 0, result.stderr
    evaluated = json.loads((tmp_path / "opt" / "eval_test.json").read_text())
    assert evaluated["metrics"] == json.loads((tmp_path / "opt" / "metrics.json").read_text())["test"]
    result = run_cli(["run=opt", "users=[1,2]", "k=3"], tmp_path, module="seqrec_cli.cli.recommend")
    assert result.returncode == 0, result.stderr
    result = run_cli(["run=opt", "history=[1,2]"], tmp_path, module="seqrec_cli.cli.recommend")
    assert result.returncode == 2 and "time gaps" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize("module", ["seqrec_cli.cli.eval", "seqrec_cli.cli.recommend"])
def test_an_added_key_is_one_sentence_and_exit_2_like_seqrec_train(tmp_path, module):
    # The same conversion as seqrec-train's (config.to_typed); it used to end in an OmegaConf traceback.
    result = run_cli(
        ["run=smoke", "users=[1]", "+foo=1"] if module.endswith("recommend") else ["run=smoke", "+foo=1"],
        tmp_path,
        module=module,
    )
    assert result.returncode == 2, result.stderr
    assert "Unknown config key foo" in result.stderr and "Traceback" not in result.stderr


def test_hydra_job_chdir_keeps_relative_data_paths_working(tmp_path):
    # With hydra.job.chdir=true the job runs inside its run directory; dataset.path=events.csv still
    # names the file beside where the command was typed (it used to be "Dataset file not found").
    events = generate_events(SyntheticConfig(n_users=200, n_items=60, mean_length=12))
    events.to_csv(tmp_path / "events.csv", index=False)
    result = run_cli(
        [
            "debug=smoke",
            "dataset=csv",
            "dataset.path=events.csv",
            "dataset.user_col=user",
            "dataset.item_col=item",
            "dataset.time_col=time",
            "hydra.job.chdir=true",
            "hydra.run.dir=chd",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "chd" / "metrics.json").is_file()
    ckpt = load_checkpoint(tmp_path / "chd" / "checkpoints" / "best.pt")
    assert ckpt["config"]["dataset"]["path"] == str(tmp_path / "events.csv")  # recorded where it was found


def test_run_last_names_the_newest_trained_run(tmp_path):
    assert run_cli(["debug=smoke", "trainer.max_epochs=1"], tmp_path).returncode == 0
    result = run_cli(["run=last", "k=[5]"], tmp_path, module="seqrec_cli.cli.eval")
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "outputs").rglob("eval_test.json"))) == 1
    empty = run_cli(["run=last"], tmp_path / "outputs", module="seqrec_cli.cli.eval")
    assert empty.returncode == 2 and "run=last found no trained run" in " ".join(empty.stderr.split())
