"""Experiment tracking: metric naming, the missing-package message, MLflow (local SQLite store) and
TensorBoard round trips. Tests needing a package skip when it is not installed."""

import importlib.util
import json

import pytest

from conftest import run_cli, single_run_dir
from seqrec_cli.config.schema import LoggerConfig
from seqrec_cli.training.tracking import NullTracker, epoch_metrics, final_metrics, mlflow_key, open_tracker

HAS_MLFLOW = importlib.util.find_spec("mlflow") is not None
HAS_TENSORBOARD = importlib.util.find_spec("tensorboard") is not None

ROW = {"epoch": 2, "train_loss": 4.1, "valid/ndcg@10": 0.15, "valid/hr@10": 0.3, "lr": 0.001, "seconds": 0.5}
METRICS = {
    "monitor": "valid/ndcg@10",
    "objective": 0.15,
    "best_epoch": 2,
    "stopped_early": False,
    "valid": {"ndcg@10": 0.15},
    "test": {"ndcg@10": 0.14, "mrr": 0.1},
    "popularity": {"valid": {"ndcg@10": 0.4}, "test": {"ndcg@10": 0.41}},
    "n_params": 4720,
    "device": "cpu",
    "encoder": "attention",
    "total_seconds": 3.2,
}
CONFIG = {
    "encoder": {"name": "attention", "dropout": 0.2},
    "optimizer": {"lr": 0.001, "betas": [0.9, 0.98]},
    "dataset": {"path": None},
}


def test_metric_names_for_trackers():
    assert epoch_metrics(ROW) == {
        "train_loss": 4.1,
        "valid/ndcg@10": 0.15,
        "valid/hr@10": 0.3,
        "lr": 0.001,
        "seconds": 0.5,
    }
    final = final_metrics(METRICS)
    assert final["best_valid/ndcg@10"] == 0.15 and final["test/mrr"] == 0.1
    assert final["popularity/test/ndcg@10"] == 0.41 and final["n_params"] == 4720
    assert not {"objective", "stopped_early", "device", "valid/ndcg@10"} & set(final)  # no clash with epoch curves
    assert mlflow_key("popularity/test/ndcg@10") == "popularity/test/ndcg_at_10"


def test_logger_none_is_a_null_tracker(tmp_path):
    tracker = open_tracker(LoggerConfig(), tmp_path, CONFIG)
    assert isinstance(tracker, NullTracker)
    tracker.log_epoch(ROW), tracker.log_final(METRICS), tracker.close()
    assert list(tmp_path.iterdir()) == []


def test_a_missing_tracker_package_stops_the_run_before_training(tmp_path):
    # A package that fails to import stands in for an absent one, whatever this environment has.
    blocker = tmp_path / "blocker" / "mlflow"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('blocked for the test')\n")
    result = run_cli(["debug=smoke", "logger=mlflow"], tmp_path, env={"PYTHONPATH": str(tmp_path / "blocker")})
    assert result.returncode == 2
    assert "logger=mlflow needs the mlflow package" in result.stderr and "seqrec-cli[mlflow]" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (single_run_dir(tmp_path) / "history.csv").exists()


@pytest.mark.skipif(not HAS_MLFLOW, reason="mlflow is not installed")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # SQLAlchemy deprecations inside MLflow
def test_mlflow_tracker_round_trip_in_a_local_store(tmp_path):
    from mlflow import MlflowClient

    tracker = open_tracker(LoggerConfig(name="mlflow", experiment="tests"), tmp_path, CONFIG)
    tracker.log_epoch({**ROW, "epoch": 1, "valid/ndcg@10": 0.1})
    tracker.log_epoch(ROW)
    tracker.log_final(METRICS)
    tracker.close()
    state = json.loads((tmp_path / "tracking.json").read_text())
    assert state["mlflow_tracking_uri"] == f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(state["mlflow_tracking_uri"])
    run = client.get_run(state["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.info.run_name == tmp_path.name
    assert run.data.params["encoder.name"] == "attention" and run.data.params["optimizer.betas"] == "[0.9, 0.98]"
    assert run.data.metrics["test/ndcg_at_10"] == 0.14 and run.data.metrics["best_valid/ndcg_at_10"] == 0.15
    history = client.get_metric_history(run.info.run_id, "valid/ndcg_at_10")
    assert [(m.step, m.value) for m in history] == [(1, 0.1), (2, 0.15)]
    # A resumed run continues the same MLflow run.
    again = open_tracker(LoggerConfig(name="mlflow", experiment="tests"), tmp_path, CONFIG, resumed=True)
    assert again.run_id == run.info.run_id
    again.close("KILLED")
    assert client.get_run(run.info.run_id).info.status == "KILLED"


@pytest.mark.skipif(not HAS_TENSORBOARD, reason="tensorboard is not installed")
def test_tensorboard_run_through_the_cli_logs_every_epoch(tmp_path):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = run_cli(["debug=smoke", "logger=tensorboard"], tmp_path)
    assert result.returncode == 0, result.stderr
    events = EventAccumulator(str(single_run_dir(tmp_path) / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("valid/ndcg@10")] == [1, 2]
    metrics = json.loads((single_run_dir(tmp_path) / "metrics.json").read_text())
    assert events.Scalars("test/ndcg@10")[0].value == pytest.approx(metrics["test"]["ndcg@10"])
    assert "config/text_summary" in events.Tags()["tensors"]


@pytest.mark.slow
@pytest.mark.skipif(not HAS_MLFLOW, reason="mlflow is not installed")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_mlflow_run_through_the_cli_and_resume(tmp_path):
    from mlflow import MlflowClient

    store = f"sqlite:///{tmp_path / 'shared.db'}"
    args = ["debug=smoke", "trainer.patience=100", "logger=mlflow", f"logger.tracking_uri={store}", "hydra.run.dir=run"]
    first = run_cli([*args, "trainer.max_epochs=1"], tmp_path)
    assert first.returncode == 0, first.stderr
    second = run_cli([*args, "trainer.max_epochs=3", "trainer.resume=run"], tmp_path)
    assert second.returncode == 0, second.stderr
    client = MlflowClient(store)
    (run,) = client.search_runs([client.get_experiment_by_name("seqrec").experiment_id])
    assert run.info.status == "FINISHED"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "train_loss")] == [1, 2, 3]
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert run.data.metrics["test/ndcg_at_10"] == pytest.approx(metrics["test"]["ndcg@10"])


@pytest.mark.skipif(not (HAS_MLFLOW and HAS_TENSORBOARD), reason="mlflow and tensorboard are needed")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_several_trackers_at_once_each_get_every_row(tmp_path):
    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    cfg = LoggerConfig(use={"mlflow": True, "tensorboard": True}, experiment="tests")
    tracker = open_tracker(cfg, tmp_path, {**CONFIG, "tags": ["baseline"]})
    tracker.log_epoch(ROW)
    tracker.log_final(METRICS)
    tracker.close()
    state = json.loads((tmp_path / "tracking.json").read_text())
    run = MlflowClient(state["mlflow_tracking_uri"]).get_run(state["mlflow_run_id"])
    assert run.info.status == "FINISHED" and run.data.metrics["test/ndcg_at_10"] == 0.14
    assert run.data.tags["baseline"] == "true" and run.data.tags["seqrec.tags"] == "baseline"
    events = EventAccumulator(str(tmp_path / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("valid/ndcg@10")] == [2]


def test_a_tracker_named_in_use_must_exist(tmp_path):
    result = run_cli(["debug=smoke", "+logger.use.wandb=true"], tmp_path)
    assert result.returncode == 2 and "logger.use.wandb" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.skipif(not (HAS_MLFLOW and HAS_TENSORBOARD), reason="mlflow and tensorboard are needed")
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_two_loggers_tags_and_artifacts_through_the_cli(tmp_path):
    # `logger=[mlflow,tensorboard]` used to keep TensorBoard only; tags and MLflow artifacts ride along.
    from mlflow import MlflowClient
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    result = run_cli(
        ["debug=smoke", "logger=[mlflow,tensorboard]", "tags=[baseline,ablation]", "hydra.run.dir=run"], tmp_path
    )
    assert result.returncode == 0, result.stderr
    run_dir = tmp_path / "run"
    assert json.loads((run_dir / "metrics.json").read_text())["tags"] == ["baseline", "ablation"]
    events = EventAccumulator(str(run_dir / "tensorboard"))
    events.Reload()
    assert [e.step for e in events.Scalars("valid/ndcg@10")] == [1, 2]
    state = json.loads((run_dir / "tracking.json").read_text())
    client = MlflowClient(state["mlflow_tracking_uri"])
    run = client.get_run(state["mlflow_run_id"])
    assert run.info.status == "FINISHED" and "test/ndcg_at_10" in run.data.metrics
    assert run.data.tags["seqrec.tags"] == "baseline,ablation" and run.data.tags["ablation"] == "true"
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"metrics.json", "curves.png", "config.yaml"} <= artifacts
    assert (run_dir / "mlartifacts").is_dir() and not (tmp_path / "mlruns").exists()
