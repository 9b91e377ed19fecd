"""After training, in-process: id lookups, top-K inference, reopening runs, report discovery, plots,
and the bad inputs of seqrec-eval / seqrec-recommend (the CLI exit path is in test_postrun_cli.py)."""

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from conftest import assert_valid_png
import torch

from seqrec_cli.training.checkpoint import load_checkpoint

from seqrec_cli.reporting import report
from seqrec_cli.config.apps import EvalAppConfig, RecommendAppConfig
from seqrec_cli.config.schema import EncoderConfig, ModelConfig
from seqrec_cli.data import load
from seqrec_cli.errors import UserError
from seqrec_cli.cli.eval import evaluate_run
from seqrec_cli.evaluation.inference import top_k
from seqrec_cli.evaluation.metrics import target_ranks
from seqrec_cli.models import build
from seqrec_cli.cli.recommend import read_ids_file, recommend
from seqrec_cli.reporting.runs import IdIndex, _relabel, open_run
from seqrec_cli.io.artifacts import plot_runs
from seqrec_cli.training.trainer import FitContext, fit

from data_support import tiny_train_config

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def tiny_model(n_items=12, name="gru", max_len=6):
    torch.manual_seed(0)
    return build(ModelConfig(embedding_dim=8, max_len=max_len), EncoderConfig(name=name, num_layers=1), n_items).eval()


# --- ids -----------------------------------------------------------------------------------------


def test_id_index_round_trips_integer_and_string_ids():
    ints = IdIndex(np.array([3, 10, 42], dtype=np.int64))
    assert ints.find([42, "3", " 10", 7, "x"]) == ([2, 0, 1], ["7", "x"])
    strings = IdIndex(np.array(["tt01", "tt02"]))
    assert strings.find(["tt02", "tt03"]) == ([1], ["tt03"])
    assert strings.get("tt01") == 0


def test_relabel_maps_items_to_the_model_numbering_and_drops_unknown_ones():
    from seqrec_cli.data.preprocess import build_interactions
    import pandas as pd

    # The other file knows items 5, 7, 9 (its own numbering 1, 2, 3); the model knows 7, 9, 11.
    events = pd.DataFrame({"user": [1, 1, 1, 2, 2], "item": [5, 7, 9, 9, 7], "time": [1, 2, 3, 1, 2]})
    inter, _ = build_interactions(events, 1, 1)
    model_ids = np.array([7, 9, 11])
    mapping = np.array([0, 0, 1, 2])  # padding, 5 -> unknown, 7 -> 1, 9 -> 2
    aligned, dropped = _relabel(inter, mapping, model_ids)
    assert dropped == 1
    histories = [aligned.items[aligned.offsets[u] : aligned.offsets[u + 1]].tolist() for u in range(aligned.n_users)]
    assert [[model_ids[i - 1] for i in h] for h in histories] == [[7, 9], [9, 7]]


# --- top-K ---------------------------------------------------------------------------------------


def test_top_k_never_returns_seen_items_and_orders_by_score():
    model = tiny_model()
    histories = [np.array([1, 2, 3]), np.array([4, 4, 5, 6, 7, 8, 9, 10])]
    top = top_k(model, histories, k=5, exclude=histories, max_len=6)
    for history, items, scores in zip(histories, top.items, top.scores):
        assert not set(items.tolist()) & set(history.tolist())
        assert (np.diff(scores) <= 0).all() and (items > 0).all()
    unmasked = top_k(model, histories, k=5, exclude=None, max_len=6)
    assert (unmasked.scores[:, 0] >= top.scores[:, 0]).all()


def test_top_k_breaks_ties_by_item_id_like_the_metrics():
    model = tiny_model()
    with torch.no_grad():
        model.item_embedding.weight.zero_()  # every item scores the same
    top = top_k(model, [np.array([2, 5])], k=4, exclude=[np.array([2, 5])], max_len=6)
    assert top.items[0].tolist() == [1, 3, 4, 6]


def test_top_k_position_is_the_metric_rank():
    model = tiny_model(n_items=30, name="attention")
    history = np.array([3, 8, 1, 17])
    top = top_k(model, [history], k=10, exclude=[history], max_len=6)
    x = torch.tensor([[3, 8, 1, 17, 0, 0]])
    scores = model.scores(model.last_hidden(x, torch.tensor([4]))).detach()
    for position, item in enumerate(top.items[0]):
        rank = target_ranks(
            scores.clone(), torch.tensor([item - 1]), torch.zeros(4, dtype=torch.long), torch.tensor(history - 1)
        )
        assert int(rank) == position


def test_top_k_returns_fewer_items_when_fewer_are_left():
    model = tiny_model(n_items=4)
    top = top_k(model, [np.array([1, 2, 3])], k=3, exclude=[np.array([1, 2, 3])], max_len=6)
    assert top.items[0].tolist() == [4, 0, 0] and np.isinf(top.scores[0, 1:]).all()


# --- a trained run in-process --------------------------------------------------------------------


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory):
    """A one-epoch run on tiny synthetic data, trained in-process (no CLI start)."""
    run_dir = tmp_path_factory.mktemp("run")
    cfg = tiny_train_config(max_epochs=2)
    splits, _ = load(cfg.dataset)
    torch.manual_seed(0)
    model = build(cfg.model, cfg.encoder, splits.data.n_items)
    rows = []
    fit(model, splits, cfg, torch.device("cpu"), FitContext(run_dir), on_epoch_end=rows.append)
    return run_dir, splits, rows


def test_fit_calls_on_epoch_end_with_each_history_row(trained_run):
    _, _, rows = trained_run
    assert [r["epoch"] for r in rows] == [1, 2]
    assert {"train_loss", "valid/ndcg@10", "lr", "seconds"} <= set(rows[0])


def test_open_run_restores_the_best_weights_and_original_ids(trained_run):
    run_dir, splits, _ = trained_run
    run = open_run(run_dir, "cpu")
    assert run.item_ids.tolist() == splits.data.item_ids.tolist()
    assert not run.model.training and run.cfg.encoder.name == "gru"
    best = load_checkpoint(run_dir / "checkpoints" / "best.pt")
    assert run.epoch == best["epoch"] and all(
        torch.equal(v, best["model"][k]) for k, v in run.model.state_dict().items()
    )


def test_recommendations_use_the_full_history_and_original_ids(trained_run, tmp_path):
    run_dir, splits, _ = trained_run
    data = splits.data
    users = [str(data.user_ids[0]), str(data.user_ids[5])]
    rows = recommend(RecommendAppConfig(run=str(run_dir), users=users, k=4, device="cpu", out=str(tmp_path / "r.csv")))
    assert len(rows) == 8 and [r["rank"] for r in rows[:4]] == [1, 2, 3, 4]
    for u in (0, 5):
        full = {data.item_ids[i - 1] for i in data.items[data.offsets[u] : data.offsets[u + 1]]}
        mine = [r["item"] for r in rows if r["user"] == data.user_ids[u]]
        assert len(mine) == 4 and not set(mine) & full  # validation and test items are "seen" too
    assert (tmp_path / "r.csv").read_text().splitlines()[0] == "user,rank,item,score"


def test_recommend_for_a_typed_history_and_unknown_ids(trained_run, caplog):
    run_dir, splits, _ = trained_run
    ids = splits.data.item_ids
    rows = recommend(
        RecommendAppConfig(run=str(run_dir), history=[str(ids[0]), "99999"], k=3, on_unknown="skip", device="cpu")
    )
    assert [r["user"] for r in rows] == ["history"] * 3 and ids[0] not in [r["item"] for r in rows]
    assert "99999" in caplog.text
    with pytest.raises(UserError, match=r"Unknown user ids 99999, abc \(the run's 60 users"):
        recommend(RecommendAppConfig(run=str(run_dir), users=["99999", "abc"], device="cpu"))
    with pytest.raises(UserError, match="Unknown item id 99999"):
        recommend(RecommendAppConfig(run=str(run_dir), history=["99999"], device="cpu"))


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"run": None}, "Name the run directory"),
        ({"run": "nowhere"}, "Run directory not found: nowhere"),
        ({"split": "train"}, "split='train': expected one of valid, test"),
        ({"k": [10, 0]}, "k=[10, 0]: expected a list of integers > 0"),
        ({"data": {"path": "missing.csv"}}, "Dataset file not found: missing.csv"),
    ],
)
def test_eval_bad_input_is_one_sentence(trained_run, changes, words):
    run_dir, _, _ = trained_run
    cfg = EvalAppConfig(run=str(run_dir), device="cpu")
    if "data" in changes:
        cfg.data.path = changes.pop("data")["path"]
    with pytest.raises(UserError) as exc:
        evaluate_run(replace(cfg, **changes))
    assert words in str(exc.value)


def test_eval_of_a_folder_without_best_pt_says_so(tmp_path):
    with pytest.raises(UserError, match="checkpoints/best.pt is missing"):
        evaluate_run(EvalAppConfig(run=str(tmp_path)))


@pytest.mark.parametrize(
    "changes, words",
    [
        ({"k": 0}, "k=0: expected an integer > 0"),
        ({"on_unknown": "ignore"}, "on_unknown='ignore': expected one of error, skip"),
        ({"users": []}, "Say whom to recommend for"),
        ({"users": [], "users_file": "none.txt"}, "Cannot read users_file none.txt"),
    ],
)
def test_recommend_bad_input_is_one_sentence(trained_run, changes, words):
    run_dir, _, _ = trained_run
    with pytest.raises(UserError) as exc:
        recommend(replace(RecommendAppConfig(run=str(run_dir), users=["1"], device="cpu"), **changes))
    assert words in str(exc.value)


def test_users_file_takes_the_first_field_and_skips_comments(tmp_path):
    path = tmp_path / "users.txt"
    path.write_text("# users\n1\n\n42,extra\n7\tx\n")
    assert read_ids_file(str(path)) == ["1", "42", "7"]


# --- report --------------------------------------------------------------------------------------


def fake_run(path: Path, lr: float, ndcg: float, complete: bool = True) -> None:
    (path / ".hydra").mkdir(parents=True)
    (path / ".hydra" / "config.yaml").write_text(
        f"dataset:\n  name: synthetic\nencoder:\n  name: gru\nloss:\n  name: ce\noptimizer:\n  name: adam\n  lr: {lr}\n"
        "trainer:\n  seed: 1\n  progress: false\n"
    )
    (path / "history.csv").write_text(
        f"epoch,train_loss,valid/ndcg@10,lr,seconds\n1,4.0,{ndcg / 2},{lr},1.0\n2,3.5,{ndcg},{lr},1.0\n"
    )
    (path / "checkpoints").mkdir()
    if complete:
        metrics = {
            "best_epoch": 2,
            "epochs_run": 2,
            "valid": {"ndcg@10": ndcg},
            "test": {"ndcg@10": ndcg, "mrr": 0.1},
            "popularity": {"test": {"ndcg@10": 0.05}},
            "encoder": "gru",
            "loss": "ce",
            "total_seconds": 3.0,
        }
        (path / "metrics.json").write_text(json.dumps(metrics))


def test_report_discovers_every_run_of_a_multirun_dir(tmp_path):
    sweep = tmp_path / "multirun" / "2026-11-23" / "10-00-00"
    for job in range(12):
        fake_run(sweep / str(job), lr=0.001 * (job + 1), ndcg=0.01 * job, complete=job != 11)
    (sweep / "multirun.yaml").write_text("hydra: {}\n")
    single = tmp_path / "single"
    fake_run(single, lr=0.5, ndcg=0.3)
    found = report.find_runs([tmp_path / "multirun", single])
    assert [p.name for p in found] == [str(j) for j in range(12)] + ["single"]  # natural order: 10 after 9

    rows = report.build_report([sweep, single], tmp_path / "out")
    assert [r["run"] for r in rows][:3] == ["10-00-00/0", "10-00-00/1", "10-00-00/2"] and rows[-1]["run"] == "single"
    assert rows[11]["status"] == "incomplete" and rows[11]["epochs_run"] == 2 and rows[0]["status"] == "done"
    assert rows[3]["optimizer.lr"] == pytest.approx(0.004) and rows[3]["test/ndcg@10"] == pytest.approx(0.03)
    assert "trainer.progress" not in rows[0]  # same everywhere, and never explains a result
    csv_lines = (tmp_path / "out" / "report.csv").read_text().splitlines()
    assert len(csv_lines) == 14 and csv_lines[0].startswith("run,status,")
    if (tmp_path / "out" / "curves.png").exists():
        assert_valid_png(tmp_path / "out" / "curves.png")


def test_report_shows_settings_that_differ_between_runs(tmp_path):
    fake_run(tmp_path / "a", lr=0.1, ndcg=0.2)
    fake_run(tmp_path / "b", lr=0.1, ndcg=0.3)
    cfg = tmp_path / "b" / ".hydra" / "config.yaml"
    cfg.write_text(cfg.read_text().replace("seed: 1", "seed: 2"))
    runs = [report.load_run(p, p.name) for p in report.find_runs([tmp_path])]
    assert report.varying_params(runs) == ["trainer.seed"]


def test_report_with_no_runs_says_where_it_looked(tmp_path):
    with pytest.raises(UserError, match="No runs found under"):
        report.build_report([tmp_path], tmp_path)


def test_plot_runs_draws_a_valid_png(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [{"epoch": e, "train_loss": 5 - e, "valid/ndcg@10": 0.1 * e} for e in range(1, 5)]
    assert plot_runs(tmp_path / "c.png", {"a": rows, "b": rows[:2]}, "valid/ndcg@10")
    assert_valid_png(tmp_path / "c.png")
