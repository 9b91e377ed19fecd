"""`benchmark.py peer --peers rectools`: our attention encoder beside RecTools 0.19's SASRecModel.

Why a second peer: RecBole is the slow library users leave; RecTools is the one they pick for
speed and quality, so "faster than the fast peer" is the claim worth measuring. RecTools runs in
its own venv (.venv-rectools/: it pins numpy < 2), driven by `rectools_runner.py`.

Same events: we export our own pipeline's filtered events (original ids, each user's events in our
order, `position` = rank in that order) and both sides split them leave-one-out; the targets are
checked equal twice, on the runner's own split function before anything runs and on what the
runner reports, before any figure is shown. Matched settings (`MATCHED`): 64 wide, 2 blocks,
1 head, dropout 0.2, max length 50, batch 128, Adam 1e-3 with betas (0.9, 0.98) (both sides'
default), full softmax, a fixed epoch budget, validation every epoch, test at the best validation
epoch; ours with `trainer.all_windows=false`: one window per user, the last, as RecTools trains.
What cannot be matched is listed in `UNMATCHED` and printed under the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

SCRIPTS = Path(__file__).resolve().parent
REPO = SCRIPTS.parent
RUNNER = SCRIPTS / "rectools_runner.py"
RECTOOLS_PINS = ["rectools[torch]==0.19.*", "torch==2.13.0"]
RECTOOLS_VERSION = "0.19"
# Targets of issue #22 at matched settings: training throughput, per dataset.
TRAIN_TARGETS = {"ml-100k": 3.0, "beauty": 10.0}

MATCHED = [
    "model.embedding_dim=64",
    "model.max_len=50",
    "encoder.num_layers=2",
    "encoder.num_heads=1",
    "encoder.ffn_size=64",
    "encoder.dropout=0.2",
    "trainer.batch_size=128",
    "optimizer=adam",
    "optimizer.lr=0.001",
    "optimizer.betas=[0.9,0.98]",
    "loss=ce",
    "trainer.all_windows=false",
]
UNMATCHED = [
    "RecTools' block is post-LN with a ReLU feed-forward (ours: pre-LN, GELU); its final LayerNorm has eps 1e-8",
    "RecTools initialises with Xavier (ours: normal, std model.init_std)",
    "RecTools' catalogue holds only items seen in training: a validation or test target never trained on cannot"
    " be recommended (ours ranks every item)",
    "RecTools' attention has no key padding mask by default (use_key_padding_mask=False); ours masks padding",
    "RecTools' validation pass is its `recommend` call (its data preparation included); ours the ranking alone",
]


def rectools_python(venv: Path) -> Path:
    return venv.absolute() / "bin" / "python"


def rectools_ready(venv: Path) -> bool:
    python = rectools_python(venv)
    probe = f"import rectools, sys; sys.exit(not rectools.__version__.startswith({RECTOOLS_VERSION!r}))"
    return python.is_file() and subprocess.run([str(python), "-c", probe], capture_output=True).returncode == 0


def ensure_rectools_venv(venv: Path, install: bool = True) -> Path:
    """The RecTools environment's python, creating it once (a few minutes)."""
    if rectools_ready(venv):
        return rectools_python(venv)
    if not install:
        raise SystemExit(f"No RecTools {RECTOOLS_VERSION} environment at {venv}: run without --skip-rectools-install.")
    print(f"creating {venv} with {' '.join(RECTOOLS_PINS)} ...", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    done = subprocess.run(
        [str(rectools_python(venv)), "-m", "pip", "install", "--quiet", *RECTOOLS_PINS], capture_output=True, text=True
    )
    if done.returncode != 0 or not rectools_ready(venv):
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"Installing RecTools into {venv} failed (pip exit code {done.returncode}).")
    return rectools_python(venv)


def our_overrides(dataset: Any, args: argparse.Namespace) -> list[str]:
    """Ours at RecTools' settings: the fixed budget runs every epoch (patience = the budget)."""
    return [
        f"dataset={dataset.option}",
        f"dataset.path={dataset.path}",
        "encoder=attention",
        *MATCHED,
        f"trainer.max_epochs={args.epochs}",
        f"trainer.patience={args.epochs}",
        f"trainer.num_threads={args.threads}",
        f"trainer.seed={args.seed}",
        "trainer.device=cpu",
        "trainer.eval_every=1",
        "trainer.monitor=ndcg@10",
        *args.extra,
    ]


def rectools_model(cfg: Any) -> dict[str, Any]:
    """SASRecModel keyword arguments equal to our composed config where RecTools has the setting."""
    e, m, t, o = cfg.encoder, cfg.model, cfg.trainer, cfg.optimizer
    if cfg.loss.name != "ce" or e.name != "attention" or o.name != "adam" or list(o.betas) != [0.9, 0.98]:
        raise SystemExit("The RecTools comparison mirrors loss=ce, encoder=attention, Adam betas (0.9, 0.98) only.")
    return {
        "n_blocks": e.num_layers,
        "n_heads": e.num_heads,
        "n_factors": m.embedding_dim,
        "dropout_rate": e.dropout,
        "session_max_len": m.max_len,
        "loss": "softmax",
        "lr": o.lr,
        "batch_size": t.batch_size,
        "deterministic": True,
        "recommend_torch_device": "cpu",
        "recommend_batch_size": t.eval_batch_size,
    }


def export_events(cfg: Any, path: Path) -> pd.DataFrame:
    """Our filtered events (original ids), each user's in our order, `position` = global rank."""
    from seqrec_cli.data import load

    splits, _ = load(cfg.dataset)
    data = splits.data
    lengths = np.diff(data.offsets)
    events = pd.DataFrame(
        {
            "user": np.repeat(np.asarray(data.user_ids), lengths).astype(str),
            "item": np.asarray(data.item_ids)[np.asarray(data.items) - 1].astype(str),
            "position": np.arange(len(data.items), dtype=np.int64),
        }
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    events.to_csv(path, index=False)
    return events


def split_problems(ours: dict[str, Any], theirs: dict[str, Any]) -> list[str]:
    """compare_splits' sentences, naming RecTools rather than RecBole."""
    from peer_data import compare_splits

    return [p.replace("RecBole", "RecTools") for p in compare_splits(ours, theirs)]


def check_export(events: pd.DataFrame, ours: dict[str, Any]) -> None:
    """The runner's own leave-one-out over the exported file must pick our targets."""
    sys.path.insert(0, str(SCRIPTS))
    from rectools_runner import leave_one_out

    split = leave_one_out(events)
    counts = {"users": events["user"].nunique(), "items": events["item"].nunique(), "interactions": len(events)}
    problems = split_problems(ours, {"counts": counts, "valid": split["valid"], "test": split["test"]})
    if problems:
        raise SystemExit(f"The exported events split differently from ours ({'; '.join(problems)}).")


def run_rectools(python: Path, spec: dict[str, Any], work: Path) -> dict[str, Any]:
    work.mkdir(parents=True, exist_ok=True)
    (work / "spec.json").write_text(json.dumps(spec))
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "OMP_NUM_THREADS": str(spec["threads"])}
    done = subprocess.run(
        [str(python), str(RUNNER), str(work / "spec.json"), str(work / "result.json")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        print(done.stderr[-3000:], file=sys.stderr)
        raise SystemExit(f"RecTools failed (exit code {done.returncode}); its output is above.")
    return json.loads((work / "result.json").read_text())


def rectools_side(result: dict[str, Any]) -> dict[str, Any]:
    """The runner's figures in the shape `peer.run_ours` returns; a training window is one per
    training user with >= 2 events (RecTools' last window), its targets those of the window."""
    from peer_data import runner_figures

    return {
        **runner_figures(result),
        "train_sequences": result["train_users"],
        "train_targets": result["train_targets"],
        "eval_users": len(result["valid_targets"]),
        "batch": "128 sequences",
    }


def rectools_checks(dataset: str, ratios: dict[str, Any], ours: dict, theirs: dict) -> dict[str, bool]:
    target = TRAIN_TARGETS.get(dataset, 3.0)
    return {
        f"training >= {target:g}x": (ratios["s_per_epoch"] or 0) >= target,
        "test NDCG@10 >= RecTools'": ours["test_ndcg@10"] >= theirs["test_ndcg@10"],
        "less peak RSS": ours["peak_rss_gb"] < theirs["peak_rss_gb"],
    }


TrainChild = Callable[[list, Path, Path], tuple]


def run_pair(dataset: Any, args: argparse.Namespace, python: Path, scratch: Path, train_child: TrainChild) -> dict:
    """Ours, then RecTools on the same exported events; stops when the splits differ."""
    from peer import compose_ours, run_ours
    from peer_data import our_split
    from peer_table import pair_row

    overrides = our_overrides(dataset, args)
    cfg = compose_ours(overrides)
    cfg.dataset.cache_dir = str(scratch / "cache")
    events = export_events(cfg, scratch / f"rectools-{dataset.key}" / "events.csv")
    ours_split = our_split(cfg.dataset)
    check_export(events, ours_split)
    print(f"[{dataset.key} / attention] ours at RecTools' settings ({uptime()}) ...", flush=True)
    ours = run_ours(
        overrides, cfg.trainer.batch_size, scratch / f"ours-rectools-{dataset.key}", scratch / "cache", train_child
    )
    print(f"[{dataset.key} / attention] RecTools SASRecModel ({uptime()}) ...", flush=True)
    spec = {
        "events": str(scratch / f"rectools-{dataset.key}" / "events.csv"),
        "threads": args.threads,
        "epochs": args.epochs,
        "seed": args.seed,
        "model": rectools_model(cfg),
    }
    result = run_rectools(python, spec, scratch / f"rectools-{dataset.key}")
    problems = split_problems(
        ours_split, {"counts": result["counts"], "valid": result["valid_targets"], "test": result["test_targets"]}
    )
    if problems:
        raise SystemExit(f"RecTools' split of {dataset.key} differs from ours ({'; '.join(problems)}).")
    row = pair_row(dataset.key, "attention vs SASRecModel", ours, rectools_side(result), {"train": 0, "eval": 0})
    row["peer"], row["rectools_catalogue_items"] = "RecTools", result["catalogue_items"]
    row["checks"] = rectools_checks(dataset.key, row["ratios"], row["ours"], row["recbole"])
    row["load_after"] = uptime()
    return row


def uptime() -> str:
    return "load average " + " / ".join(f"{x:.2f}" for x in os.getloadavg())


def markdown(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """The docs/PERFORMANCE.md section: machine and load, command, table, checks, unmatched settings."""
    from peer_table import table_lines

    lines = [
        f"Measured {meta['date']} on {meta['cpu']} ({meta['cores']} cores), {meta['threads']} torch threads per side, "
        f"torch {meta['torch']}, RecTools {meta['rectools']}; a fixed budget of {meta['epochs']} epoch(s), validation "
        f"every epoch, test at the best one, seed {meta['seed']}. Load average at the start {meta['load_start']}; "
        + "; ".join(f"after {row['dataset']} {row['load_after']}" for row in rows)
        + ".",
        "",
        "`python scripts/benchmark.py peer " + " ".join(meta["argv"]) + "`",
        "",
        *table_lines(rows, markdown=True, peer="RecTools"),
        "",
        *(
            f"- {row['dataset']}: "
            + ", ".join(f"{k} {'yes' if v else 'NO'}" for k, v in row["checks"].items())
            + f" (RecTools' catalogue: {row['rectools_catalogue_items']:,} of {row['ours']['counts']['items']:,} items)"
            for row in rows
        ),
        "",
        "Not matched:",
        *(f"- {u}" for u in UNMATCHED),
    ]
    return "\n".join(lines) + "\n"


def run_all(args: argparse.Namespace, datasets: dict, scratch: Path, train_child: TrainChild) -> list[dict]:
    """Every requested dataset against RecTools; writes --rectools-markdown when given."""
    import torch

    python = ensure_rectools_venv(args.rectools_venv, install=not args.skip_rectools_install)
    meta = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "cpu": _cpu(),
        "cores": os.cpu_count(),
        "threads": args.threads,
        "torch": torch.__version__,
        "rectools": RECTOOLS_VERSION,
        "epochs": args.epochs,
        "seed": args.seed,
        "load_start": uptime().replace("load average ", ""),
        "argv": sys.argv[2:],
    }
    rows = [run_pair(datasets[key], args, python, scratch, train_child) for key in args.datasets]
    text = markdown(rows, meta)
    print(text)
    if args.rectools_markdown:
        args.rectools_markdown.write_text(text)
    return rows


def _cpu() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"
