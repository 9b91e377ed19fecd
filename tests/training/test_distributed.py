"""Data-parallel training: 2 Gloo processes on the CPU against a single process."""

import csv
import json
import os
import subprocess
import sys

import pytest

from conftest import run_cli

# dropout 0: with dropout each process draws its own masks, so the runs would differ by design.
SAME = ["debug=smoke", "trainer.max_epochs=3", "encoder.dropout=0"]


@pytest.mark.slow
def test_two_gloo_processes_match_a_single_process(tmp_path):
    single = run_cli([*SAME, "hydra.run.dir=single"], tmp_path)
    assert single.returncode == 0, single.stderr
    env = {**os.environ, "SEQREC_CACHE_DIR": str(tmp_path / ".cache"), "OMP_NUM_THREADS": "1"}
    ddp = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "seqrec_cli.cli.train",
            *SAME,
            "trainer.distributed=true",
            "hydra.run.dir=ddp",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert ddp.returncode == 0, ddp.stderr
    a = json.loads((tmp_path / "single" / "metrics.json").read_text())
    b = json.loads((tmp_path / "ddp" / "metrics.json").read_text())
    assert b["world_size"] == 2 and a["best_epoch"] == b["best_epoch"]
    # Same global batches and a loss scaled so the averaged gradient equals the single-process
    # one: only the order of floating-point sums differs (each process sums its half, then the
    # all-reduce adds the halves), so allow 1e-4 on losses and 1e-3 on rank-based metrics.
    for split in ("valid", "test"):
        for key, value in a[split].items():
            assert b[split][key] == pytest.approx(value, abs=1e-3), (split, key)
    rows_a = list(csv.DictReader((tmp_path / "single" / "history.csv").open()))
    rows_b = list(csv.DictReader((tmp_path / "ddp" / "history.csv").open()))
    assert [float(r["train_loss"]) for r in rows_b] == pytest.approx([float(r["train_loss"]) for r in rows_a], rel=1e-4)
    # one run directory: rank 1 wrote nothing next to rank 0's
    assert sorted(p.name for p in tmp_path.iterdir() if not p.name.startswith(".")) == ["ddp", "single"]
    assert (tmp_path / "ddp" / "checkpoints" / "best.pt").is_file()


def test_distributed_without_torchrun_is_a_clear_error(tmp_path):
    result = run_cli(["debug=smoke", "trainer.distributed=true"], tmp_path)
    assert result.returncode == 2 and "torchrun --nproc_per_node" in result.stderr and "Traceback" not in result.stderr
