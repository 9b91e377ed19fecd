"""`benchmark.py refresh`'s table: the bar's verdict on wall time, and the CPU-time ratio and load
averages recorded beside each run (what tells a neighbour's load from the settings' effect)."""

import json
import sys

from conftest import REPO

sys.path.insert(0, str(REPO / "scripts"))
from refresh_benchmark import Row, measured, table  # noqa: E402


def run(ndcg: float, seconds: float, cpu=None, epochs: int = 3) -> dict:
    metrics = {"test": {"ndcg@10": ndcg, "hr@10": 2 * ndcg}, "total_seconds": seconds, "epochs_run": epochs}
    record = {} if cpu is None else {"cpu_seconds": cpu, "load_before": 1.5, "load_after": 4.25}
    return {"metrics": metrics, "summary": {}, "measured": record}


def row(step: int, scratch: dict, tuned: dict) -> Row:
    return Row(step, 0, 1000, 5, 7, 800, scratch, tuned)


def test_the_verdict_is_on_summed_wall_time_and_the_cpu_ratio_is_reported_beside_it():
    rows = [
        row(1, run(0.10, 100, cpu=150), run(0.10, 30, cpu=40)),
        row(2, run(0.10, 100, cpu=50), run(0.10, 40, cpu=20)),
    ]
    text = table("ml-x", rows)
    assert "in 35% of the wall time: meets the bar" in text
    assert "CPU-time ratio 0.30" in text  # (40 + 20) / (150 + 50), not the mean of the rows' ratios
    assert "load average 1.5-4.2 around the runs" in text
    assert "| 100 | 30 | 0.30 | 0.27 |" in text


def test_a_missed_bar_and_runs_without_a_cpu_record():
    rows = [row(1, run(0.10, 100), run(0.10, 36)), row(2, run(0.10, 100), run(0.05, 10))]
    text = table("ml-x", rows)
    assert "misses the bar" in text
    assert "CPU-time ratio -" in text and "load average not recorded" in text


def test_measured_reads_the_record_beside_a_run(tmp_path):
    assert measured(tmp_path) == {}
    (tmp_path / "benchmark_run.json").write_text(json.dumps({"cpu_seconds": 3.0}))
    assert measured(tmp_path) == {"cpu_seconds": 3.0}


def test_markdown_replaces_only_its_own_section(tmp_path, monkeypatch):
    """`--markdown docs/RESULTS.md` must not wipe the rest of the document."""
    import argparse

    import refresh_benchmark

    doc = tmp_path / "RESULTS.md"
    doc.write_text("# Results\n\nearlier tables\n")
    monkeypatch.setattr(refresh_benchmark, "run_dataset", lambda *a: [row(1, run(0.10, 100), run(0.10, 30))])
    args = argparse.Namespace(
        datasets=["ml-x"], shared_data=tmp_path, runs_dir=tmp_path, steps=1, start=0.6, threads=1, markdown=doc
    )
    for _ in range(2):  # a second run replaces the section instead of appending another
        assert refresh_benchmark.run_refresh(args) == 0
    text = doc.read_text()
    assert text.startswith("# Results\n\nearlier tables\n")
    assert text.count("<!-- quality:refresh -->") == 1 and "ml-x" in text
