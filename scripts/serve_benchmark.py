"""`python scripts/benchmark.py serve`: seqrec-serve under load, and onnxruntime vs eager PyTorch.

1. Export the run (or take `--bundle`), then time one forward pass of the bundle's graph with
   onnxruntime and the same graph eagerly in PyTorch, at batch 1 and 64 (median of `--repeats`).
2. Start `seqrec-serve` on a free 127.0.0.1 port and drive it with `wrk` (Debian's package) and a
   POST Lua script asking `{"user": id, "k": 10}` for users drawn from the bundle, `--duration`
   seconds per level of connections: requests/s, p50/p95/p99 latency, errors (non-2xx and socket),
   the server's RSS after the level, and the load average, since the machine may be shared.
3. `--parity`: bundles against seqrec-recommend for every encoder variant (scripts/serve_parity.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

from serve_parity import add_parity, run_parity

REPO = Path(__file__).resolve().parents[1]

LUA = """
local users = {%(users)s}
local i = 0
request = function()
  i = i + 1
  local body = '{"user": "' .. users[(i %% #users) + 1] .. '", "k": 10}'
  return wrk.format("POST", "/recommend", {["Content-Type"] = "application/json"}, body)
end
done = function(summary, latency, requests)
  io.write(string.format('RESULT {"requests": %%d, "duration_us": %%d, "non2xx": %%d, "socket": %%d, ' ..
    '"p50_ms": %%.2f, "p95_ms": %%.2f, "p99_ms": %%.2f, "max_ms": %%.2f}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50) / 1000, latency:percentile(95) / 1000, latency:percentile(99) / 1000, latency.max / 1000))
end
"""


def add_serve(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--run-dir", type=Path, help="a finished run to export (e.g. a Beauty attention run)")
    parser.add_argument("--bundle", type=Path, help="or an existing bundle")
    parser.add_argument("--connections", default="1,8,32,64")
    parser.add_argument("--duration", type=int, default=30, help="seconds per level")
    parser.add_argument("--threads", type=int, default=1, help="seqrec-serve threads= (intra-op)")
    parser.add_argument("--max-batch", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=200, help="forward passes per latency figure")
    parser.add_argument("--out", type=Path, help="write the results as JSON here")
    parser.add_argument("--skip-forward", action="store_true", help="the load test only")
    add_parity(parser)


def run_serve(args: argparse.Namespace) -> int:
    if args.parity:
        return run_parity(args)
    if not (args.run_dir or args.bundle):
        print("Give --run-dir (a finished run) or --bundle.", file=sys.stderr)
        return 2
    if shutil.which("wrk") is None:
        print("wrk is not installed (apt-get install wrk).", file=sys.stderr)
        return 2
    scratch = Path(tempfile.mkdtemp(prefix="serve-bench-"))
    try:
        path = args.bundle or export(args.run_dir, scratch / "bundle")
        results = {"forward": [] if args.skip_forward else forward_latency(path, args.run_dir, args.repeats)}
        print_forward(results["forward"])
        results["load"] = load_test(path, args, scratch)
        print_load(results["load"])
        if args.out:
            args.out.write_text(json.dumps(results, indent=2) + "\n")
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return 0


def export(run: Path, out: Path) -> Path:
    from seqrec_cli.serving.bundle import export_bundle

    return export_bundle(run, out)


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def forward_latency(path: Path, run: Path | None, repeats: int) -> list[dict]:
    """Median ms of one pass: onnxruntime (1 and 2 threads) and the eager graph (torch)."""
    import torch

    from seqrec_cli.serving.engine import open_bundle
    from seqrec_cli.serving.graph import TopKGraph
    from seqrec_cli.serving.queries import Query, pack

    bundle = open_bundle(path)
    rng = np.random.default_rng(0)
    users = rng.choice(len(bundle.histories.index), 64, replace=False)
    queries = []
    for u in users:
        history, gaps, row = bundle.histories.of(int(u))
        queries.append(Query(history=history, k=10, gaps=gaps, user_row=row, exclude=history))
    eager = None
    if run is not None:
        from seqrec_cli.reporting.runs import open_run

        eager = TopKGraph(open_run(run, "cpu").model, bundle.k_max).eval()
    rows = []
    for batch in (1, 64):
        inputs = pack(queries[:batch], bundle)
        for threads in (1, 2):
            ort_bundle = open_bundle(path, threads)
            rows.append(
                {
                    "engine": "onnxruntime",
                    "batch": batch,
                    "threads": threads,
                    "ms": _median_ms(lambda: ort_bundle.run(inputs), repeats),
                    "load": load_average(),
                }
            )
            if eager is not None:
                torch.set_num_threads(threads)
                tensors = {k: torch.from_numpy(v) for k, v in inputs.items()}
                with torch.no_grad():
                    rows.append(
                        {
                            "engine": "eager torch",
                            "batch": batch,
                            "threads": threads,
                            "ms": _median_ms(lambda: eager(**tensors), repeats),
                            "load": load_average(),
                        }
                    )
    return rows


def _median_ms(fn, repeats: int) -> float:
    for _ in range(10):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return round(statistics.median(times) * 1000, 3)


def load_test(path: Path, args: argparse.Namespace, scratch: Path) -> list[dict]:
    from seqrec_cli.serving.engine import open_bundle

    users = list(open_bundle(path).histories.index)
    random.Random(0).shuffle(users)
    script = scratch / "post.lua"
    script.write_text(LUA % {"users": ", ".join(f'"{u}"' for u in users[:5000])})
    log = scratch / "serve.log"
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "seqrec_cli.cli.serve",
            f"bundle={path}",
            "port=0",
            f"threads={args.threads}",
            f"max_batch={args.max_batch}",
            "log_level=warning",
        ],
        stdout=subprocess.DEVNULL,
        stderr=log.open("w"),
        env={**os.environ, "COLUMNS": "200"},
    )
    try:
        url = _wait_ready(server, log)
        rows = []
        for connections in [int(c) for c in args.connections.split(",")]:
            rows.append(_level(url, connections, args.duration, script, server.pid))
            print(rows[-1], flush=True)
        return rows
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)


def _level(url: str, connections: int, duration: int, script: Path, server_pid: int) -> dict:
    """One wrk run of `duration` s; the CPU time wrk and the server used, as a share of one core,
    shows whether the load generator or the machine was the limit."""
    wrk_before, server_before = resource.getrusage(resource.RUSAGE_CHILDREN), _cpu_seconds(server_pid)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{duration}s", "--timeout", "10s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    wrk_after, server_after = resource.getrusage(resource.RUSAGE_CHILDREN), _cpu_seconds(server_pid)
    result = json.loads(out.split("RESULT ", 1)[1].splitlines()[0])
    seconds = result["duration_us"] / 1e6
    wrk_cpu = (wrk_after.ru_utime + wrk_after.ru_stime) - (wrk_before.ru_utime + wrk_before.ru_stime)
    return {
        "connections": connections,
        "requests_per_s": round(result["requests"] / seconds, 1),
        **{k: result[k] for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms", "non2xx", "socket")},
        "server_rss_mb": _rss_mb(server_pid),
        "wrk_cpu_pct": round(100 * wrk_cpu / seconds),
        "server_cpu_pct": round(100 * (server_after - server_before) / seconds),
        "load": load_average(),
    }


def _cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a running process (/proc/PID/stat fields 14 and 15)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _wait_ready(server: subprocess.Popen, log: Path, timeout: float = 300) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        match = re.search(r"http://127\.0\.0\.1:(\d+)", log.read_text())
        if match:
            url = f"http://127.0.0.1:{match.group(1)}"
            try:
                urllib.request.urlopen(url + "/health", timeout=2).read()
                return url
            except OSError:
                pass
        if server.poll() is not None:
            raise RuntimeError(log.read_text())
        time.sleep(0.3)
    raise RuntimeError("seqrec-serve did not start: " + log.read_text())


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return float("nan")


def print_forward(rows: list[dict]) -> None:
    if not rows:
        return
    print("| engine | batch | threads | ms per pass (median) | load average |")
    print("|---|---|---|---|---|")
    for r in rows:
        print(f"| {r['engine']} | {r['batch']} | {r['threads']} | {r['ms']} | {r['load']} |")


def print_load(rows: list[dict]) -> None:
    print(
        "| connections | requests/s | p50 ms | p95 ms | p99 ms | errors | server RSS MB | server CPU % | wrk CPU % "
        "| load average |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['connections']} | {r['requests_per_s']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | "
            f"{r['non2xx'] + r['socket']} | {r['server_rss_mb']} | {r['server_cpu_pct']} | {r['wrk_cpu_pct']} | "
            f"{r['load']} |"
        )
