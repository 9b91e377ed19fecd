"""`benchmark.py quality --suite cold-*`'s table reads the flat warm / cold names of a run, and the
nested `cold_start` groups of runs written before them."""

import json
import sys

import numpy as np

from conftest import REPO
from seqrec_cli.evaluation import cold_start, warm_cold

sys.path.insert(0, str(REPO / "scripts"))
from cold_start_benchmark import cold_markdown  # noqa: E402

RANKS = np.array([0, 3, 12, 1, 50, 9])
WARM = np.array([True, True, False, True, False, True])
BEYOND = {"coverage@10": 0.5, "novelty@10": 9.0}


def groups() -> dict:
    return {
        "model": cold_start.group_metrics(RANKS, WARM, [10]),
        "popularity": cold_start.group_metrics(RANKS + 5, WARM, [10]),
        "features": cold_start.group_metrics(RANKS + 1, WARM, [10]),
    }


def run_dir(path, metrics: dict) -> dict:
    path.mkdir()
    beyond = {"beyond": {"test": {"model": BEYOND, "popularity": BEYOND, "features": BEYOND}}}
    (path / "metrics.json").write_text(json.dumps({**metrics, **beyond}))
    return {"run_dir": str(path), "label": path.name, "best_epoch": 2, "epochs_run": 3, "command": "seqrec-train x"}


def test_the_table_is_the_same_from_flat_and_nested_metrics(tmp_path):
    flat = run_dir(tmp_path / "flat", {"warm_cold": warm_cold.flat_names("test", groups())})
    nested = run_dir(tmp_path / "nested", {"cold_start": {"test": groups()}})
    tables = [cold_markdown([r]).replace(r["label"], "run") for r in (flat, nested)]
    assert tables[0] == tables[1]
    model = groups()["model"]
    row = tables[0].splitlines()[2]
    assert f"| {model['warm']['hr@10']:.4f} ± {model['warm']['hr@10_se']:.4f} |" in row and "| 4 / 2 |" in row
    assert "popularity baseline" in tables[0] and "feature-only baseline" in tables[0]
