"""Multirun summaries, failed jobs, Optuna, parallel and Slurm-preset launchers."""

import csv
import json
import os

import pytest

from conftest import run_cli
from seqrec_cli.reporting.sweep import job_rows, rank_rows


def sweep_dir(root):
    (summary,) = (root / "outputs" / "multirun").rglob("summary.csv")
    return summary.parent


def read_summary(root):
    return list(csv.DictReader((sweep_dir(root) / "summary.csv").open()))


def test_failed_job_is_recorded_and_the_sweep_goes_on(tmp_path):
    result = run_cli(["-m", "debug=smoke", "encoder=gru", "optimizer.lr=1e-3,-1,3e-3"], tmp_path)
    assert result.returncode == 1  # the sweep's exit code says a job failed
    rows = read_summary(tmp_path)
    assert [r["status"] for r in rows] == ["ok", "ok", "failed"]  # ranked: finished first
    assert rows[0]["best"] == "True" and rows[1]["best"] == "False"
    assert float(rows[0]["objective"]) >= float(rows[1]["objective"])
    failed = rows[2]
    assert failed["job"] == "1" and "optimizer.lr=-1" in failed["overrides"] and "optimizer.lr" in failed["error"]
    assert json.loads((sweep_dir(tmp_path) / "1" / "error.json").read_text())["error"].startswith(
        "Invalid config value"
    )
    assert "★" in result.stdout and "job 1 failed" in result.stdout
    for key in ("valid/ndcg@10", "test/ndcg@10", "best_epoch", "seconds"):
        assert rows[0][key] not in ("", None)


def test_rank_rows_puts_nan_after_finite_and_failures_last(tmp_path):
    rows = [
        {"job": "0", "status": "ok", "objective": float("nan")},
        {"job": "1", "status": "failed", "objective": None},
        {"job": "2", "status": "ok", "objective": 0.2},
        {"job": "3", "status": "ok", "objective": 0.3},
    ]
    ranked = rank_rows(rows)
    assert [r["job"] for r in ranked] == ["3", "2", "0", "1"]
    assert [r["best"] for r in ranked] == [True, False, False, False]


def test_job_rows_reads_unfinished_jobs_as_failed(tmp_path):
    (tmp_path / "0" / ".hydra").mkdir(parents=True)
    (tmp_path / "0" / ".hydra" / "overrides.yaml").write_text("- encoder=gru\n")
    (row,) = job_rows(tmp_path)
    assert row["status"] == "failed" and row["overrides"] == "encoder=gru" and "did not finish" in row["error"]


@pytest.mark.slow
def test_optuna_study_of_three_trials(tmp_path):
    pytest.importorskip("optuna")  # the sweeper itself ships in hydra_plugins/seqrec_optuna_sweeper
    result = run_cli(
        [
            "hparams_search=gru_optuna",
            "debug=smoke",
            "hydra.sweeper.n_trials=3",
            "hydra.sweeper.storage=sqlite:///study.db",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    results = (sweep_dir(tmp_path) / "optimization_results.yaml").read_text()
    assert "best_params" in results and "best_value" in results
    rows = read_summary(tmp_path)
    assert len(rows) == 3 and all(r["status"] == "ok" for r in rows)
    assert (tmp_path / "study.db").stat().st_size > 0  # SQL storage works (SQLAlchemy 2)


def test_joblib_launcher_splits_threads_between_jobs(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_joblib_launcher")
    result = run_cli(
        ["-m", "hydra/launcher=joblib", "hydra.launcher.n_jobs=2", "debug=smoke", "encoder=gru,lstm"], tmp_path
    )
    assert result.returncode == 0, result.stderr
    jobs = sorted(sweep_dir(tmp_path).glob("[0-9]"))
    assert len(jobs) == 2
    for job in jobs:
        # the cores are shared between the two parallel jobs
        assert json.loads((job / "metrics.json").read_text())["num_threads"] == max(1, (os.cpu_count() or 1) // 2)
    assert len(read_summary(tmp_path)) == 2


@pytest.mark.slow
def test_slurm_preset_runs_end_to_end_in_local_mode(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    result = run_cli(["-m", "hydra/launcher=slurm_local", "debug=smoke", "encoder=gru,attention"], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = read_summary(tmp_path)
    assert sorted(r["job"] for r in rows) == ["0", "1"] and all(r["status"] == "ok" for r in rows)


def test_slurm_preset_composes_with_cluster_settings(tmp_path):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
    result = run_cli(
        [
            "hydra/launcher=slurm",
            "hydra.launcher.partition=gpu",
            "hydra.launcher.gpus_per_node=4",
            "debug=smoke",
            "--cfg",
            "hydra",
            "-p",
            "hydra.launcher",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    assert (
        "partition: gpu" in result.stdout and "gpus_per_node: 4" in result.stdout and "SlurmLauncher" in result.stdout
    )


def test_reuse_job_dir_skips_finished_resumes_interrupted_and_retrains_changed(tmp_path):
    from omegaconf import OmegaConf

    from seqrec_cli.config.schema import TrainConfig
    from seqrec_cli.reporting.sweep import reuse_job_dir

    cfg = OmegaConf.create({"encoder": {"name": "gru"}, "trainer": {"seed": 1, "resume": None, "num_threads": None}})
    job = tmp_path / "0"
    (job / ".hydra").mkdir(parents=True)
    (job / ".hydra" / "config.yaml").write_text(OmegaConf.to_yaml(cfg))
    (job / "checkpoints").mkdir()
    (job / "checkpoints" / "last.pt").write_bytes(b"state")
    (job / "error.json").write_text("{}")
    typed = TrainConfig()
    assert reuse_job_dir(cfg, typed, job) is None  # interrupted: resume it, and forget the old failure
    assert typed.trainer.resume == str(job) and not (job / "error.json").exists()

    (job / "metrics.json").write_text(json.dumps({"objective": 0.25}))
    other_threads = OmegaConf.merge(cfg, {"trainer": {"num_threads": 1}})  # one attempt's setting
    assert reuse_job_dir(other_threads, TrainConfig(), job) == 0.25  # finished: not trained again

    changed = OmegaConf.merge(cfg, {"trainer": {"seed": 2}})  # the sweep command changed
    fresh = TrainConfig()
    assert reuse_job_dir(changed, fresh, job) is None and fresh.trainer.resume is None


@pytest.mark.slow
@pytest.mark.filterwarnings("ignore::DeprecationWarning")
def test_a_rerun_sweep_skips_finished_jobs_and_resumes_interrupted_ones(tmp_path):
    # The same multirun command again with hydra.sweep.dir=<that sweep>: job 0 finished (kept as it
    # is), job 1 lost its metrics.json as if interrupted after its last epoch (continued from last.pt).
    store = f"sqlite:///{tmp_path / 'ml.db'}"
    args = [
        "-m",
        "debug=smoke",
        "encoder=gru,lstm",
        "hydra.sweep.dir=sw",
        "logger=mlflow",
        f"logger.tracking_uri={store}",
    ]
    first = run_cli(args, tmp_path)
    assert first.returncode == 0, first.stderr
    sweep = tmp_path / "sw"
    finished = (sweep / "0" / "metrics.json").read_text()
    (sweep / "1" / "metrics.json").unlink()
    second = run_cli(args, tmp_path)
    assert second.returncode == 0, second.stderr
    assert "Job 0 already finished with these settings" in second.stderr
    assert "Job 1 was interrupted: resuming it" in second.stderr
    assert (sweep / "0" / "metrics.json").read_text() == finished  # not trained again
    assert json.loads((sweep / "1" / "metrics.json").read_text())["resumed"] is True
    rows = list(csv.DictReader((sweep / "summary.csv").open()))
    assert sorted(r["status"] for r in rows) == ["ok", "ok"]
    mlflow = pytest.importorskip("mlflow")
    client = mlflow.MlflowClient(store)
    runs = client.search_runs([client.get_experiment_by_name("seqrec").experiment_id])
    assert sorted(r.info.run_name for r in runs) == ["encoder=gru", "encoder=lstm"]  # named after overrides
    assert all(r.info.status == "FINISHED" for r in runs)  # job 1 continued its own MLflow run
