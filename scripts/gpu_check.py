#!/usr/bin/env python
"""The Python half of `scripts/gpu_check.sh`: the measurements and the one table it prints.

Subcommands (the shell script calls them; each is usable alone):
  train OUT.json -- OVERRIDES...   one real `seqrec-train` run in this process; OUT gets the
                                   run's metrics.json figures plus peak GPU memory (which
                                   metrics.json does not hold)
  equal RUN_DIR OUT.json           evaluate one trained run on the CPU and on CUDA (float32, the
                                   same checkpoint) and compare every validation user's rank
  table WORKDIR                    the table of everything WORKDIR holds, as markdown

Why the equality check compares one checkpoint on two devices rather than two trainings: two
trainings drift apart by float rounding from the first step, so their metrics differ by design;
the same weights must rank the same, up to items whose scores are equal within float rounding
(a tie on one device can be broken the other way on the other).
"""

from __future__ import annotations

import json
import runpy
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any, Optional

import numpy as np

REPO = Path(__file__).resolve().parents[1]


# -------------------------------------------------------------------------------------- train


def train(out: Path, overrides: list[str]) -> int:
    """Run the CLI here (not in a child) so this process can read CUDA's peak memory afterwards."""
    import torch

    run_dir = next((o.split("=", 1)[1] for o in overrides if o.startswith("hydra.run.dir=")), None)
    if run_dir is None:
        raise SystemExit("gpu_check.py train needs hydra.run.dir=DIR among the overrides")
    sys.argv = ["seqrec-train", *overrides]
    started = time.perf_counter()
    code = 0
    try:
        runpy.run_module("seqrec_cli.cli.train", run_name="__main__")
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    result: dict[str, Any] = {"exit_code": code, "wall_s": round(time.perf_counter() - started, 1)}
    metrics_path = Path(run_dir) / "metrics.json"
    if metrics_path.is_file():
        result.update(summarise_run(Path(run_dir)))
    if torch.cuda.is_available():
        result["peak_gpu_allocated_gib"] = round(torch.cuda.max_memory_allocated() / 2**30, 2)
        result["peak_gpu_reserved_gib"] = round(torch.cuda.max_memory_reserved() / 2**30, 2)
        result["gpu"] = torch.cuda.get_device_name(0)
    out.write_text(json.dumps(result, indent=2) + "\n")
    return code


def summarise_run(run_dir: Path) -> dict[str, Any]:
    """The figures of one run directory: seconds per epoch (mean, and each epoch's, which shows
    the first epoch's compile and warm-up), the step profile, the validation metrics."""
    import csv

    m = json.loads((run_dir / "metrics.json").read_text())
    history = list(csv.DictReader((run_dir / "history.csv").open())) if (run_dir / "history.csv").is_file() else []
    profile = m.get("profile") or {}
    steps = -(-m["train_sequences"] // batch_size(run_dir)) if batch_size(run_dir) else None
    wall_ms = profile.get("wall_ms_per_step")
    return {
        "device": m.get("device"),
        "torch": m.get("torch_version"),
        "epochs_run": m["epochs_run"],
        "train_s_per_epoch": round(m["train_seconds"] / max(m["epochs_run"], 1), 2),
        # history.csv's seconds include each epoch's validation pass.
        "epoch_s_with_valid": [float(row["seconds"]) for row in history],
        "valid_eval_s_per_pass": round(m["valid_eval_seconds"] / max(m["epochs_run"], 1), 3),
        # The last epoch's training alone (its validation pass taken off): from the second epoch on
        # neither warm-up, compilation nor the profiler's own summary (seconds on a CPU) is in it.
        "last_epoch_train_s": round(float(history[-1]["seconds"]) - m["valid_eval_seconds"] / m["epochs_run"], 2)
        if len(history) >= 2
        else None,
        "train_sequences": m["train_sequences"],
        "train_positions": m["train_positions"],
        "valid_ndcg@10": m["valid"].get("ndcg@10"),
        "profile_wall_ms_per_step": wall_ms,
        # An epoch at the profiled steps' pace (after the warm-up, so without compile time).
        "steady_s_per_epoch": round(wall_ms * steps / 1000, 2) if wall_ms and steps else None,
        "profile_kernel_ms_per_step": profile.get("device_kernel_ms_per_step"),
        "device_share": profile.get("device_share"),
    }


def batch_size(run_dir: Path) -> Optional[int]:
    """trainer.batch_size of a run, from the config Hydra saved beside it."""
    try:
        from omegaconf import OmegaConf

        return int(OmegaConf.load(run_dir / ".hydra" / "config.yaml").trainer.batch_size)
    except Exception:  # an unreadable config only costs the steady-state estimate
        return None


# -------------------------------------------------------------------------------------- equal


def queries_and_ranks(run_dir: Path, device: str) -> dict[str, Any]:
    """One device's float32 validation pass of the run's best weights: every row's query, scores
    of all items (history masked) and the official ranks, all in the inputs' (width-sorted) order."""
    import torch

    from seqrec_cli.evaluation.metrics import ranking_metrics
    from seqrec_cli.reporting.runs import load_splits, open_run, side_inputs_for
    from seqrec_cli.evaluation import ranking

    run = open_run(run_dir, device)
    splits, _ = load_splits(run)
    cfg = run.cfg
    inputs = ranking.prepare(
        splits, splits.valid, cfg.model.max_len, cfg.eval.mask_history, run.device, side_inputs_for(run, splits.data)
    )
    scorer = ranking.model_scorer(run.model, amp=False)
    batch = cfg.trainer.eval_batch_size
    ranks = ranking.rank_all(inputs, scorer, batch)  # the split's order
    with torch.no_grad():
        queries = torch.cat([scorer.encode(inputs, rows) for rows in ranking.batch_slices(inputs.widths, batch)])
        scores = run.model.scores(queries).float().cpu().numpy().astype(np.float64)
    offsets, masked = inputs.mask_offsets, inputs.mask_items.cpu().numpy() - 1
    for row in range(len(scores)):  # the history items the ranking excludes
        scores[row, masked[offsets[row] : offsets[row + 1]]] = -np.inf
    return {
        "ranks": ranks,
        "order": np.asarray(inputs.order),
        "scores": scores,
        "targets": inputs.targets.cpu().numpy() - 1,
        "metrics": ranking_metrics(ranks, cfg.eval.ks),
    }


def explain_rank_changes(a: dict[str, Any], b: dict[str, Any], slack: float = 4.0) -> dict[str, Any]:
    """Users whose rank differs between devices a and b, and whether each difference is a float
    tie: a rank can only move by the number of items whose score is within float rounding of the
    target's (`slack` x the row's largest score difference between the devices, or 1e-6 relative)."""
    sorted_ranks_a, sorted_ranks_b = a["ranks"][a["order"]], b["ranks"][b["order"]]
    differing = np.flatnonzero(sorted_ranks_a != sorted_ranks_b)
    finite = np.isfinite(a["scores"]) & np.isfinite(b["scores"])
    with np.errstate(invalid="ignore"):
        diff = np.where(finite, np.abs(a["scores"] - b["scores"]), 0.0)
    unexplained = []
    for row in differing:
        sa, t = a["scores"][row], a["targets"][row]
        tol = slack * float(diff[row].max()) + 1e-6 * max(1.0, abs(float(sa[t])))
        near = int((np.abs(sa - sa[t]) <= tol).sum()) - 1  # the target itself is not counted
        if abs(int(sorted_ranks_a[row]) - int(sorted_ranks_b[row])) > near:
            unexplained.append(int(row))
    return {
        "users": int(len(sorted_ranks_a)),
        "ranks_differ": int(len(differing)),
        "not_float_ties": len(unexplained),
        "max_abs_score_diff": float(diff.max()) if diff.size else 0.0,
    }


def equal(run_dir: Path, out: Path) -> int:
    import torch

    if not torch.cuda.is_available():
        out.write_text(json.dumps({"skipped": "no CUDA device"}) + "\n")
        return 0
    cpu, gpu = queries_and_ranks(run_dir, "cpu"), queries_and_ranks(run_dir, "cuda")
    result = explain_rank_changes(cpu, gpu)
    result["metrics_cpu"], result["metrics_gpu"] = cpu["metrics"], gpu["metrics"]
    result["max_metric_diff"] = max(abs(cpu["metrics"][k] - gpu["metrics"][k]) for k in cpu["metrics"])
    result["ok"] = result["not_float_ties"] == 0
    out.write_text(json.dumps(result, indent=2) + "\n")
    return 0 if result["ok"] else 1


# -------------------------------------------------------------------------------------- table


def read_json(path: Path) -> Optional[dict[str, Any]]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def step_status(work: Path, name: str) -> str:
    """What the shell script recorded for a step: `ok 12s`, `failed (exit 1) 30s`, `timed out
    after 150s`, `skipped: why`, or `not run`."""
    path = work / "steps" / f"{name}.status"
    return path.read_text().strip() if path.is_file() else "not run"


def pytest_rows(work: Path) -> list[list[str]]:
    """One row per CUDA test from pytest's junit XML: passed / failed / skipped (and why)."""
    path = work / "pytest.xml"
    if not path.is_file():
        return [["CUDA tests (tests/test_cuda.py)", step_status(work, "tests"), ""]]
    rows = []
    for case in ET.parse(path).getroot().iter("testcase"):
        outcome, detail = "passed", f"{float(case.get('time', 0)):.1f} s"
        for tag in ("failure", "error", "skipped"):
            found = case.find(tag)
            if found is not None:
                outcome = {"failure": "FAILED", "error": "ERROR", "skipped": "skipped"}[tag]
                detail = (found.get("message") or "").splitlines()[0][:100] if found.get("message") else tag
        rows.append([f"test: {case.get('name')}", outcome, detail])
    return rows


def equality_row(work: Path) -> list[str]:
    r = read_json(work / "equal.json")
    label = "valid metrics GPU = CPU (same checkpoint, float32)"
    if r is None or "skipped" in (r or {}):
        return [label, (r or {}).get("skipped") or step_status(work, "equal"), ""]
    verdict = "equal" if r["ok"] else "DIFFER"
    return [
        label,
        verdict,
        f"{r['ranks_differ']} of {r['users']} ranks differ, {r['not_float_ties']} not float ties; "
        f"max |score diff| {r['max_abs_score_diff']:.2e}; max metric diff {r['max_metric_diff']:.2e}",
    ]


def ml20m_rows(work: Path, name: str, label: str) -> list[list[str]]:
    r = read_json(work / f"{name}.json")
    if r is None or "train_s_per_epoch" not in r:
        return [[label, step_status(work, name), ""]]
    epochs = ", ".join(f"{s:.1f}" for s in r["epoch_s_with_valid"])
    share = r.get("device_share")
    return [
        [
            f"{label}: s / epoch",
            f"{r['train_s_per_epoch']:.2f}",
            f"{r['epochs_run']} epoch(s) of {r['train_sequences']:,} sequences (first: warm-up / compile included); "
            f"with validation: {epochs} s; eval pass {r['valid_eval_s_per_pass']} s",
        ],
        [
            f"{label}: s / epoch, last epoch",
            str(r.get("last_epoch_train_s") or "— (1 epoch run)"),
            "the last epoch's seconds less its validation pass: no warm-up, compilation or profiler in it",
        ],
        [
            f"{label}: s / epoch at the profiled pace",
            str(r.get("steady_s_per_epoch")),
            "wall ms per profiled step x steps per epoch (steps 6-25 of epoch 1)",
        ],
        [
            f"{label}: GPU busy share of a step",
            "—" if share is None else f"{share:.1%}",
            f"{r.get('profile_kernel_ms_per_step')} ms kernels in {r.get('profile_wall_ms_per_step')} ms wall per step",
        ],
        [
            f"{label}: peak GPU memory",
            f"{r.get('peak_gpu_allocated_gib')} GiB",
            f"reserved {r.get('peak_gpu_reserved_gib')} GiB",
        ],
    ]


def table(work: Path) -> int:
    env = read_json(work / "env.json") or {}
    rows = [["environment", step_status(work, "setup"), env.get("summary", "")]]
    rows += pytest_rows(work)
    rows.append(equality_row(work))
    rows += ml20m_rows(work, "ml20m_eager", "synthetic_ml20m eager")
    rows += ml20m_rows(work, "ml20m_compiled", "synthetic_ml20m compiled")
    lines = ["| check | result | detail |", "|---|---|---|"]
    lines += ["| " + " | ".join(cell.replace("|", "/") for cell in row) + " |" for row in rows]
    text = "\n".join(lines) + "\n"
    (work / "table.md").write_text(text)
    print(text)
    return 0


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "train":
        rest = argv[2:]
        return train(Path(argv[1]), rest[1:] if rest[:1] == ["--"] else rest)
    if len(argv) == 3 and argv[0] == "equal":
        return equal(Path(argv[1]), Path(argv[2]))
    if len(argv) == 2 and argv[0] == "table":
        return table(Path(argv[1]))
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
