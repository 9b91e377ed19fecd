#!/usr/bin/env python
"""Benchmarks for seqrec_cli, one subcommand each: `python scripts/benchmark.py data [...]`.

Measure here, never with timing asserts in tests. Each subcommand is a pair of functions, `add_X`
(its argparse options) and `run_X` (the work, returning an exit code), listed in `SUBCOMMANDS`;
add more the same way.

`speed`: one real `seqrec-train` run per encoder (default ML-100K from ../shared/data, 3 epochs,
2 threads): seconds per training epoch, sequences and target positions per second, seconds per
full-ranking evaluation pass, peak RSS of the run's process, test NDCG@10.

`quality` (scripts/quality_benchmark.py): real runs of `experiment=` presets or of the ML-100K
table, test metrics beside the published numbers and the popularity baseline.

`peer`: the same runs beside RecBole 1.2.1 (SASRec, GRU4Rec) on ML-100K and Amazon Beauty, same
split and settings, in a RecBole venv it creates once (.venv-recbole/): ratios pair by pair
(scripts/peer.py; what is compared and how: docs/PERFORMANCE.md).

`data`: generate an ML-20M-sized CSV (20,000,000 ratings, ~140k users, ~27k items, rows shuffled
so the file order helps nothing), then time file -> processed cache -> splits in a fresh process
(peak RSS of that process included), and a cached reload in another fresh process.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


# --------------------------------------------------------------------------------------- data


def add_data(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--rows", type=int, default=20_000_000, help="interactions to generate")
    parser.add_argument("--users", type=int, default=140_000)
    parser.add_argument("--items", type=int, default=27_000)
    parser.add_argument(
        "--dir", type=Path, default=None, help="keep the generated CSV (and reuse it) here; default: a temporary folder"
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--min-count", type=int, default=5, help="dataset.min_user_count and min_item_count")
    parser.add_argument("--dedup", default="all", choices=("all", "first", "last"))
    parser.add_argument("--split", default="leave_one_out", choices=("leave_one_out", "temporal"))
    parser.add_argument("--max-seconds", type=float, default=60.0, help="budget for file -> cached splits")
    parser.add_argument("--max-rss-gb", type=float, default=3.0, help="budget for peak resident memory")


def generate_csv(path: Path, rows: int, users: int, items: int, seed: int) -> None:
    """An ML-20M-like ratings file: log-normal history lengths, Zipf item popularity, random times."""
    rng = np.random.default_rng(seed)
    weight = rng.lognormal(0.0, 1.2, users)
    lengths = np.maximum(1, np.round(weight / weight.sum() * rows)).astype(np.int64)
    lengths[np.argmax(lengths)] += rows - lengths.sum()
    popularity = 1.0 / np.arange(1, items + 1) ** 0.9
    popularity /= popularity.sum()
    perm = rng.permutation(rows)
    frame = pd.DataFrame(
        {
            "userId": np.repeat(np.arange(1, users + 1), lengths)[perm],
            "movieId": (rng.choice(items, size=rows, p=popularity) + 1)[perm],
            "rating": (rng.integers(1, 11, size=rows) / 2)[perm],
            "timestamp": rng.integers(800_000_000, 1_500_000_000, size=rows)[perm],
        }
    )
    tmp = path.with_name(path.name + ".tmp")
    frame.to_csv(tmp, index=False, chunksize=1_000_000)
    os.replace(tmp, path)


def peak_rss_mb() -> float:
    """This process's peak resident memory. On Linux VmHWM belongs to the address space, so it
    starts afresh in a spawned child; ru_maxrss would carry over the parent's peak across exec."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _load_in_child(settings: dict, queue: mp.Queue) -> None:
    """Runs in a fresh process so its peak RSS is the pipeline's alone."""
    from seqrec_cli.config.schema import DatasetConfig, SplitConfig
    from seqrec_cli.data import load

    split = SplitConfig(kind=settings.pop("split"))
    started = time.perf_counter()
    splits, summary = load(DatasetConfig(**settings, split=split))
    seconds = time.perf_counter() - started
    queue.put(
        {
            "seconds": seconds,
            "peak_rss_mb": peak_rss_mb(),
            "cache_hit": summary["cache"]["hit"],
            "users": summary["users"],
            "items": summary["items"],
            "interactions": summary["interactions"],
            "read_seconds": summary.get("read_seconds"),
            "steps": summary.get("steps"),
            "valid_users": len(splits.valid),
        }
    )


def _timed_load(settings: dict) -> dict:
    ctx = mp.get_context("spawn")
    queue = ctx.Queue()
    proc = ctx.Process(target=_load_in_child, args=(dict(settings), queue))
    proc.start()
    proc.join()
    if proc.exitcode != 0:
        raise SystemExit(f"the data pipeline failed in its process (exit code {proc.exitcode})")
    return queue.get()


def run_data(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="seqrec-bench-") as scratch:
        folder = args.dir or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        csv = folder / f"ratings-{args.rows}-{args.users}-{args.items}-{args.seed}.csv"
        if not csv.is_file():
            started = time.perf_counter()
            generate_csv(csv, args.rows, args.users, args.items, args.seed)
            print(f"generated {csv} ({csv.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.1f} s")
        else:
            print(f"reusing {csv}")
        settings = dict(
            name="benchmark",
            source="csv",
            path=str(csv),
            user_col="userId",
            item_col="movieId",
            time_col="timestamp",
            min_user_count=args.min_count,
            min_item_count=args.min_count,
            dedup=args.dedup,
            split=args.split,
            cache_dir=str(Path(scratch) / "cache"),
        )
        cold = _timed_load(settings)
        warm = _timed_load(settings)
    assert not cold["cache_hit"] and warm["cache_hit"]
    report = {
        "machine": f"{platform.node()} ({os.cpu_count()} CPUs, {platform.machine()}, "
        f"Python {platform.python_version()}, "
        f"numpy {np.__version__}, pandas {pd.__version__})",
        "rows": args.rows,
        "users": cold["users"],
        "items": cold["items"],
        "interactions": cold["interactions"],
        "file_to_cached_splits_s": round(cold["seconds"], 2),
        "of_which_read_s": cold["read_seconds"],
        "peak_rss_gb": round(cold["peak_rss_mb"] / 1024, 2),
        "cached_reload_s": round(warm["seconds"], 2),
        "reload_peak_rss_gb": round(warm["peak_rss_mb"] / 1024, 2),
    }
    print(json.dumps(report, indent=2))
    ok = report["file_to_cached_splits_s"] <= args.max_seconds and report["peak_rss_gb"] <= args.max_rss_gb
    print(f"{'within' if ok else 'OVER'} budget: <= {args.max_seconds:g} s and <= {args.max_rss_gb:g} GB peak RSS")
    return 0 if ok else 1


# -------------------------------------------------------------------------------------- speed

# Runs one real `seqrec-train` in this process's child and reports that child's peak RSS.
_CHILD = """
import atexit, runpy, sys
def _peak():
    for line in open('/proc/self/status'):
        if line.startswith('VmHWM:'):
            print('PEAK_RSS_KB', line.split()[1], file=sys.stderr, flush=True)
atexit.register(_peak)
sys.argv = ['seqrec-train', *sys.argv[1:]]
runpy.run_module('seqrec_cli.cli.train', run_name='__main__')
"""


def add_speed(parser: argparse.ArgumentParser) -> None:
    shared = REPO.parent / "shared" / "data" / "ml-100k"
    parser.add_argument("--dataset", default="ml-100k", help="a dataset= option (default ml-100k from ../shared/data)")
    parser.add_argument("--path", default=str(shared) if shared.is_dir() else None, help="dataset.path")
    parser.add_argument("--encoders", nargs="+", default=["attention", "gru"])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="trainer.num_threads")
    parser.add_argument("--extra", nargs="*", default=[], help="more overrides, e.g. model.max_len=200")
    parser.add_argument("--out", type=Path, default=None, help="also write the rows as JSON here")


def train_in_child(overrides: list[str], run_dir: Path, cache_dir: Path) -> tuple[dict, float]:
    """One real `seqrec-train` run in a child process: its metrics.json and the child's peak RSS in GB.

    A child of its own, so the peak RSS is the run's alone (VmHWM, see `peak_rss_mb`); the cache
    folder is the caller's, so one benchmark never reads another's processed data.
    """
    import subprocess

    overrides = [*overrides, "trainer.progress=false", f"hydra.run.dir={run_dir}"]
    env = {**os.environ, "SEQREC_CACHE_DIR": str(cache_dir)}
    done = subprocess.run([sys.executable, "-c", _CHILD, *overrides], capture_output=True, text=True, env=env)
    if done.returncode != 0:
        print(done.stderr[-2000:], file=sys.stderr)
        raise SystemExit(done.returncode)
    peak_kb = max(int(line.split()[1]) for line in done.stderr.splitlines() if line.startswith("PEAK_RSS_KB"))
    return json.loads((run_dir / "metrics.json").read_text()), peak_kb / 2**20


def run_speed(args: argparse.Namespace) -> int:
    """Our side of the throughput comparison: one real CLI run per encoder, figures from its run dir."""
    from flops import matmul_peak_gflops, speed_columns  # scripts/flops.py: what the FLOP columns count

    rows = []
    cpu = not any(o.startswith("trainer.device=") and not o.endswith("=cpu") for o in args.extra)
    peak = matmul_peak_gflops(args.threads) if cpu else None  # a CPU's peak says nothing of a GPU run
    print(
        f"load average {' / '.join(f'{x:.2f}' for x in os.getloadavg())} (1 / 5 / 15 min) at the start; "
        f"float32 4096^3 matmul on {args.threads} threads: {peak or float('nan'):.0f} GFLOP/s",
        flush=True,
    )
    with tempfile.TemporaryDirectory(prefix="seqrec-speed-") as scratch:
        for encoder in args.encoders:
            overrides = [
                f"dataset={args.dataset}",
                f"encoder={encoder}",
                f"trainer.max_epochs={args.epochs}",
                f"trainer.num_threads={args.threads}",
                *([f"dataset.path={args.path}"] if args.path else []),
                *args.extra,
            ]
            m, peak_gb = train_in_child(overrides, Path(scratch) / encoder, Path(scratch) / "cache")
            epoch_s = m["train_seconds"] / m["epochs_run"]
            rows.append(
                {
                    "encoder": encoder,
                    "dataset": args.dataset,
                    "epochs": m["epochs_run"],
                    "train_s_per_epoch": round(epoch_s, 2),
                    "sequences_per_s": round(m["train_sequences"] / epoch_s, 1),
                    "positions_per_s": round(m["train_positions"] / epoch_s),
                    "eval_s_per_pass": round(m["valid_eval_seconds"] / m["epochs_run"], 3),  # eval_every=1
                    "users_evaluated": m["n_users"],
                    "peak_rss_gb": round(peak_gb, 2),
                    "test_ndcg@10": round(m["test"]["ndcg@10"], 4),
                    "device": m["device"],
                    "threads": m["num_threads"],
                    "torch": m["torch_version"],
                    # With --extra trainer.profile_steps=N: a step's wall time and the GPU's share of it.
                    **(
                        {f"profile_{k}": m["profile"][k] for k in ("wall_ms_per_step", "device_share")}
                        if "profile" in m
                        else {}
                    ),
                    **speed_columns(overrides, m, Path(scratch) / "cache", peak),
                }
            )
    columns = list(rows[0])
    print(" | ".join(columns))
    for row in rows:
        print(" | ".join(str(row[c]) for c in columns))
    if args.out:
        args.out.write_text(json.dumps(rows, indent=2) + "\n")
    return 0


# --------------------------------------------------------------------------------------- peer
# The code lives in scripts/peer.py; scripts/recbole_runner.py runs inside RecBole's own venv.


def add_peer(parser: argparse.ArgumentParser) -> None:
    from peer import add_peer as add

    add(parser)


def run_peer(args: argparse.Namespace) -> int:
    from peer import run_peer as run

    return run(args, train_in_child)


# ------------------------------------------------------------------------------------ driver

from quality_benchmark import add_quality, run_quality  # noqa: E402  (scripts/ is on sys.path)
from serve_benchmark import add_serve, run_serve  # noqa: E402
from refresh_benchmark import add_refresh, run_refresh  # noqa: E402

SUBCOMMANDS: dict[str, tuple[Callable[[argparse.ArgumentParser], None], Callable[[argparse.Namespace], int], str]] = {
    "data": (add_data, run_data, "file -> cached splits at ML-20M scale: seconds, peak RSS, reload"),
    "speed": (add_speed, run_speed, "training throughput, eval time and peak RSS of real CLI runs, per encoder"),
    "quality": (add_quality, run_quality, "test metrics of real CLI runs beside the published numbers and popularity"),
    "refresh": (add_refresh, run_refresh, "rolling retrain: fine-tune from the previous window's run vs from scratch"),
    "peer": (
        add_peer,
        run_peer,
        "ours beside RecBole 1.2.1: same data, split and settings; seconds/epoch, eval pass, peak RSS, NDCG",
    ),
    "serve": (add_serve, run_serve, "seqrec-serve under wrk load: req/s, p50/p95/p99, errors, RSS; ORT vs eager"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (add, run, help_text) in SUBCOMMANDS.items():
        add(sub.add_parser(name, help=help_text, description=help_text))
        sub.choices[name].set_defaults(run=run)
    args = parser.parse_args(argv)
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
