"""Rolling retrain: fine-tune yesterday's run on today's data (`trainer.init_from`) beside training
from scratch on the same data.

    python scripts/benchmark.py refresh [--datasets ml-latest-small ml-100k] [--steps 4]
        [--shared-data ../shared/data] [--runs-dir outputs/refresh] [--markdown docs/RESULTS.md]

A dataset's events are cut in time into an initial part (up to the `--start` quantile of the
timestamps) and `--steps` further windows of equal event counts. Step 0 trains from scratch on
the initial part. At step k both runs see every event up to window k's end (`dataset.max_time`):
(a) fine-tuned from step k-1's fine-tuned run (step 0's at k = 1) with the fine-tune budget, and
(b) trained from scratch with the default budget. Both are evaluated the same way on that data,
leave-one-out over every user (the run's own test metrics). Wall time is the run's
`total_seconds` (process start to end, data loading included).

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
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

REPO = Path(__file__).resolve().parents[1]
DATASETS = {
    # name: (seqrec-train dataset args, the ratings file inside the shared folder, how to read its times)
    "ml-latest-small": (["dataset=ml-latest-small"], "ml-latest-small/ratings.csv", "csv"),
    "ml-100k": (["dataset=ml-100k"], "ml-100k/u.data", "tab"),
}
SCRATCH = ["trainer.max_epochs=40", "trainer.patience=5"]
FINE_TUNE = ["trainer.max_epochs=10", "trainer.patience=2", "optimizer.lr=0.001"]


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
    """One seqrec-train run (reused when it finished before); its metrics and data summary."""
    if not (run_dir / "metrics.json").is_file():
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
    metrics = json.loads((run_dir / "metrics.json").read_text())
    summary = json.loads((run_dir / "data_summary.json").read_text())
    return {"metrics": metrics, "summary": summary}


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


def table(name: str, rows: list[Row]) -> str:
    head = (
        "| step | events | new items | new users | test users | NDCG@10 scratch | NDCG@10 fine-tuned | "
        "HR@10 scratch | HR@10 fine-tuned | s scratch | s fine-tuned | time ratio |\n"
        "|---|---|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines, ratios = [], []
    for r in rows:
        a, b = r.scratch["metrics"], r.tuned["metrics"]
        ratio = b["total_seconds"] / a["total_seconds"]
        ratios.append(ratio)
        lines.append(
            f"| {r.step} | {r.events:,} | {r.new_items} | {r.new_users} | {r.users} | "
            f"{a['test']['ndcg@10']:.4f} ± {se_ndcg(a['test']['ndcg@10'], r.users):.4f} | "
            f"{b['test']['ndcg@10']:.4f} ± {se_ndcg(b['test']['ndcg@10'], r.users):.4f} | "
            f"{a['test']['hr@10']:.4f} ± {se_hr(a['test']['hr@10'], r.users):.4f} | "
            f"{b['test']['hr@10']:.4f} ± {se_hr(b['test']['hr@10'], r.users):.4f} | "
            f"{a['total_seconds']:.0f} | {b['total_seconds']:.0f} | {ratio:.2f} |"
        )
    mean = lambda key, which: float(np.mean([getattr(r, which)["metrics"]["test"][key] for r in rows]))  # noqa: E731
    n = int(np.mean([r.users for r in rows]))
    ms, mt = mean("ndcg@10", "scratch"), mean("ndcg@10", "tuned")
    total = sum(r.tuned["metrics"]["total_seconds"] for r in rows) / sum(
        r.scratch["metrics"]["total_seconds"] for r in rows
    )
    lines.append(
        f"| mean | | | | {n} | {ms:.4f} | {mt:.4f} | {mean('hr@10', 'scratch'):.4f} | {mean('hr@10', 'tuned'):.4f} "
        f"| | | {total:.2f} |"
    )
    verdict = "meets" if mt >= ms - se_ndcg(ms, n) and total <= 0.35 else "misses"
    return (
        f"**{name}**: fine-tuned mean NDCG@10 {mt:.4f} vs scratch {ms:.4f} (one SE {se_ndcg(ms, n):.4f}) "
        f"in {total:.0%} of the wall time: {verdict} the bar (within one SE, <= 35%).\n\n" + head + "\n".join(lines)
    )


def add_refresh(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument("--start", type=float, default=0.6, help="quantile of the timestamps ending step 0's data")
    parser.add_argument("--shared-data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--runs-dir", type=Path, default=REPO / "outputs" / "refresh")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the tables to this file")


def run_refresh(args: argparse.Namespace) -> int:
    parts = []
    for name in args.datasets:
        rows = run_dataset(
            name, args.shared_data.resolve(), args.runs_dir.resolve(), args.steps, args.start, args.threads
        )
        parts.append(table(name, rows))
        print(parts[-1], "\n", flush=True)
    if args.markdown:
        args.markdown.write_text("\n\n".join(parts) + "\n")
    return 0


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_refresh(p)
    sys.exit(run_refresh(p.parse_args()))
