"""Training controls Lightning users expect: lr schedules with warmup (resumable bit for bit),
gradient accumulation, weight decay only where it belongs, early stopping that counts like
Lightning's, top-k checkpoints, and an epoch line that says where the run is."""

from __future__ import annotations

import csv
import json
import math
import os
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import run_cli
from data_support import tiny_train_config
from seqrec_cli.config.checks import validate
from seqrec_cli.config.schema import SchedulerConfig, TrainConfig
from seqrec_cli.errors import UserError
from seqrec_cli.training.checkpoint import load_checkpoint
from seqrec_cli.training.schedule import LrSchedule
from seqrec_cli.training.trainer import build_optimizer

SMALL = ["debug=smoke", "trainer.patience=100"]


def history(run_dir):
    return list(csv.DictReader((run_dir / "history.csv").open()))


# ---- schedules ---------------------------------------------------------------------------------


def lrs(name: str, steps: int = 10, **kw) -> list[float]:
    sched = LrSchedule(SchedulerConfig(name=name, **kw), base_lr=1.0, steps_per_epoch=2, total_steps=steps)
    return [sched.factor(s) for s in range(steps)]


def test_warmup_rises_linearly_then_each_schedule_decays_as_documented():
    assert lrs("none", warmup_steps=3)[:5] == [0.25, 0.5, 0.75, 1.0, 1.0]
    cosine = lrs("cosine", warmup_steps=2, min_lr_ratio=0.1)
    assert cosine[:2] == [1 / 3, 2 / 3] and cosine[2] == pytest.approx(1.0)
    assert cosine[-1] == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 7 / 8)))
    assert all(a >= b for a, b in zip(cosine[2:], cosine[3:]))
    linear = lrs("linear", steps=6)
    assert linear == pytest.approx([1.0, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6])
    assert lrs("step", gamma=0.5, step_epochs=2) == [1.0] * 4 + [0.5] * 4 + [0.25] * 2  # 2 steps per epoch
    assert lrs("none", warmup_epochs=1.5)[:4] == [0.25, 0.5, 0.75, 1.0]  # 1.5 epochs = 3 steps


def test_plateau_cuts_after_its_patience_and_keeps_its_floor():
    sched = LrSchedule(SchedulerConfig(name="plateau", gamma=0.5, plateau_patience=2, min_lr_ratio=0.2), 1.0, 1, 10)
    for score in (0.1, 0.2, 0.2, 0.1):
        sched.after_evaluation(score)
    assert sched.plateau_factor == 0.5
    for _ in range(6):
        sched.after_evaluation(0.0)
    assert sched.plateau_factor == 0.2
    restored = LrSchedule(sched.cfg, 1.0, 1, 10)
    restored.load_state_dict(sched.state_dict())
    assert restored.state_dict() == sched.state_dict()


def test_cosine_schedule_shows_in_the_history_and_survives_resume_bit_for_bit(tmp_path):
    """A run interrupted by SIGTERM and resumed repeats the uninterrupted run's every lr and loss."""
    args = [
        "scheduler=cosine",
        "scheduler.warmup_epochs=0",
        "scheduler.warmup_steps=3",
        *SMALL,
        "dataset.synthetic.n_users=600",
        "trainer.max_epochs=5",
    ]
    straight = run_cli([*args, "hydra.run.dir=straight"], tmp_path)
    assert straight.returncode == 0, straight.stderr
    env = {**os.environ, "SEQREC_CACHE_DIR": str(tmp_path / ".cache")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "seqrec_cli.cli.train", *args, "hydra.run.dir=cut"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    rows = tmp_path / "cut" / "history.csv"
    deadline = time.time() + 120
    while not (rows.exists() and len(rows.read_text().splitlines()) >= 3) and proc.poll() is None:
        assert time.time() < deadline
        time.sleep(0.02)
    proc.send_signal(signal.SIGTERM)
    proc.communicate(timeout=120)
    if proc.returncode == 0:
        pytest.skip("the run finished before the signal arrived")
    assert proc.returncode == 143
    resumed = run_cli([*args, "trainer.resume=cut"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    a, b = history(tmp_path / "straight"), history(tmp_path / "cut")
    for row in a + b:
        row.pop("seconds")
    assert a == b
    lr = [float(r["lr"]) for r in a]
    assert lr == sorted(lr, reverse=True) and lr[0] < 0.002  # a cosine falling from the base lr
    assert load_checkpoint(tmp_path / "cut" / "checkpoints" / "last.pt")["schedule"]["step"] > 0


def test_bad_schedule_values_are_one_sentence():
    for key, value, message in [
        ("name", "exponential", "scheduler.name"),
        ("gamma", 0.0, "scheduler.gamma"),
        ("min_lr_ratio", 2.0, "scheduler.min_lr_ratio"),
    ]:
        cfg = TrainConfig()
        setattr(cfg.scheduler, key, value)
        with pytest.raises(UserError, match=message):
            validate(cfg)
    cfg = TrainConfig()
    cfg.scheduler.warmup_steps, cfg.scheduler.warmup_epochs = 10, 1.0
    with pytest.raises(UserError, match="give the warmup one way"):
        validate(cfg)
    cfg = TrainConfig()
    cfg.trainer.accumulate_grad_batches = 0
    with pytest.raises(UserError, match="trainer.accumulate_grad_batches"):
        validate(cfg)
    cfg = TrainConfig()
    cfg.trainer.precision = "fp8"
    with pytest.raises(UserError, match="trainer.precision='fp8': expected one of bf16, fp16, fp32"):
        validate(cfg)


# ---- accumulation, weight decay ----------------------------------------------------------------


def test_accumulating_two_batches_trains_like_one_batch_twice_the_size(tmp_path):
    base = [*SMALL, "trainer.max_epochs=1", "encoder.dropout=0.0"]
    one = run_cli([*base, "trainer.batch_size=64", "hydra.run.dir=one"], tmp_path)
    two = run_cli([*base, "trainer.batch_size=32", "trainer.accumulate_grad_batches=2", "hydra.run.dir=two"], tmp_path)
    assert one.returncode == 0 and two.returncode == 0, two.stderr
    assert run_cli([*base, "trainer.batch_size=32", "hydra.run.dir=plain"], tmp_path).returncode == 0
    loss = {name: float(history(tmp_path / name)[0]["train_loss"]) for name in ("one", "two", "plain")}
    # The same rows in the same order make each step; only the summation order differs.
    assert loss["two"] == pytest.approx(loss["one"], rel=1e-4)
    assert loss["plain"] != pytest.approx(loss["one"], rel=1e-4)


def test_weight_decay_skips_norms_biases_and_embeddings_when_asked():
    from seqrec_cli import models

    cfg = TrainConfig()
    cfg.optimizer.name, cfg.optimizer.weight_decay = "adamw", 0.1
    model = models.build(cfg.model, cfg.encoder, 50)
    everything = build_optimizer(model, cfg, torch.device("cpu"))
    assert len(everything.param_groups) == 1 and everything.param_groups[0]["weight_decay"] == 0.1
    cfg.optimizer.decay_norms_and_biases, cfg.optimizer.decay_embeddings = False, False
    split = build_optimizer(model, cfg, torch.device("cpu"))
    decayed, kept = split.param_groups
    embeddings = {id(m.weight) for m in model.modules() if isinstance(m, torch.nn.Embedding)}
    assert kept["weight_decay"] == 0.0 and decayed["weight_decay"] == 0.1
    assert all(p.ndim >= 2 and id(p) not in embeddings for p in decayed["params"])
    assert embeddings <= {id(p) for p in kept["params"]}
    assert len(decayed["params"]) + len(kept["params"]) == len(list(model.parameters()))


# ---- early stopping, top-k, the epoch line -----------------------------------------------------


def test_patience_n_stops_after_n_evaluations_without_a_new_best(tmp_path):
    """min_delta 1.0: only the first evaluation can be a new best, so patience 2 stops at epoch 3."""
    result = run_cli(
        ["debug=smoke", "trainer.max_epochs=10", "trainer.patience=2", "trainer.min_delta=1.0", "hydra.run.dir=r"],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    metrics = json.loads((tmp_path / "r" / "metrics.json").read_text())
    assert metrics["best_epoch"] == 1 and metrics["epochs_run"] == 3 and metrics["stopped_early"]
    log = (tmp_path / "r" / "train.log").read_text()
    assert "epoch  3/10" in log and "patience 2/2" in log and "A * marks a new best valid/ndcg@10" in log


def test_save_top_k_keeps_the_k_best_epochs(tmp_path):
    result = run_cli([*SMALL, "trainer.max_epochs=4", "trainer.save_top_k=2", "hydra.run.dir=r"], tmp_path)
    assert result.returncode == 0, result.stderr
    rows = history(tmp_path / "r")
    best_two = sorted(rows, key=lambda r: (-float(r["valid/ndcg@10"]), int(r["epoch"])))[:2]
    kept = sorted(p.name for p in (tmp_path / "r" / "checkpoints" / "top").iterdir())
    assert kept == sorted(f"epoch-{int(r['epoch']):03d}.pt" for r in best_two)
    for name in kept:
        ckpt = load_checkpoint(tmp_path / "r" / "checkpoints" / "top" / name)
        assert ckpt["epoch"] == int(name[6:9]) and "item_ids" in ckpt


# ---- debug presets -----------------------------------------------------------------------------


def test_debug_fast_runs_the_pipeline_and_keeps_nothing(tmp_path):
    result = run_cli(["debug=fast", "dataset=synthetic", "dataset.synthetic.n_users=300"], tmp_path)
    assert result.returncode == 0, result.stderr
    assert "removed" in result.stderr and "Test metrics" in result.stdout + result.stderr
    assert not list((tmp_path / "outputs").rglob("*.json"))


def test_debug_overfit_drives_the_training_loss_down(tmp_path):
    result = run_cli(
        [
            "debug=overfit",
            "dataset=synthetic",
            "dataset.synthetic.n_users=200",
            "dataset.use_cache=false",
            "trainer.overfit_batches=1",
            "trainer.batch_size=64",
            # 30 of the preset's 150 epochs already take one fixed batch's loss from ~6.2 to ~0.7.
            "trainer.max_epochs=30",
            "hydra.run.dir=r",
        ],
        tmp_path,
    )
    assert result.returncode == 0, result.stderr
    losses = [float(r["train_loss"]) for r in history(tmp_path / "r")]
    assert len(losses) == 30 and losses[-1] < 0.25 * losses[0]


def test_help_lists_every_group_states_patience_and_writes_nothing(tmp_path):
    result = run_cli(["encoder=gru", "--help"], tmp_path)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "scheduler: cosine, linear, none, plateau, step" in out and "debug: fast, overfit, smoke" in out
    assert "trainer.patience=N stops after N evaluations" in out and "name: gru" in out
    assert "hydra" not in [line.split(":")[0] for line in out.splitlines()]
    assert not (tmp_path / "outputs").exists()


# ---- in-process: best-weights restore, eval_every, grad_clip_norm ----------------------------------


def _tiny(tmp_path, **trainer):
    from seqrec_cli import models
    from seqrec_cli.config.schema import EncoderConfig
    from seqrec_cli.data import load

    cfg = tiny_train_config(EncoderConfig(name="gru", num_layers=1, dropout=0.0), **trainer)
    validate(cfg)
    splits, _ = load(cfg.dataset)
    torch.manual_seed(0)
    return cfg, splits, models.build(cfg.model, cfg.encoder, splits.data.n_items)


def _fit(cfg, splits, model, run_dir):
    from seqrec_cli.training.trainer import FitContext, fit

    return fit(model, splits, cfg, torch.device("cpu"), FitContext(run_dir))


def test_fit_ends_with_the_best_epoch_s_weights_not_the_last(tmp_path):
    """min_delta 1.0: only the first evaluation is a new best; three epochs later the model must hold epoch 1."""
    cfg, splits, model = _tiny(tmp_path, max_epochs=3, patience=100, min_delta=1.0)
    result = _fit(cfg, splits, model, tmp_path)
    best, last = (load_checkpoint(tmp_path / "checkpoints" / n) for n in ("best.pt", "last.pt"))
    assert result.state.best_epoch == 1 and best["epoch"] == 1 and result.state.epoch == 3
    assert all(torch.equal(v, best["model"][k]) for k, v in model.state_dict().items())
    assert not all(torch.equal(v, last["model"][k]) for k, v in model.state_dict().items())
    assert not result.stopped_early


def test_patience_and_eval_every_decide_when_training_stops(tmp_path):
    """Evaluations at epochs 2, 4, 6 (eval_every 2); epoch 2 is the only best, patience 2: stop after 6."""
    cfg, splits, model = _tiny(tmp_path, max_epochs=20, patience=2, min_delta=1.0, eval_every=2)
    result = _fit(cfg, splits, model, tmp_path)
    evaluated = [r["epoch"] for r in result.state.history if "valid/ndcg@10" in r]
    assert evaluated == [2, 4, 6] and result.state.epoch == 6 and result.stopped_early
    assert result.state.best_epoch == 2 and result.state.bad_evals == 2


@pytest.mark.parametrize("clip", [1e-3, None])
def test_grad_clip_norm_bounds_the_step(tmp_path, clip):
    """Plain SGD with lr 1: one step moves the weights by exactly the (clipped) gradient norm."""
    cfg, splits, model = _tiny(tmp_path, max_epochs=1, limit_batches=1, grad_clip_norm=clip)
    cfg.optimizer.name, cfg.optimizer.lr, cfg.optimizer.momentum, cfg.optimizer.weight_decay = "sgd", 1.0, 0.0, 0.0
    before = {k: v.clone() for k, v in model.state_dict().items()}
    _fit(cfg, splits, model, tmp_path)
    moved = torch.sqrt(sum(((v - before[k]) ** 2).sum() for k, v in model.state_dict().items()))
    if clip:
        assert moved <= clip * (1 + 1e-4)
    else:
        assert moved > 100 * 1e-3  # unclipped, the same step is far larger: the bound above is the clip's doing
