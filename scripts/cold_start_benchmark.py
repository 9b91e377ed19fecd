"""Cold-start suites of `benchmark.py quality`: the item hold-out protocol
(`dataset.split.cold_items=0.2`) on ML-100K with id-only, id+features and features-only item
representations, for the attention and GRU encoders; the table shows warm and cold test HR@10 /
NDCG@10 with counts and standard errors, the popularity and feature-only baselines, coverage@10
and novelty@10 (docs/RESULTS.md).
"""

from __future__ import annotations

import json
from pathlib import Path

from seqrec_cli.evaluation import warm_cold

COLD_BASE = [
    "model.embedding_dim=64",
    "model.max_len=50",
    "optimizer.lr=0.002",
    "trainer.batch_size=32",
    "trainer.max_epochs=25",
    "trainer.patience=5",
    "trainer.seed=42",
    "dataset.split.cold_items=0.2",
]
REPRS = {
    "id only": [],
    "id+features": ["model.item_features=true", "model.id_dropout=0.5"],
    "features only": ["model.item_repr=features"],
}


def cold_suites(row_type: type) -> dict[str, list]:
    """`cold-ml-100k`: 2 encoders x 3 item representations under the item hold-out."""
    return {
        "cold-ml-100k": [
            row_type(f"cold {enc} / {name}", ["dataset=ml-100k", *COLD_BASE, f"encoder={enc}", *extra], "ml-100k")
            for enc in ("attention", "gru")
            for name, extra in REPRS.items()
        ]
    }


def _cell(flat: dict, prefix: str, group: str, key: str) -> str:
    name = f"{prefix}test/{group}/{key}"
    return f"{flat[name]:.4f} ± {flat[name + '_se']:.4f}" if name in flat else "-"


def cold_markdown(results: list[dict]) -> str:
    """One row per run and one per baseline: warm / cold HR@10 and NDCG@10 (± one standard
    error), counts, coverage@10, novelty@10."""
    head = (
        "| run | warm HR@10 | warm NDCG@10 | cold HR@10 | cold NDCG@10 | warm / cold targets | coverage@10 "
        "| novelty@10 | best epoch | command |"
    )
    lines = [head, "|---|---|---|---|---|---|---|---|---|---|"]
    baselines: dict[str, tuple] = {}
    for r in results:
        m = json.loads((Path(r["run_dir"]) / "metrics.json").read_text())
        flat, beyond = warm_cold.from_metrics(m), m["beyond"]["test"]  # test/warm/hr@10, ...
        lines.append(_line(r["label"], flat, "", beyond["model"], f"{r['best_epoch']}/{r['epochs_run']}", r["command"]))
        for name in ("popularity", "features"):
            prefix = warm_cold.PREFIXES[name]
            if f"{prefix}test/warm/hr@10" in flat and name not in baselines:
                baselines[name] = (flat, prefix, beyond[name])
    for name, (flat, prefix, beyond) in baselines.items():
        label = {"popularity": "popularity baseline", "features": "feature-only baseline (cosine to history)"}[name]
        lines.append(_line(label, flat, prefix, beyond, "-", "-"))
    return "\n".join(lines)


def _line(label: str, flat: dict, prefix: str, beyond: dict, epochs: str, command: str) -> str:
    counts = f"{flat['test/warm/targets']} / {flat['test/cold/targets']}"
    return (
        f"| {label} | {_cell(flat, prefix, 'warm', 'hr@10')} | {_cell(flat, prefix, 'warm', 'ndcg@10')} | "
        f"{_cell(flat, prefix, 'cold', 'hr@10')} | {_cell(flat, prefix, 'cold', 'ndcg@10')} | {counts} | "
        f"{beyond.get('coverage@10', float('nan')):.4f} | {beyond.get('novelty@10', float('nan')):.2f} | {epochs} | "
        + (f"`{command}` |" if command != "-" else "- |")
    )
