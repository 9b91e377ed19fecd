"""Rolling retrain: fine-tune yesterday's run on today's data (`trainer.init_from`) beside training
from scratch on the same data.

    python scripts/benchmark.py refresh [--datasets ml-latest-small ml-100k] [--steps 4]
        [--shared-data ../shared/data] [--runs-dir outputs/refresh] [--markdown docs/RESULTS.md]

A dataset's events are cut in time into an initial part (up to the `--start` quantile of the
timestamps) and `--steps` further windows of equal event counts. Step 0 trains from scratch on
the initial part. At step k both runs see every event up to window k's end (`dataset.max_time`):
(a) fine-tuned from step k-1's fine-tuned run (step 0's at k = 1) with the fine-tune budget
(`FINE_TUNE`: at most 5 epochs, patience 1, lr 1e-3; why, beside it), and
(b) trained from scratch with the default budget. Both are evaluated the same way on that data,
leave-one-out over every user (the run's own test metrics). Wall time is the run's
`total_seconds` (from `seqrec_cli.api.train`'s start to its end: data loading, every epoch and
evaluation, the final test; not the few seconds of Python imports and Hydra composition before
it, which `benchmark_run.json` keeps as `process_seconds`). Beside each run the script records
its CPU seconds and the load average around it (`measured`): on a shared machine the wall-time
ratio moves with the neighbours' load, the CPU-time ratio far less.

NDCG@10's standard error is bounded from the mean alone (a user's NDCG is in [0, 1], so its
variance is at most m - m^2): sqrt((m - m^2) / n), an upper bound; HR@10's is exact for a rate.
A global time cut leaves only a few dozen users with an event in the next window on these
MovieLens sets, so the next window is not evaluated.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from quality_benchmark import write_section  # noqa: E402  (the one writer of a RESULTS.md section)

REPO = Path(__file__).resolve().parents[1]
DATASETS = {
    # name: (seqrec-train dataset args, the ratings file inside the shared folder, how to read its times)
    "ml-latest-small": (["dataset=ml-latest-small"], "ml-latest-small/ratings.csv", "csv"),
    "ml-100k": (["dataset=ml-100k"], "ml-100k/u.data", "tab"),
}
SCRATCH = ["trainer.max_epochs=40", "trainer.patience=5"]
# The fine-tune budget, read off a validation curve (never test): ML-100K step 1's fine-tune run
# with max_epochs 10 / patience 2 (2026-12-04) had valid NDCG@10 0.0946, 0.0955, 0.0984, 0.0981,
# 0.1024, 0.0976, 0.0998 (then stopped) over its epochs, on 672 users (one SE about 0.011): it peaked at
# epoch 5, and every step after epoch 1 moved it by under half an SE. So at most 5 epochs, and stop
# at the first evaluation without a new best (patience 1).
FINE_TUNE = ["trainer.max_epochs=5", "trainer.patience=1", "optimizer.lr=0.001"]


@dataclass
class Row:
    step: int
    max_time: int
    events: int
    new_items: int
    new_users: int
    users: int
    scratch: dict
    tuned: dict


def cut_points(ratings: Path, kind: str, start: float, steps: int) -> list[int]:
    """Timestamps ending the initial part and each window (equal event counts per window)."""
    if kind == "csv":
        times = pd.read_csv(ratings, usecols=["timestamp"])["timestamp"].to_numpy()
    else:
        times = pd.read_csv(ratings, sep="\t", header=None, usecols=[3])[3].to_numpy()
    qs = [start + (1 - start) * k / steps for k in range(steps + 1)]
    return [int(np.quantile(times, q, method="lower")) if q < 1 else int(times.max()) for q in qs]


def train(run_dir: Path, args: list[str], threads: int) -> dict:
    """One seqrec-train run (reused when it finished before); its metrics, data summary and the
    CPU seconds and load averages this script saw around it (`benchmark_run.json`, see `measured`)."""
    if not (run_dir / "metrics.json").is_file():
        before, load_before = resource.getrusage(resource.RUSAGE_CHILDREN), os.getloadavg()[0]
        wall = time.perf_counter()
        cmd = [
            sys.executable,
            "-m",
            "seqrec_cli.cli.train",
            *args,
            f"hydra.run.dir={run_dir}",
            "trainer.progress=false",
            f"trainer.num_threads={threads}",
        ]
        result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, env={**os.environ})
        if result.returncode != 0:
            raise SystemExit(f"{run_dir} failed:\n{result.stderr[-2000:]}")
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
        record = {
            "cpu_seconds": round(cpu, 3),
            "process_seconds": round(time.perf_counter() - wall, 3),  # Python start-up included
            "load_before": load_before,
            "load_after": os.getloadavg()[0],
        }
        (run_dir / "benchmark_run.json").write_text(json.dumps(record) + "\n")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    summary = json.loads((run_dir / "data_summary.json").read_text())
    return {"metrics": metrics, "summary": summary, "measured": measured(run_dir)}


def measured(run_dir: Path) -> dict:
    """What `train` recorded beside the run: the process's CPU seconds (user + system, all its
    threads) and the 1-minute load average before and after. On a shared machine a run's wall
    time grows with the other jobs' load, its CPU time far less, so the CPU ratio is the check on
    whether a wall-time ratio is the settings' or the neighbours'. Empty for a run made elsewhere."""
    try:
        return json.loads((run_dir / "benchmark_run.json").read_text())
    except (OSError, ValueError):
        return {}


def run_dataset(name: str, shared: Path, runs: Path, steps: int, start: float, threads: int) -> list[Row]:
    data_args, ratings, kind = DATASETS[name]
    if name != "ml-latest-small":
        data_args = [*data_args, f"dataset.path={shared / Path(ratings).parent}"]
    cuts = cut_points(shared / ratings, kind, start, steps)
    base = runs / name
    previous = train(base / "step0", [*data_args, f"dataset.max_time={cuts[0]}", *SCRATCH], threads)
    parent, rows = base / "step0", []
    for k in range(1, steps + 1):
        window = [*data_args, f"dataset.max_time={cuts[k]}"]
        tuned = train(base / f"step{k}-tuned", [*window, *FINE_TUNE, f"trainer.init_from={parent}"], threads)
        scratch = train(base / f"step{k}-scratch", [*window, *SCRATCH], threads)
        s = scratch["summary"]
        rows.append(
            Row(
                k,
                cuts[k],
                s["interactions"],
                tuned["metrics"]["init_from"]["items"]["added"],
                s["users"] - previous["summary"]["users"],
                len_test(scratch),
                scratch,
                tuned,
            )
        )
        previous, parent = scratch, base / f"step{k}-tuned"
    return rows


def len_test(run: dict) -> int:
    return int(run["summary"]["split"].get("test_users", run["summary"]["users"]))


def se_ndcg(mean: float, n: int) -> float:
    return math.sqrt(max(mean - mean * mean, 0.0) / max(n, 1))


def se_hr(mean: float, n: int) -> float:
    return math.sqrt(mean * (1 - mean) / max(n, 1))


def cpu_ratio(rows: list[Row]) -> str:
    """Fine-tuned over scratch CPU seconds, summed over `rows`; "-" when a run lacks the record."""
    pairs = [(r.tuned["measured"].get("cpu_seconds"), r.scratch["measured"].get("cpu_seconds")) for r in rows]
    if not pairs or any(t is None or s is None for t, s in pairs):
        return "-"
    return f"{sum(t for t, _ in pairs) / sum(s for _, s in pairs):.2f}"


def load_range(rows: list[Row]) -> str:
    """The lowest and highest 1-minute load average recorded around the runs of `rows`."""
    loads = [
        m[key]
        for r in rows
        for m in (r.tuned["measured"], r.scratch["measured"])
        for key in ("load_before", "load_after")
        if key in m
    ]
    return f"{min(loads):.1f}-{max(loads):.1f}" if loads else "not recorded"


def table(name: str, rows: list[Row]) -> str:
    head = (
        "| step | events | new items | new users | test users | NDCG@10 scratch | NDCG@10 fine-tuned | "
        "HR@10 scratch | HR@10 fine-tuned | epochs scratch | epochs fine-tuned | s scratch | s fine-tuned | "
        "time ratio | CPU ratio |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        a, b = r.scratch["metrics"], r.tuned["metrics"]
        lines.append(
            f"| {r.step} | {r.events:,} | {r.new_items} | {r.new_users} | {r.users} | "
            f"{a['test']['ndcg@10']:.4f} ± {se_ndcg(a['test']['ndcg@10'], r.users):.4f} | "
            f"{b['test']['ndcg@10']:.4f} ± {se_ndcg(b['test']['ndcg@10'], r.users):.4f} | "
            f"{a['test']['hr@10']:.4f} ± {se_hr(a['test']['hr@10'], r.users):.4f} | "
            f"{b['test']['hr@10']:.4f} ± {se_hr(b['test']['hr@10'], r.users):.4f} | "
            f"{a['epochs_run']} | {b['epochs_run']} | "
            f"{a['total_seconds']:.0f} | {b['total_seconds']:.0f} | "
            f"{b['total_seconds'] / a['total_seconds']:.2f} | {cpu_ratio([r])} |"
        )
    mean = lambda key, which: float(np.mean([getattr(r, which)["metrics"]["test"][key] for r in rows]))  # noqa: E731
    n = int(np.mean([r.users for r in rows]))
    ms, mt = mean("ndcg@10", "scratch"), mean("ndcg@10", "tuned")
    total = sum(r.tuned["metrics"]["total_seconds"] for r in rows) / sum(
        r.scratch["metrics"]["total_seconds"] for r in rows
    )
    lines.append(
        f"| mean | | | | {n} | {ms:.4f} | {mt:.4f} | {mean('hr@10', 'scratch'):.4f} | {mean('hr@10', 'tuned'):.4f} "
        f"| | | | | {total:.2f} | {cpu_ratio(rows)} |"
    )
    verdict = "meets" if mt >= ms - se_ndcg(ms, n) and total <= 0.35 else "misses"
    return (
        f"**{name}**: fine-tuned mean NDCG@10 {mt:.4f} vs scratch {ms:.4f} (one SE {se_ndcg(ms, n):.4f}) "
        f"in {total:.0%} of the wall time: {verdict} the bar (within one SE, <= 35%). "
        f"CPU-time ratio {cpu_ratio(rows)}; 1-minute load average {load_range(rows)} around the runs.\n\n"
        + head
        + "\n".join(lines)
    )


def add_refresh(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--start", type=float, default=0.6, help="quantile of the timestamps ending step 0's data")
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--runs-dir", type=Path, default=REPO / "outputs" / "refresh")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument(
        "--markdown",
        type=Path,
        default=None,
        help="also write the tables into this file, between <!-- quality:refresh --> markers (the rest is kept)",
    )


def run_refresh(args: argparse.Namespace) -> int:
    parts = []
    for name in args.datasets:
        rows = run_dataset(
            name, args.shared_data.resolve(), args.runs_dir.resolve(), args.steps, args.start, args.threads
        )
        parts.append(table(name, rows))
        print(parts[-1], "\n", flush=True)
    if args.markdown:  # a section of e.g. docs/RESULTS.md: the rest of the document stays as it is
        write_section(args.markdown, "refresh", "\n\n".join(parts))
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_refresh(p)
    sys.exit(run_refresh(p.parse_args()))
