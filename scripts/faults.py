"""Fault campaign: break seqrec-train on purpose and check that the run record never lies.

    python scripts/faults.py [--random-kills 8] [--seed 0] [--out outputs/faults.json]

Each case starts a real `seqrec-train` process on a small synthetic run, hurts it (SIGKILL at a
random moment or inside a checkpoint write, SIGINT, SIGTERM, a full disk, a second writer on the
same run directory), then recovers the way the README says (`trainer.resume=<run dir>`, or a
fresh start when nothing was saved yet) and compares the result with an uninterrupted reference
run: metrics and every history row (wall-clock columns aside) must match bit for bit.

A case ends as one of:
- recovered exactly: after the fault and the documented recovery, the record equals the reference;
- clear error: the fault itself was reported in one sentence with a non-zero exit (full disk,
  second writer) and left the record intact;
- silent failure: exit 0 with a record that differs from the reference, a traceback, or a
  damaged record. The campaign exits 1 if there is any.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from rich.console import Console
from rich.table import Table

RUN = [
    "dataset=synthetic",
    "dataset.synthetic.n_users=600",
    "dataset.synthetic.n_items=20000",
    "dataset.synthetic.min_length=8",
    "dataset.synthetic.mean_length=20",
    "model.max_len=20",
    "model.embedding_dim=32",
    "trainer.max_epochs=6",
    "trainer.patience=100",
    "trainer.progress=false",
    "trainer.num_threads=1",
]
COMPARED = ("valid", "test", "popularity", "best_epoch", "epochs_run", "n_params")


@dataclass
class Outcome:
    case: str
    verdict: str  # recovered exactly | clear error | silent failure
    detail: str = ""


@dataclass
class Campaign:
    work: Path
    env: dict[str, str]
    reference: dict = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)

    def start(self, run_dir: Path, *extra: str) -> subprocess.Popen:
        cmd = [sys.executable, "-m", "seqrec_cli.cli.train", *RUN, f"hydra.run.dir={run_dir}", *extra]
        return subprocess.Popen(
            cmd, cwd=self.work, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )

    def finish(self, run_dir: Path, *extra: str) -> tuple[int, str]:
        proc = self.start(run_dir, *extra)
        _, err = proc.communicate(timeout=600)
        return proc.returncode, err


def record(run_dir: Path) -> dict:
    """The parts of a run record that must be identical however the run got there."""
    metrics = json.loads((run_dir / "metrics.json").read_text())
    rows = list(csv.DictReader((run_dir / "history.csv").open()))
    for row in rows:
        row.pop("seconds", None)
    return {"metrics": {k: metrics[k] for k in COMPARED}, "history": rows}


def recover(c: Campaign, run_dir: Path) -> tuple[int, str]:
    """The documented recovery: resume when last.pt exists, else start again in the same place."""
    if (run_dir / "checkpoints" / "last.pt").is_file():
        return c.finish(run_dir, f"trainer.resume={run_dir}")
    return c.finish(run_dir)


def judge_recovery(c: Campaign, case: str, run_dir: Path, code: int, err: str) -> Outcome:
    if code != 0 or "Traceback" in err:
        return Outcome(case, "silent failure", f"recovery exited {code}: {_last_line(err)}")
    if record(run_dir) != c.reference:
        return Outcome(case, "silent failure", "recovered run differs from the reference")
    return Outcome(case, "recovered exactly")


def kill_at(c: Campaign, case: str, delay: float, sig: int) -> Outcome:
    run_dir = c.work / case
    proc = c.start(run_dir)
    time.sleep(delay)
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=600)
    expected = {signal.SIGKILL: -9, signal.SIGINT: 130, signal.SIGTERM: 143}[sig]
    if proc.returncode not in (0, expected) or (sig != signal.SIGKILL and "Traceback" in err):
        return Outcome(case, "silent failure", f"exit {proc.returncode} after {signal.Signals(sig).name}")
    return judge_recovery(c, case, run_dir, *recover(c, run_dir))


def kill_in_write(c: Campaign, case: str, nth: int) -> Outcome:
    """SIGKILL while the nth checkpoint write's temporary file exists."""
    run_dir = c.work / case
    proc = c.start(run_dir)
    seen: set[str] = set()
    killed_in = ""
    deadline = time.time() + 300
    while proc.poll() is None and time.time() < deadline:
        tmps = (
            {p.name for p in (run_dir / "checkpoints").glob("*.tmp")} if (run_dir / "checkpoints").is_dir() else set()
        )
        seen |= tmps
        if tmps and len(seen) >= nth:
            proc.kill()
            killed_in = next(iter(tmps)).lstrip(".").split(".pt")[0] + ".pt"
            break
        time.sleep(0.0005)
    proc.communicate(timeout=600)
    if proc.returncode == 0:
        return (
            Outcome(case, "recovered exactly", "finished before the write was caught")
            if record(run_dir) == c.reference
            else Outcome(case, "silent failure", "differs")
        )
    outcome = judge_recovery(c, case, run_dir, *recover(c, run_dir))
    outcome.detail = outcome.detail or f"killed while writing {killed_in} (write {len(seen)})"
    return outcome


def two_writers(c: Campaign) -> Outcome:
    run_dir = c.work / "two-writers"
    procs = [c.start(run_dir) for _ in range(2)]
    results = [(p.communicate(timeout=600)[1], p.returncode) for p in procs]
    codes = sorted(code for _, code in results)
    refused = " ".join(next((err for err, code in results if code == 2), "").split())  # rich wraps lines
    if codes != [0, 2] or "in use by another run" not in refused:
        return Outcome("two-writers", "silent failure", f"exit codes {codes}")
    if record(run_dir) != c.reference:
        return Outcome("two-writers", "silent failure", "the surviving run differs from the reference")
    return Outcome("two-writers", "clear error", _last_line(refused))


def full_disk(c: Campaign) -> Optional[Outcome]:
    mnt = c.work / "tmpfs"
    mnt.mkdir(exist_ok=True)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mnt)], capture_output=True).returncode:
        return None
    try:
        run_dir = mnt / "run"
        code, err = c.finish(run_dir)
        log = (run_dir / "train.log").read_text() if (run_dir / "train.log").is_file() else ""
        err = " ".join(err.split())  # rich wraps long lines on the console
        if code != 2 or "The disk is full" not in err or "Traceback" in err or "The disk is full" not in log:
            return Outcome("full-disk", "silent failure", f"exit {code}: {_last_line(err)}")
        sentence = err[err.find("The disk is full") :].split(". ")[0]
        return Outcome("full-disk", "clear error", sentence[:110])
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:110] if lines else ""


def run_campaign(work: Path, random_kills: int, seed: int) -> Campaign:
    env = {**os.environ, "SEQREC_CACHE_DIR": str(work / ".cache"), "PYTHONUNBUFFERED": "1"}
    c = Campaign(work, env)
    started = time.perf_counter()
    code, err = c.finish(work / "reference")
    if code != 0:
        raise SystemExit(f"The reference run failed: {_last_line(err)}")
    c.reference = record(work / "reference")
    span = time.perf_counter() - started
    rng = random.Random(seed)
    for i in range(random_kills):
        c.outcomes.append(kill_at(c, f"kill9-{i}", rng.uniform(0.3, span), signal.SIGKILL))
    for nth in (1, 2, 3, 6, 9, 12):  # last.pt at the start, then each epoch's best.pt and last.pt
        c.outcomes.append(kill_in_write(c, f"kill9-write-{nth}", nth))
    for sig in (signal.SIGINT, signal.SIGTERM):
        for frac in (0.5, 0.8):
            c.outcomes.append(kill_at(c, f"{signal.Signals(sig).name.lower()}-{frac}", frac * span, sig))
    c.outcomes.append(two_writers(c))
    disk = full_disk(c)
    if disk is not None:
        c.outcomes.append(disk)
    return c


def show(outcomes: list[Outcome]) -> dict[str, int]:
    table = Table(title="Fault campaign")
    for col in ("case", "verdict", "detail"):
        table.add_column(col)
    for o in outcomes:
        table.add_row(o.case, o.verdict, o.detail)
    Console().print(table)
    counts = {v: sum(o.verdict == v for o in outcomes) for v in ("recovered exactly", "clear error", "silent failure")}
    Console().print(f"cases {len(outcomes)}, " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--random-kills", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="write the outcomes as JSON here")
    args = parser.parse_args()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="seqrec-faults-") as tmp:
        c = run_campaign(Path(tmp), args.random_kills, args.seed)
    counts = show(c.outcomes)
    Console().print(f"{time.perf_counter() - started:.0f} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"counts": counts, "cases": [o.__dict__ for o in c.outcomes]}, indent=2))
    sys.exit(1 if counts["silent failure"] else 0)


if __name__ == "__main__":
    main()
