"""`python scripts/benchmark.py serve --parity`: an exported bundle's top-K equals seqrec-recommend's.

For each encoder variant (every encoder, each also with time gaps and user vectors): train a short
run with the real `seqrec-train` (quality does not matter for parity), export it with
`seqrec-export`'s function, and compare for up to `--users` users seqrec-recommend's top-K (its own
function, as the command runs it) with the bundle's (all users in one forward pass of the graph).

Two lists agree when their scores are within `tol` position by position and they hold the same
items in the same order wherever neighbouring scores differ by more than `tol` (near-ties may
swap; a tie group cut by the end of the list may hold other members). The slow parity test in
tests/serving/test_bundle.py runs this same code and asserts on it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional, Sequence

import numpy as np

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"

DATASETS = {
    "ml-100k": ["dataset=ml-100k", "dataset.path={data}/ml-100k"],
    "beauty": ["dataset=amazon-beauty", "dataset.path={data}/amazon-beauty/Beauty.txt"],
}
GAP_USER = ["encoder.time_features=gap", "model.user_embedding=true"]
VARIANTS = {
    "attention": ["encoder=attention"],
    "attention+gap+user": ["encoder=attention", *GAP_USER],
    "ligr": ["encoder=attention", "encoder.block=ligr"],
    "ligr+gap+user": ["encoder=attention", "encoder.block=ligr", *GAP_USER],
    "gru": ["encoder=gru"],
    "gru+gap+user": ["encoder=gru", *GAP_USER],
    "lstm": ["encoder=lstm"],
    "lstm+gap+user": ["encoder=lstm", *GAP_USER],
    "gru_attention": ["encoder=gru_attention"],
    "gru_attention+gap+user": ["encoder=gru_attention", *GAP_USER],
}
# One epoch is enough (parity does not depend on quality); max_len 50 keeps the recurrent ones quick.
TRAIN = ["trainer.progress=false", "model.max_len=50"]

Top = dict[str, tuple[list[str], list[float]]]  # user -> (items, scores), best first


@dataclass
class Parity:
    """How an exported model's top-K compares with seqrec-recommend's over `users` users."""

    users: int = 0
    identical: int = 0  # same items in the same order
    tie_swaps: int = 0  # agree, but near-tied items (within tol) in another order
    mismatched: list[str] = field(default_factory=list)  # "user: why", for lists that disagree
    max_abs_diff: float = 0.0  # largest |score difference| at any position

    @property
    def agrees(self) -> bool:
        return self.users > 0 and not self.mismatched


def disagreement(
    eager_items: Sequence, eager_scores: Sequence, items: Sequence, scores: Sequence, tol: float = 1e-5
) -> Optional[str]:
    """None when two top-k lists agree (module docstring), else what differs."""
    eager_scores, scores = np.asarray(eager_scores, np.float64), np.asarray(scores, np.float64)
    if len(eager_items) != len(items):
        return f"{len(eager_items)} items vs {len(items)}"
    gap = np.abs(scores - eager_scores)
    if len(gap) and gap.max() > tol:
        worst = int(gap.argmax())
        return f"score at rank {worst + 1}: {eager_scores[worst]:.7f} vs {scores[worst]:.7f}"
    start = 0
    for i in range(1, len(eager_items)):  # each complete tie group: the same members
        if eager_scores[i - 1] - eager_scores[i] > tol:
            if set(map(str, eager_items[start:i])) != set(map(str, items[start:i])):
                return f"ranks {start + 1}-{i}: {list(eager_items[start:i])} vs {list(items[start:i])}"
            start = i
    return None


def eager_top(run: Path, users: list[str], k: int = 10) -> Top:
    """seqrec-recommend's answer per user (its own function, as the command runs it; table muted)."""
    from seqrec_cli.config.apps import RecommendAppConfig
    from seqrec_cli.cli.recommend import recommend

    with contextlib.redirect_stdout(io.StringIO()):
        rows = recommend(RecommendAppConfig(run=str(run), users=users, k=k, device="cpu"))
    out: Top = {}
    for row in rows:
        items, scores = out.setdefault(str(row["user"]), ([], []))
        items.append(str(row["item"]))
        scores.append(row["score"])
    return out


def bundle_top(path: Path, users: list[str], k: int = 10) -> Top:
    """The bundle's answer for the same users, every one in a single forward pass."""
    from seqrec_cli.serving.engine import open_bundle
    from seqrec_cli.serving.queries import Query, pack

    b = open_bundle(path)
    queries = []
    for user in users:
        history, gaps, row = b.histories.of(b.histories.index[user])
        queries.append(Query(history=history, k=k, gaps=gaps, user_row=row, exclude=history))
    rows, scores = b.run(pack(queries, b))
    return {
        u: ([str(b.item_ids[r]) for r in rows[i, :k] if r > 0], scores[i, :k].tolist()) for i, u in enumerate(users)
    }


def compare(run: Path, bundle: Path, n_users: int = 1000, k: int = 10, tol: float = 1e-5) -> Parity:
    """Both answers for the bundle's first `n_users` users (the data's order)."""
    from seqrec_cli.serving.engine import open_bundle

    users = [str(u) for u in open_bundle(bundle).histories.index][:n_users]
    eager, exported = eager_top(run, users, k), bundle_top(bundle, users, k)
    result = Parity(users=len(users))
    for user in users:
        if user not in eager:
            result.mismatched.append(f"{user}: no answer from seqrec-recommend")
            continue
        (a_items, a_scores), (b_items, b_scores) = eager[user], exported[user]
        if len(a_scores) == len(b_scores) and len(a_scores):
            diff = float(np.max(np.abs(np.subtract(a_scores, b_scores, dtype=np.float64))))
            result.max_abs_diff = max(result.max_abs_diff, diff)
        why = disagreement(a_items, a_scores, b_items, b_scores, tol)
        if why is not None:
            result.mismatched.append(f"{user}: {why}")
        elif a_items == b_items:
            result.identical += 1
        else:
            result.tie_swaps += 1
    return result


def train(
    dataset: str, variant: str, out: Path, data: Path = DATA, epochs: int = 1, extra: Sequence[str] = ()
) -> float:
    """A short real seqrec-train run of `variant` on `dataset` into `out` (`extra`: more overrides);
    returns its seconds."""
    overrides = [o.format(data=data) for o in DATASETS[dataset]] + VARIANTS[variant]
    args = [*overrides, *TRAIN, f"trainer.max_epochs={epochs}", *extra, f"hydra.run.dir={out}"]
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "seqrec_cli.cli.train", *args],
        cwd=out.parent,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        capture_output=True,
        text=True,
        timeout=3600,
    )
    if result.returncode != 0:
        raise RuntimeError(f"seqrec-train {' '.join(args)} failed:\n{result.stderr[-3000:]}")
    return time.perf_counter() - started


def add_parity(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--parity", action="store_true", help="compare bundles with seqrec-recommend instead")
    parser.add_argument("--dataset", choices=list(DATASETS), default="ml-100k", help="--parity: the data")
    parser.add_argument("--variants", default=",".join(VARIANTS), help="--parity: comma-separated variants")
    parser.add_argument("--epochs", type=int, default=1, help="--parity: training epochs per variant")
    parser.add_argument("--users", type=int, default=1000, help="--parity: users compared")
    parser.add_argument("--data", type=Path, default=DATA, help="--parity: the shared data folder")


def run_parity(args: argparse.Namespace) -> int:
    from seqrec_cli.serving.bundle import export_bundle

    variants = [v for v in args.variants.split(",") if v]
    unknown = [v for v in variants if v not in VARIANTS]
    if unknown:
        print(f"Unknown variant {unknown[0]}; the variants are {', '.join(VARIANTS)}.", file=sys.stderr)
        return 2
    print(f"{args.dataset}, {args.epochs} epoch(s), top-10, tol 1e-5; load average {_load()} at the start")
    print("| variant | users | identical order | near-tie swaps | mismatched | max abs diff | train s | export s |")
    print("|---|---|---|---|---|---|---|---|")
    failed = 0
    with tempfile.TemporaryDirectory(prefix="serve-parity-") as scratch:
        for variant in variants:
            run = Path(scratch) / variant.replace("+", "_")
            seconds = train(args.dataset, variant, run, args.data, args.epochs)
            started = time.perf_counter()
            path = export_bundle(run, Path(scratch) / f"{run.name}-bundle")
            exported = time.perf_counter() - started
            p = compare(run, path, args.users)
            failed += not p.agrees
            print(
                f"| {variant} | {p.users} | {p.identical} | {p.tie_swaps} | {len(p.mismatched)} | "
                f"{p.max_abs_diff:.1e} | {seconds:.0f} | {exported:.1f} |",
                flush=True,
            )
            for line in p.mismatched[:5]:
                print(f"  mismatch {line}")
    print(f"load average {_load()} at the end")
    return 1 if failed else 0


def _load() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())
