"""`benchmark.py peer`: our throughput beside RecBole 1.2.1 on the same machine, data, split and settings.

Why a peer: a seconds-per-epoch figure alone says little; beside a widely used library run on the
same data, split, hyper-parameters and threads it says how much the design choices (one row per
window instead of one per prefix, batched full ranking) buy. RecBole runs in its own virtual
environment (it needs numpy < 2 and pandas < 3; seqrec_cli needs the opposite), driven by
`recbole_runner.py` (`peer_recbole.py`: the environment, the mirrored config, the run); our side is
a real `seqrec-train` run in a child process.

What makes the two sides comparable:
- the same events: RecBole reads atomic files written here whose time field is each event's
  position in our order (exact integer timestamp, ties in file order; sequence files: position in
  the line), so its leave-one-out picks the same validation and test targets. RecBole keeps float
  fields as float32 and sorts raw timestamps differently at ties (docs/PERFORMANCE.md); the run
  checks that filtered counts and every user's targets agree before reporting a figure.
- the same filters: our dataset option's min_user_count / min_item_count become RecBole's
  `user_inter_num_interval` / `item_inter_num_interval` (both iterate the k-core to a fixed point).
- the same hyper-parameters, taken from our composed config (`peer_recbole.recbole_config`).

Batch units differ: RecBole's batch is prefixes (one target each), ours is windows (a target at
every position). By default RecBole's `train_batch_size` is our batch size times our mean targets
per window, so both sides take the same number of optimizer steps per epoch with the same number
of supervised targets per step (`--recbole-batch N` sets it instead, e.g. 2048, RecBole's default).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from peer_data import compare_splits, ordered_events, our_split, write_atomic  # noqa: E402
from peer_recbole import (  # noqa: E402
    MODELS,
    RECBOLE_VERSION,
    ensure_recbole_venv,
    matched_batch,
    recbole_config,
    recbole_side,
    run_recbole,
)
from peer_table import machine, markdown_report, pair_row, table_lines, verdict_lines  # noqa: E402


@dataclass(frozen=True)
class PeerDataset:
    """One benchmark dataset: our `dataset=` option, its file, and the name RecBole reads it under.

    The RecBole name must not be `ml-100k`: RecBole would then ignore data_path and download its
    own copy (whose different timestamps and filters would silently change the split).
    """

    key: str
    option: str
    path: Path
    recbole_name: str


DATASETS = {
    "ml-100k": PeerDataset("ml-100k", "ml-100k", SHARED_DATA / "ml-100k", "peer_ml100k"),
    "beauty": PeerDataset("beauty", "sequences", SHARED_DATA / "amazon-beauty" / "Beauty.txt", "peer_beauty"),
}


# ----------------------------------------------------------------------------------- configs


def our_overrides(dataset: PeerDataset, encoder: str, args: argparse.Namespace) -> list[str]:
    """The `seqrec-train` overrides of one pair; RecBole's config is derived from the same list."""
    return [
        f"dataset={dataset.option}",
        f"dataset.path={dataset.path}",
        f"encoder={encoder}",
        f"trainer.max_epochs={args.epochs}",
        f"trainer.patience={args.patience}",
        f"trainer.num_threads={args.threads}",
        f"trainer.seed={args.seed}",
        "trainer.device=cpu",
        "trainer.eval_every=1",
        "trainer.monitor=ndcg@10",
        "loss=ce",
        # RecBole's Adam always uses PyTorch's default betas; ours are set to the same.
        "optimizer=adam",
        "optimizer.betas=[0.9,0.999]",
        *args.extra,
    ]


def compose_ours(overrides: list[str]) -> Any:
    """Our TrainConfig exactly as `seqrec-train` would compose it from `overrides`."""
    from hydra import compose, initialize_config_dir
    from seqrec_cli.config.convert import to_train_config
    from seqrec_cli.config.registry import register_schemas
    from seqrec_cli.config.registry import register_resolvers

    register_schemas()
    register_resolvers()
    with initialize_config_dir(config_dir=str(REPO / "conf"), version_base="1.3"):
        return to_train_config(compose(config_name="train", overrides=overrides))


# ------------------------------------------------------------------------------------ runs


TrainChild = Callable[[list, Path, Path], tuple]


def run_ours(
    overrides: list[str], batch_size: int, run_dir: Path, cache_dir: Path, train_child: TrainChild
) -> dict[str, Any]:
    """One real `seqrec-train` run: throughput, evaluation pass time, peak RSS and test metrics."""
    metrics, peak_gb = train_child(overrides, run_dir, cache_dir)
    summary = json.loads((run_dir / "data_summary.json").read_text())
    history = pd.read_csv(run_dir / "history.csv")
    passes = int(history["valid/ndcg@10"].notna().sum()) if "valid/ndcg@10" in history else 0
    epoch_s = metrics["train_seconds"] / metrics["epochs_run"]
    return {
        "epochs_run": metrics["epochs_run"],
        "best_epoch": metrics["best_epoch"],
        "s_per_epoch": epoch_s,
        "train_sequences": metrics["train_sequences"],
        "train_targets": metrics["train_positions"],
        "eval_s_per_pass": metrics["valid_eval_seconds"] / max(passes, 1),
        "eval_users": summary["split"]["valid_users"],
        "peak_rss_gb": peak_gb,
        "test_ndcg@10": metrics["test"]["ndcg@10"],
        "test_hr@10": metrics["test"]["hr@10"],
        "counts": {k: summary[k] for k in ("users", "items", "interactions")},
        "n_params": metrics["n_params"],
        "threads": metrics["num_threads"],
        "torch": metrics["torch_version"],
        "batch": f"{batch_size} sequences",
    }


# ------------------------------------------------------------------------------------ driver


def add_peer(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument(
        "--models",
        nargs="+",
        default=list(MODELS),
        choices=list(MODELS),
        help="our encoders; attention runs against SASRec, gru against GRU4Rec",
    )
    parser.add_argument("--epochs", type=int, default=40, help="trainer.max_epochs and RecBole's epochs")
    parser.add_argument("--patience", type=int, default=10, help="trainer.patience and RecBole's stopping_step")
    parser.add_argument("--threads", type=int, default=2, help="torch threads on both sides")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument(
        "--recbole-batch",
        type=int,
        default=None,
        help="RecBole train_batch_size (prefixes); default: our batch size x our mean targets per sequence",
    )
    parser.add_argument(
        "--extra", nargs="*", default=[], help="more seqrec-train overrides (mirrored into RecBole's config)"
    )
    parser.add_argument(
        "--recbole-venv",
        type=Path,
        default=REPO / ".venv-recbole",
        help="RecBole's virtual environment (created on first use)",
    )
    parser.add_argument(
        "--skip-recbole-install",
        action="store_true",
        help="fail instead of creating the RecBole environment when it is missing",
    )
    parser.add_argument(
        "--workdir", type=Path, default=None, help="keep run dirs and atomic files here; default: a temporary folder"
    )
    parser.add_argument("--out", type=Path, default=None, help="write rows and settings as JSON here")
    parser.add_argument("--markdown", type=Path, default=None, help="write the docs/PERFORMANCE.md table section here")
    parser.add_argument(
        "--peers",
        nargs="+",
        default=["recbole"],
        choices=["recbole", "rectools"],
        help="rectools: our attention encoder against RecTools' SASRecModel (scripts/peer_rectools.py)",
    )
    parser.add_argument(
        "--rectools-venv",
        type=Path,
        default=REPO / ".venv-rectools",
        help="RecTools' virtual environment (created on first use)",
    )
    parser.add_argument("--skip-rectools-install", action="store_true", help="fail when the RecTools venv is missing")
    parser.add_argument("--rectools-markdown", type=Path, default=None, help="write the RecTools section here")
    parser.add_argument("--train-target", type=float, default=5.0, help="training speed-up to check for")
    parser.add_argument("--eval-target", type=float, default=10.0, help="evaluation speed-up to check for")


def run_pair(
    dataset: PeerDataset, encoder: str, args: argparse.Namespace, python: Path, scratch: Path, train_child: TrainChild
) -> dict[str, Any]:
    """Ours, then RecBole on the same data and settings; fails when their splits differ."""
    overrides = our_overrides(dataset, encoder, args)
    cfg = compose_ours(overrides)
    print(f"[{dataset.key} / {encoder}] ours ...", flush=True)
    ours = run_ours(
        overrides, cfg.trainer.batch_size, scratch / f"ours-{dataset.key}-{encoder}", scratch / "cache", train_child
    )
    batch = args.recbole_batch or matched_batch(cfg.trainer.batch_size, ours["train_sequences"], ours["train_targets"])
    print(f"[{dataset.key} / {encoder}] RecBole {MODELS[encoder]} (train_batch_size {batch}) ...", flush=True)
    cfg.dataset.cache_dir = str(scratch / "cache")
    split = our_split(cfg.dataset)
    write_atomic(ordered_events(cfg.dataset), scratch / "atomic", dataset.recbole_name)
    config = recbole_config(cfg, dataset.recbole_name, scratch / "atomic", scratch / "recbole-saved", batch)
    result = run_recbole(python, dataset, config, MODELS[encoder], args.threads, scratch)
    theirs_split = {"counts": result["counts"], "valid": result["valid_targets"], "test": result["test_targets"]}
    problems = compare_splits(split, theirs_split)
    if problems:
        raise SystemExit(
            f"RecBole's split of {dataset.key} differs from ours ({'; '.join(problems)}), "
            "so the figures would not compare."
        )
    targets = {"train": args.train_target, "eval": args.eval_target}
    row = pair_row(dataset.key, f"{encoder} vs {MODELS[encoder]}", ours, recbole_side(result, batch), targets)
    row["our_batch_size"], row["recbole_train_batch_size"] = cfg.trainer.batch_size, batch
    return row


def run_peer(args: argparse.Namespace, train_child: TrainChild) -> int:
    """Every dataset x model pair; prints the table, writes JSON / markdown; 1 when a target is missed."""
    for key in args.datasets:
        if not DATASETS[key].path.exists():
            raise SystemExit(
                f"Benchmark data {DATASETS[key].path} is missing: the peer benchmark reads ../shared/data."
            )
    if "rectools" in args.peers:  # RecTools first: its table is printed and written by peer_rectools
        from peer_rectools import run_all

        with tempfile.TemporaryDirectory(prefix="seqrec-peer-rectools-") as tmp:
            rectools_rows = run_all(args, DATASETS, args.workdir or Path(tmp), train_child)
        if "recbole" not in args.peers:
            return 0 if all(all(row["checks"].values()) for row in rectools_rows) else 1
    python = ensure_recbole_venv(args.recbole_venv, install=not args.skip_recbole_install)
    meta = {
        "machine": machine(RECBOLE_VERSION),
        "threads": args.threads,
        "epochs": args.epochs,
        "patience": args.patience,
        "seed": args.seed,
        "argv": sys.argv[2:],
        "recbole_batch_rule": f"{args.recbole_batch} prefixes"
        if args.recbole_batch
        else "our batch size x our mean targets per training sequence (same optimizer steps and targets per step)",
    }
    rows = []
    with tempfile.TemporaryDirectory(prefix="seqrec-peer-") as tmp:
        scratch = args.workdir or Path(tmp)
        scratch.mkdir(parents=True, exist_ok=True)
        for key in args.datasets:
            for encoder in args.models:
                rows.append(run_pair(DATASETS[key], encoder, args, python, scratch, train_child))
                meta["our_batch"] = ", ".join(sorted({str(row["our_batch_size"]) for row in rows}))
                if args.out:  # after every pair: an hours-long run that fails late keeps what it measured
                    args.out.write_text(json.dumps({"settings": meta, "rows": rows}, indent=2, default=str) + "\n")
    print()
    print("\n".join(table_lines(rows)))
    print()
    print("\n".join(verdict_lines(rows)))
    if args.markdown:
        args.markdown.write_text(markdown_report(rows, meta))
    else:
        print()
        print(markdown_report(rows, meta))
    return 0 if all(all(row["checks"].values()) for row in rows) else 1
