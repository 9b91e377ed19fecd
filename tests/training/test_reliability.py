"""Runs you can trust: resume, interrupts, atomic writes, safe checkpoints, non-finite loss."""

import csv
import json
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import REPO, run_cli
from seqrec_cli.errors import UserError
from seqrec_cli.training.checkpoint import load_checkpoint, save_checkpoint

SMALL = ["debug=smoke", "trainer.patience=100"]


def history_rows(run_dir):
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    for row in rows:
        row.pop("seconds")
    return rows


@pytest.mark.slow
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path):
    straight = run_cli([*SMALL, "trainer.max_epochs=4", "hydra.run.dir=straight"], tmp_path)
    assert straight.returncode == 0, straight.stderr
    first = run_cli([*SMALL, "trainer.max_epochs=2", "hydra.run.dir=resumed"], tmp_path)
    assert first.returncode == 0, first.stderr
    second = run_cli([*SMALL, "trainer.max_epochs=4", "trainer.resume=resumed"], tmp_path)
    assert second.returncode == 0, second.stderr
    assert "Resumed from" in (tmp_path / "resumed" / "train.log").read_text()
    a = json.loads((tmp_path / "straight" / "metrics.json").read_text())
    b = json.loads((tmp_path / "resumed" / "metrics.json").read_text())
    for key in ("valid", "test", "popularity", "best_epoch", "epochs_run"):
        assert a[key] == b[key], key
    assert history_rows(tmp_path / "straight") == history_rows(tmp_path / "resumed")


def test_resume_with_a_different_model_names_the_keys(tmp_path):
    assert run_cli([*SMALL, "hydra.run.dir=r"], tmp_path).returncode == 0
    result = run_cli([*SMALL, "encoder=gru", "model.embedding_dim=8", "trainer.resume=r"], tmp_path)
    assert result.returncode == 2
    assert "encoder.name" in result.stderr and "model.embedding_dim" in result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.slow
def test_sigterm_saves_and_the_run_resumes_to_completion(tmp_path):
    args = [
        "dataset=synthetic",
        "dataset.synthetic.n_users=3000",
        "model.max_len=30",
        "trainer.max_epochs=8",
        "trainer.patience=100",
        "trainer.progress=false",
        "hydra.run.dir=run",
    ]
    env = {**os.environ, "SEQREC_CACHE_DIR": str(tmp_path / ".cache")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqrec_cli.cli.train", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    history = tmp_path / "run" / "history.csv"
    deadline = time.time() + 120
    while not (history.exists() and len(history.read_text().splitlines()) >= 2):
        assert proc.poll() is None and time.time() < deadline, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err  # 128 + SIGTERM
    assert "Interrupted by SIGTERM" in err
    assert "SIGTERM" in err and "trainer.resume=" in err and "Traceback" not in err
    done = len(history.read_text().splitlines()) - 1
    assert 1 <= done < 8 and load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["loop"]["epoch"] == done
    result = run_cli([*args[:-1], "trainer.resume=run"], tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["epochs_run"] == 8
    assert [int(r["epoch"]) for r in history_rows(tmp_path / "run")] == list(range(1, 9))


class Payload:
    """Not a tensor or plain value: a weights-only load must refuse it."""

    def __reduce__(self):
        return (print, ("this would run code",))


def test_checkpoint_with_a_pickled_object_is_refused(tmp_path):
    path = tmp_path / "evil.pt"
    torch.save({"model": {}, "x": Payload()}, path)
    with pytest.raises(UserError, match="Refusing to load"):
        load_checkpoint(path)
    result = run_cli([*SMALL, f"trainer.resume={path}"], tmp_path)
    assert result.returncode == 2 and "Refusing to load" in result.stderr and "Traceback" not in result.stderr


def test_truncated_checkpoint_is_a_clear_error(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(path, {"model": {"w": torch.ones(1000)}})
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="truncated or corrupt"):
        load_checkpoint(path)


WRITER = """
import sys, torch
from pathlib import Path
from seqrec_cli.training.checkpoint import save_checkpoint
from seqrec_cli.io.artifacts import write_json
i = 0
while True:
    i += 1
    save_checkpoint(Path(sys.argv[1]), {"i": i, "w": torch.full((200_000,), float(i))})
    write_json(Path(sys.argv[2]), {"i": i, "pad": "x" * 200_000})
    print(i, flush=True)
"""


def test_sigkill_during_repeated_saves_leaves_complete_files(tmp_path):
    ckpt, js = tmp_path / "c.pt", tmp_path / "m.json"
    for delay in (0.3, 0.45, 0.6, 0.75):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(ckpt), str(js)], stdout=subprocess.PIPE, cwd=REPO)
        proc.stdout.readline()  # at least one complete save happened
        time.sleep(delay)
        proc.kill()
        proc.wait()
        state = load_checkpoint(ckpt)
        assert torch.all(state["w"] == state["i"])
        assert json.loads(js.read_text())["i"] >= 1


def test_non_finite_loss_stops_with_epoch_and_step(tmp_path):
    result = run_cli(
        [*SMALL, "optimizer=sgd", "optimizer.lr=1e38", "trainer.max_epochs=5", "hydra.run.dir=r"], tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert "non-finite at epoch" in result.stderr and "step" in result.stderr
    assert "Traceback" not in result.stderr
    assert (tmp_path / "r" / "checkpoints" / "last.pt").is_file()


def test_resume_accepts_the_same_dataset_file_named_another_way(tmp_path, monkeypatch):
    from seqrec_cli.training.checkpoint import same_setting as _same_setting

    (tmp_path / "d.csv").write_text("x")
    monkeypatch.chdir(tmp_path)
    assert _same_setting("path", "d.csv", str(tmp_path / "d.csv"))
    assert _same_setting("path", "./d.csv", "d.csv")
    assert not _same_setting("path", "d.csv", "e.csv")
    assert not _same_setting("name", "d.csv", str(tmp_path / "d.csv"))


def test_resume_treats_settings_newer_than_the_checkpoint_as_their_defaults():
    from dataclasses import asdict

    from seqrec_cli.config.schema import TrainConfig
    from seqrec_cli.training.checkpoint import _differing_settings

    saved = asdict(TrainConfig())
    del saved["encoder"]["time_features"], saved["model"]["user_embedding"]  # an older checkpoint
    defaults = asdict(TrainConfig())
    assert _differing_settings(saved, asdict(TrainConfig()), defaults) == []
    changed = TrainConfig()
    changed.model.user_embedding = True
    assert _differing_settings(saved, asdict(changed), defaults) == ["model.user_embedding"]
