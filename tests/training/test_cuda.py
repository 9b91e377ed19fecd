"""The CUDA path: bf16 autocast, fused Adam/AdamW, torch.compile, no per-step host sync,
deterministic runs, DDP over NCCL. Every test here needs a CUDA device and is skipped without one,
so CI (CPU only) skips the whole file; `scripts/gpu_check.sh` runs it on a lent GPU.

Runs go through the real CLI (`python -m seqrec_cli.cli.train`) on the tiny `debug=smoke` data, so
each costs seconds on a GPU; only the sync count patches the training loop, in its own child.
"""

from __future__ import annotations

import csv
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from conftest import run_cli

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

GPU = ["debug=smoke", "trainer.device=cuda"]


def metrics_of(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())


def train(tmp_path: Path, name: str, *overrides: str, timeout: int = 300) -> dict:
    done = run_cli([*GPU, *overrides, f"hydra.run.dir={name}"], tmp_path, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return metrics_of(tmp_path / name)


def losses(run_dir: Path) -> list[float]:
    return [float(row["train_loss"]) for row in csv.DictReader((run_dir / "history.csv").open())]


@needs_cuda
def test_bf16_autocast_runs_the_encoder_in_bf16_and_scores_in_float32():
    from seqrec_cli.config.schema import EncoderConfig, ModelConfig
    from seqrec_cli.models import build

    torch.manual_seed(0)
    model = build(ModelConfig(embedding_dim=32, max_len=16), EncoderConfig(name="attention", num_heads=2), 100).cuda()
    x = torch.randint(1, 101, (4, 16), device="cuda")
    n = torch.tensor([16, 9, 3, 1], device="cuda")
    with torch.autocast("cuda", dtype=torch.bfloat16):
        hidden = model(x, n)
    assert hidden.dtype == torch.bfloat16
    # The evaluation casts queries back to float32 before scoring (bf16 would tie many items).
    scores = model.scores(hidden[:, -1].float())
    assert scores.dtype == torch.float32 and torch.isfinite(scores).all()


@needs_cuda
def test_a_bf16_run_trains_and_reports_finite_metrics(tmp_path):
    m = train(tmp_path, "amp", "trainer.amp=true")
    assert m["device"].startswith("cuda")
    assert all(math.isfinite(v) for v in (*m["valid"].values(), *m["test"].values()))
    assert all(math.isfinite(v) for v in losses(tmp_path / "amp"))


@needs_cuda
@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_the_optimizer_is_fused_on_cuda(name):
    from seqrec_cli.training.trainer import build_optimizer

    model = torch.nn.Linear(8, 4).cuda()
    optimizer_cfg = SimpleNamespace(name=name, lr=1e-3, betas=[0.9, 0.98], weight_decay=0.0, momentum=0.0)
    optimizer = build_optimizer(model, SimpleNamespace(optimizer=optimizer_cfg), torch.device("cuda"))
    assert optimizer.defaults.get("fused") is True
    model(torch.randn(2, 8, device="cuda")).sum().backward()
    optimizer.step()  # a fused step runs on this GPU


@needs_cuda
def test_compiled_training_matches_eager_closely(tmp_path):
    same = ["trainer.amp=false", "encoder.dropout=0", "trainer.deterministic=false"]
    eager = train(tmp_path, "eager", *same)
    compiled = train(tmp_path, "compiled", *same, "trainer.compile=true", timeout=600)
    # Fused kernels sum in another order: float rounding only, no other change.
    assert losses(tmp_path / "compiled") == pytest.approx(losses(tmp_path / "eager"), rel=1e-3)
    for key, value in eager["valid"].items():
        assert compiled["valid"][key] == pytest.approx(value, abs=2e-2), key


# Runs the real CLI with `Trainer.train_epoch` wrapped: CUDA's sync debug mode warns at every
# operation that makes the host wait for the device, and the wrapper counts those warnings per epoch.
_COUNT_SYNCS = """
import json, math, os, runpy, sys, warnings
import torch
from seqrec_cli.training.trainer import Trainer
original, epochs = Trainer.train_epoch, []
def counted(self, *args, **kwargs):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            return original(self, *args, **kwargs)
        finally:
            torch.cuda.set_sync_debug_mode(0)
            syncs = [w for w in caught if "synchroniz" in str(w.message)]
            epochs.append({"steps": math.ceil(len(self.data) / self.cfg.trainer.batch_size), "syncs": len(syncs),
                           "where": sorted({f"{os.path.basename(w.filename)}:{w.lineno}" for w in syncs})})
            json.dump(epochs, open(os.environ["SYNC_LOG"], "w"))
Trainer.train_epoch = counted
sys.argv = ["seqrec-train", *sys.argv[1:]]
runpy.run_module("seqrec_cli.cli.train", run_name="__main__")
"""


@needs_cuda
def test_no_host_sync_per_training_step(tmp_path):
    # 3,000 users in batches of 16: ~190 steps an epoch, so a sync per step could not hide.
    log = tmp_path / "syncs.json"
    env = {**os.environ, "SEQREC_CACHE_DIR": str(tmp_path / ".cache"), "SYNC_LOG": str(log)}
    args = [
        *GPU,
        "dataset.synthetic.n_users=3000",
        "trainer.batch_size=16",
        "trainer.max_epochs=1",
        "hydra.run.dir=sync",
    ]
    done = subprocess.run(
        [sys.executable, "-c", _COUNT_SYNCS, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (epoch,) = json.loads(log.read_text())
    assert epoch["steps"] >= 100
    # Allowed: the loss read-back every 50 steps and at the end, the epoch's one copy of the batch
    # order to the device, and a few one-off syncs (allocator, first launch).
    allowed = math.ceil(epoch["steps"] / 50) + 1 + 1 + 3
    assert epoch["syncs"] <= allowed, epoch


@needs_cuda
def test_deterministic_runs_repeat_exactly(tmp_path):
    same = ["trainer.deterministic=true", "trainer.max_epochs=2"]
    a, b = train(tmp_path, "a", *same), train(tmp_path, "b", *same)
    assert losses(tmp_path / "a") == losses(tmp_path / "b")
    assert a["valid"] == b["valid"] and a["test"] == b["test"]


# torchrun's child: records the process group's backend when the CLI brings it up.
_RECORD_BACKEND = """
import os, runpy, sys
import torch.distributed as dist
import seqrec_cli.training.runtime as runtime
original = dist.init_process_group
def recording(backend=None, *args, **kwargs):
    open(os.environ["BACKEND_LOG"], "w").write(str(backend))
    return original(backend, *args, **kwargs)
dist.init_process_group = recording
sys.argv = ["seqrec-train", *sys.argv[1:]]
runpy.run_module("seqrec_cli.cli.train", run_name="__main__")
"""


@needs_cuda
def test_torchrun_with_one_process_uses_nccl_and_matches_a_plain_run(tmp_path):
    same = ["encoder.dropout=0", "trainer.max_epochs=2"]
    plain = train(tmp_path, "plain", *same)
    (tmp_path / "child.py").write_text(_RECORD_BACKEND)
    env = {**os.environ, "SEQREC_CACHE_DIR": str(tmp_path / ".cache"), "BACKEND_LOG": str(tmp_path / "backend")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=1",
            str(tmp_path / "child.py"),
            *GPU,
            *same,
            "trainer.distributed=true",
            "hydra.run.dir=ddp",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert (tmp_path / "backend").read_text() == "nccl"
    ddp = metrics_of(tmp_path / "ddp")
    assert ddp["world_size"] == 1 and ddp["device"].startswith("cuda")
    # One process trains as a plain run does (no DDP wrapper at world size 1, by design).
    assert losses(tmp_path / "ddp") == pytest.approx(losses(tmp_path / "plain"), rel=1e-3)
    for key, value in plain["test"].items():
        assert ddp["test"][key] == pytest.approx(value, abs=2e-2), key


# The wrapper itself over NCCL: at world size 1 the CLI does not wrap (nothing to average), so
# DistributedDataParallel's all-reduce is exercised here directly, in a child of its own.
_DDP_STEP = """
import os, torch, torch.distributed as dist
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=os.environ.get("PORT", "29533"), RANK="0", WORLD_SIZE="1")
dist.init_process_group("nccl")
torch.cuda.set_device(0)
torch.manual_seed(0)
plain = torch.nn.Linear(16, 4).cuda()
wrapped = torch.nn.parallel.DistributedDataParallel(torch.nn.Linear(16, 4).cuda(), device_ids=[0])
wrapped.module.load_state_dict(plain.state_dict())
x = torch.randn(32, 16, device="cuda")
plain(x).square().mean().backward()
wrapped(x).square().mean().backward()
assert dist.get_backend() == "nccl"
assert torch.allclose(plain.weight.grad, wrapped.module.weight.grad, rtol=1e-5, atol=1e-6)
dist.destroy_process_group()
print("DDP_OK")
"""


@needs_cuda
def test_ddp_wrapper_over_nccl_gives_the_plain_gradient(tmp_path):
    done = subprocess.run([sys.executable, "-c", _DDP_STEP], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "DDP_OK" in done.stdout, done.stderr[-3000:]


# ------------------------------------------- scripts/gpu_check.py's own arithmetic (no GPU needed)


def gpu_check():
    sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "scripts"))
    import gpu_check as module

    return module


def device_pass(scores, ranks):
    """One device's pass as gpu_check.queries_and_ranks returns it, rows already in order."""
    import numpy as np

    scores = np.asarray(scores, dtype=np.float64)
    return {"scores": scores, "ranks": np.asarray(ranks), "order": np.arange(len(scores)), "targets": np.array([0, 0])}


def test_a_rank_change_is_a_float_tie_only_when_scores_are_that_close():
    check = gpu_check()
    cpu = device_pass([[1.0, 1.0 + 1e-8, 0.5], [2.0, 1.0, 3.0]], [1, 1])
    # Row 0: item 1 is within rounding of the target, so rank 0 on the other device is a tie.
    tie = device_pass([[1.0, 1.0 - 1e-8, 0.5], [2.0, 1.0, 3.0]], [0, 1])
    assert check.explain_rank_changes(cpu, tie) == {
        "users": 2,
        "ranks_differ": 1,
        "not_float_ties": 0,
        "max_abs_score_diff": pytest.approx(2e-8),
    }
    # Row 1: item 2 is far above the target on both devices: a changed rank there is a bug.
    wrong = device_pass([[1.0, 1.0 + 1e-8, 0.5], [2.0, 1.0, 3.0]], [1, 0])
    assert check.explain_rank_changes(cpu, wrong)["not_float_ties"] == 1


def test_the_table_reads_every_step(tmp_path):
    check = gpu_check()
    (tmp_path / "steps").mkdir()
    (tmp_path / "steps" / "setup.status").write_text("ok 12s\n")
    (tmp_path / "steps" / "ml20m_compiled.status").write_text("TIMED OUT after 240s\n")
    (tmp_path / "env.json").write_text(json.dumps({"summary": "GPU: H200"}))
    (tmp_path / "equal.json").write_text(
        json.dumps(
            {
                "ok": True,
                "ranks_differ": 2,
                "users": 100,
                "not_float_ties": 0,
                "max_abs_score_diff": 1e-6,
                "max_metric_diff": 0.0,
            }
        )
    )
    (tmp_path / "ml20m_eager.json").write_text(
        json.dumps(
            {
                "train_s_per_epoch": 9.5,
                "epochs_run": 2,
                "train_sequences": 150_000,
                "epoch_s_with_valid": [12.0, 9.0],
                "valid_eval_s_per_pass": 0.5,
                "last_epoch_train_s": 8.5,
                "steady_s_per_epoch": 8.2,
                "device_share": 0.93,
                "profile_kernel_ms_per_step": 6.9,
                "profile_wall_ms_per_step": 7.4,
                "peak_gpu_allocated_gib": 20.1,
                "peak_gpu_reserved_gib": 24.0,
            }
        )
    )
    check.table(tmp_path)
    text = (tmp_path / "table.md").read_text()
    assert "| environment | ok 12s | GPU: H200 |" in text
    assert "| valid metrics GPU = CPU (same checkpoint, float32) | equal | 2 of 100 ranks differ, 0 not" in text
    assert "| synthetic_ml20m eager: s / epoch, last epoch | 8.5 |" in text
    assert "| synthetic_ml20m eager: GPU busy share of a step | 93.0% |" in text
    assert "| synthetic_ml20m compiled | TIMED OUT after 240s |  |" in text
    assert "| CUDA tests (tests/test_cuda.py) | not run |  |" in text
