"""The run record never lies: one directory per run, one writer per directory, resumes that use
what they record and refuse without touching anything, checkpoint pairs that agree, and failures
(bad checkpoints, read-only or full disks, signals) that end in one sentence."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from conftest import REPO, run_cli
from seqrec_cli.errors import UserError
from seqrec_cli.io.atomic import write_text_atomic
from seqrec_cli.io.rundir import RunDirLock, claim_new_dir
from seqrec_cli.training.checkpoint import load_checkpoint, save_checkpoint

SMALL = ["debug=smoke", "trainer.patience=100"]


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under `folder` (the lock file aside) with a digest of its bytes."""
    return {
        str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and p.name != ".lock"
    }


@pytest.fixture(scope="module")
def finished(tmp_path_factory) -> Path:
    """A finished 3-epoch smoke run, copied by each test that changes it."""
    work = tmp_path_factory.mktemp("finished")
    result = run_cli([*SMALL, "trainer.max_epochs=3", "hydra.run.dir=run"], work)
    assert result.returncode == 0, result.stderr
    return work


def copy_run(finished: Path, tmp_path: Path) -> Path:
    shutil.copytree(finished / "run", tmp_path / "run")
    if (finished / ".cache").is_dir():
        shutil.copytree(finished / ".cache", tmp_path / ".cache")
    return tmp_path / "run"


# ---- one directory per run, one writer per directory -------------------------------------------


def test_runs_started_in_the_same_second_get_their_own_directories(tmp_path):
    from seqrec_cli.config.registry import run_dir_for

    wanted = str(tmp_path / "outputs" / "2026-01-01" / "10-00-00")
    dirs = {run_dir_for(None, wanted) for _ in range(3)}
    assert len(dirs) == 3 and all(Path(d).is_dir() for d in dirs)
    assert claim_new_dir(wanted).name == "10-00-00-4"


def test_two_cli_runs_in_the_same_second_keep_both_results(tmp_path):
    env = {**os.environ, "SEQREC_CACHE_DIR": str(tmp_path / ".cache")}
    cmd = [
        sys.executable,
        "-m",
        "seqrec_cli.cli.train",
        *SMALL,
        "trainer.max_epochs=1",
        "hydra.run.dir=outputs/same-second",
    ]
    # The default run dir is outputs/<date>/<time>; pinning the name makes the collision certain.
    cmd[-1] = "hydra.run.dir=${seqrec_run_dir:null,outputs/same-second}"
    procs = [
        subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE) for _ in range(2)
    ]
    for proc in procs:
        proc.communicate(timeout=300)
        assert proc.returncode == 0
    metrics = sorted((tmp_path / "outputs").glob("*/metrics.json"))
    assert [m.parent.name for m in metrics] == ["same-second", "same-second-2"]


HOLDER = """
import sys, time
from pathlib import Path
from seqrec_cli.io.rundir import RunDirLock
with RunDirLock(Path(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(60)
"""


def test_a_second_writer_is_refused_naming_the_holder(tmp_path):
    run_dir = tmp_path / "shared"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(run_dir)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(UserError, match=f"in use by another run \\(pid {holder.pid} on "):
            RunDirLock(run_dir).acquire()
        before = snapshot(run_dir)
        result = run_cli([*SMALL, "hydra.run.dir=shared"], tmp_path)
        assert result.returncode == 2, result.stderr
        assert f"pid {holder.pid}" in result.stderr and "Traceback" not in result.stderr
        assert snapshot(run_dir) == before  # no train.log, no .hydra/ of the refused run
    finally:
        holder.kill()
        holder.wait()
    RunDirLock(run_dir).acquire()  # the kernel dropped the dead holder's lock


# ---- resumes record only what they use, and refuse without writing -----------------------------


def test_resume_with_a_new_lr_trains_with_it_and_records_it(finished, tmp_path):
    run = copy_run(finished, tmp_path)
    result = run_cli([*SMALL, "trainer.max_epochs=5", "optimizer.lr=0.5", "trainer.resume=run"], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader((run / "history.csv").open()))
    assert [float(r["lr"]) for r in rows] == [0.002] * 3 + [0.5] * 2
    assert "optimizer.lr 0.002 -> 0.5" in (run / "train.log").read_text()
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last["optimizer"]["param_groups"][0]["lr"] == 0.5 and last["config"]["optimizer"]["lr"] == 0.5


@pytest.mark.parametrize(
    "change, named",
    [
        (["optimizer=sgd"], "optimizer.name"),
        (["encoder=gru"], "encoder.name"),
        (["trainer.seed=7"], "trainer.seed"),
        (["trainer.monitor=hr@10"], "trainer.monitor"),
    ],
)
def test_a_refused_resume_leaves_the_run_byte_for_byte(finished, tmp_path, change, named):
    run = copy_run(finished, tmp_path)
    before = snapshot(run)
    result = run_cli([*SMALL, "trainer.max_epochs=5", *change, "trainer.resume=run"], tmp_path)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr and "Traceback" not in result.stderr
    assert snapshot(run) == before


def test_a_changed_data_file_is_named_and_nothing_is_written(tmp_path):
    events = tmp_path / "events.csv"
    rows = [f"{u},{(u * 7 + t) % 30 + 1},{t}" for u in range(40) for t in range(8)]
    events.write_text("user,item,ts\n" + "\n".join(rows) + "\n")
    data = [
        "dataset=csv",
        f"dataset.path={events}",
        "dataset.user_col=user",
        "dataset.item_col=item",
        "dataset.time_col=ts",
        "trainer.max_epochs=2",
        "model.max_len=8",
        "trainer.progress=false",
    ]
    assert run_cli([*data, "hydra.run.dir=run"], tmp_path).returncode == 0
    run = tmp_path / "run"
    events.write_text(events.read_text() + "\n".join(f"{u},{31 + u % 5},{100}" for u in range(40)) + "\n")
    before = snapshot(run)
    result = run_cli([*data, "trainer.max_epochs=3", "trainer.resume=run"], tmp_path)
    assert result.returncode == 2, result.stderr
    assert "the data has changed" in result.stderr and "items 30 -> 35" in result.stderr
    assert "Traceback" not in result.stderr and snapshot(run) == before


def test_a_kill_between_best_and_last_cannot_pair_future_best_weights(finished, tmp_path):
    """best.pt written for epoch 4, then killed before last.pt: the loop state (epoch 3) rules."""
    run = copy_run(finished, tmp_path)
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    ahead = load_checkpoint(run / "checkpoints" / "best.pt")
    ahead["epoch"] = 4
    ahead["model"] = {k: v + 1.0 for k, v in ahead["model"].items()}  # weights the loop never saw
    save_checkpoint(run / "checkpoints" / "best.pt", ahead)
    result = run_cli([*SMALL, "trainer.max_epochs=3", "trainer.resume=run"], tmp_path)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((run / "metrics.json").read_text())
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["epoch"] == metrics["best_epoch"] == last["loop"]["best_epoch"]
    for key, value in last["best"]["model"].items():
        assert torch.equal(best["model"][key], value), key


def test_stray_temporaries_are_removed_and_time_adds_up_on_resume(finished, tmp_path):
    run = copy_run(finished, tmp_path)
    first = json.loads((run / "metrics.json").read_text())["total_seconds"]
    for name in (".last.pt.abc123.tmp", "best.ptxyz.tmp"):
        (run / "checkpoints" / name).write_bytes(b"\0" * 1000)
    result = run_cli([*SMALL, "trainer.max_epochs=4", "trainer.resume=run"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert not list((run / "checkpoints").glob("*.tmp"))
    assert json.loads((run / "metrics.json").read_text())["total_seconds"] > first


def test_a_mistyped_resume_directory_is_not_created(tmp_path):
    result = run_cli([*SMALL, "trainer.resume=no/such/run"], tmp_path)
    assert result.returncode == 2 and "Nothing to resume at no/such/run" in result.stderr
    assert not (tmp_path / "no").exists()


def test_artefacts_and_checkpoints_share_one_permission_rule(finished):
    run = finished / "run"
    modes = {p.name: p.stat().st_mode & 0o777 for p in [*run.glob("*.json"), *run.glob("checkpoints/*.pt")]}
    assert set(modes.values()) == {0o644}, modes


# ---- bad checkpoints: one sentence each --------------------------------------------------------


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "is empty (0 bytes)"),
        # Fixed noise, not os.urandom: parallel test workers must collect the same test ids.
        (random.Random(7).randbytes(4096), "is not a checkpoint"),
    ],
    ids=["empty", "noise"],
)
def test_a_damaged_last_pt_is_one_sentence(finished, tmp_path, content, message):
    run = copy_run(finished, tmp_path)
    (run / "checkpoints" / "last.pt").write_bytes(content)
    before = snapshot(run)
    result = run_cli([*SMALL, "trainer.max_epochs=5", "trainer.resume=run"], tmp_path)
    assert result.returncode == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and snapshot(run) == before


def test_resume_pointed_at_best_pt_says_so(finished, tmp_path):
    copy_run(finished, tmp_path)
    result = run_cli([*SMALL, "trainer.resume=run/checkpoints/best.pt"], tmp_path)
    assert result.returncode == 2 and "holds best weights only" in result.stderr
    assert "Traceback" not in result.stderr


# ---- disks that refuse writes ------------------------------------------------------------------


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 3 MiB tmpfs (needs mount rights: root in a container that allows it)."""
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True).returncode:
        pytest.skip("cannot mount a tmpfs here (needs root and mount rights)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_full_disk_is_one_sentence_with_the_space_needed_and_in_train_log(small_tmpfs, tmp_path):
    args = [*SMALL, "dataset.synthetic.n_items=4000", "model.embedding_dim=64", f"hydra.run.dir={small_tmpfs}/run"]
    result = run_cli(args, tmp_path)
    assert result.returncode == 2, result.stderr
    assert "The disk is full" in result.stderr and "MiB" in result.stderr and "Traceback" not in result.stderr
    assert "The disk is full" in (small_tmpfs / "run" / "train.log").read_text()


def test_a_read_only_output_directory_is_one_sentence(small_tmpfs, tmp_path):
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    result = run_cli([*SMALL, f"hydra.run.dir={small_tmpfs}/run"], tmp_path)
    assert result.returncode in (1, 2), result.stderr
    assert "read-only" in result.stderr.lower() and "Traceback" not in result.stderr


def test_atomic_write_errors_become_sentences(tmp_path, monkeypatch):
    import errno

    def full(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    with pytest.raises(UserError, match=r"The disk is full: could not write .*needs about 0.0 MiB"):
        write_text_atomic(tmp_path / "x.json", "{}")
    assert not list(tmp_path.iterdir())  # no temporary left behind


# ---- signals -----------------------------------------------------------------------------------


@pytest.mark.parametrize("delay", [0.3, 1.5])
def test_ctrl_c_during_start_up_is_one_line(tmp_path, delay):
    env = {**os.environ, "SEQREC_CACHE_DIR": str(tmp_path / ".cache")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqrec_cli.cli.train", *SMALL, "hydra.run.dir=run"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    time.sleep(delay)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 130, err
    assert "Interrupted by SIGINT" in err and "Traceback" not in err and len(err.strip().splitlines()) <= 4, err


def test_unexpected_errors_reach_train_log(tmp_path, monkeypatch):
    """A bug (not a user error) keeps its traceback, in train.log too."""
    code = (
        "import sys, seqrec_cli.api as t, seqrec_cli.cli.train as c\n"
        "def boom(*a, **k):\n    raise RuntimeError('boom from a bug')\n"
        "t._prepare = boom\nsys.argv = ['seqrec-train', 'debug=smoke', 'hydra.run.dir=run']\nc.cli()\n"
    )
    env = {**os.environ, "SEQREC_CACHE_DIR": str(tmp_path / ".cache")}
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True)
    assert result.returncode == 1
    log = (tmp_path / "run" / "train.log").read_text()
    assert "RuntimeError: boom from a bug" in log and "Traceback" in log


def test_ctrl_c_in_the_first_epoch_does_not_claim_an_epoch_was_saved(tmp_path):
    env = {**os.environ, "SEQREC_CACHE_DIR": str(tmp_path / ".cache")}
    args = ["dataset=synthetic", "dataset.synthetic.n_users=4000", "trainer.progress=false", "hydra.run.dir=run"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqrec_cli.cli.train", *args],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = tmp_path / "run" / "train.log"
    deadline = time.time() + 120
    while not (log.exists() and "marks a new best" in log.read_text()) and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    err = " ".join(err.split())
    assert proc.returncode == 130, err
    assert "No epoch had finished" in err and "is saved" not in err and "Traceback" not in err
