"""The peer benchmark's comparison: derived throughputs, ratios, target checks and the tables.

Kept apart from `peer.py` (which runs both sides) so the figures' arithmetic and presentation can
be read and tested without RecBole or a training run.
"""

from __future__ import annotations

import os
import platform
import time
from pathlib import Path
from typing import Any, Optional

# (label, key, how to get the figure, ratio direction): "up" = ours / RecBole (higher is better),
# "down" = RecBole / ours (lower is better), so every ratio reads "> 1 = ours better".
MEASURES = [
    ("seconds / training epoch", "s_per_epoch", "down"),
    ("training sequences / s", "sequences_per_s", None),
    ("target positions / s", "targets_per_s", "up"),
    ("seconds / eval pass", "eval_s_per_pass", "down"),
    ("users evaluated / s", "users_per_s", "up"),
    ("peak RSS (GB)", "peak_rss_gb", "down"),
    ("test NDCG@10", "test_ndcg@10", "up"),
    ("test HR@10", "test_hr@10", "up"),
    ("epochs run (best)", "epochs", None),
]


def derived(side: dict[str, Any]) -> dict[str, Any]:
    """Throughputs from the raw figures of one side."""
    s = side["s_per_epoch"]
    return {
        **side,
        "sequences_per_s": side["train_sequences"] / s if s else float("nan"),
        "targets_per_s": side["train_targets"] / s if s else float("nan"),
        "users_per_s": side["eval_users"] / side["eval_s_per_pass"] if side["eval_s_per_pass"] else float("nan"),
        "epochs": f"{side['epochs_run']} ({side['best_epoch']})",
    }


def ratio(ours: Any, theirs: Any, direction: Optional[str]) -> Optional[float]:
    """How many times better ours is (> 1 = ours better); None where no ratio makes sense."""
    if direction is None or not ours or not theirs:
        return None
    return ours / theirs if direction == "up" else theirs / ours


def pair_row(
    dataset: str, model: str, ours: dict[str, Any], theirs: dict[str, Any], targets: dict[str, float]
) -> dict[str, Any]:
    """One dataset x model comparison: both sides, the ratios and whether each target is met."""
    ours, theirs = derived(ours), derived(theirs)
    ratios = {key: ratio(ours[key], theirs[key], direction) for _, key, direction in MEASURES}
    checks = {
        f"training >= {targets['train']:g}x": (ratios["s_per_epoch"] or 0) >= targets["train"],
        f"evaluation >= {targets['eval']:g}x": (ratios["eval_s_per_pass"] or 0) >= targets["eval"],
        "test NDCG@10 >= RecBole's": ours["test_ndcg@10"] >= theirs["test_ndcg@10"],
    }
    return {"dataset": dataset, "model": model, "ours": ours, "recbole": theirs, "ratios": ratios, "checks": checks}


def _fmt(value: Any, key: str) -> str:
    if value is None:
        return "—"
    if isinstance(value, str):
        return value
    if key in ("test_ndcg@10", "test_hr@10"):
        return f"{value:.4f}"
    if key in ("eval_s_per_pass", "peak_rss_gb"):
        return f"{value:.3f}" if value < 10 else f"{value:.1f}"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.2f}"


def table_lines(rows: list[dict[str, Any]], markdown: bool = False, peer: str = "RecBole") -> list[str]:
    """The comparison as a plain or markdown table: one line per dataset x model x measure. The
    peer's side is `row["recbole"]` whichever library `peer` names (RecTools rows use it too)."""
    header = ["dataset", f"model (ours vs {peer})", "measure", "ours", peer, "ratio (>1 = ours better)"]
    body = []
    for row in rows:
        for label, key, _ in MEASURES:
            r = row["ratios"][key]
            body.append(
                [
                    row["dataset"],
                    row["model"],
                    label,
                    _fmt(row["ours"][key], key),
                    _fmt(row["recbole"][key], key),
                    "—" if r is None else f"{r:.2f}x",
                ]
            )
    if markdown:
        lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
        return lines + ["| " + " | ".join(cells) + " |" for cells in body]
    widths = [max(len(str(c)) for c in col) for col in zip(header, *body)]
    fmt = "  ".join(f"{{:{'<' if i < 3 else '>'}{w}}}" for i, w in enumerate(widths))
    return [fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*cells) for cells in body]


def verdict_lines(rows: list[dict[str, Any]]) -> list[str]:
    return [
        f"{row['dataset']} {row['model']}: "
        + ", ".join(f"{name} {'yes' if ok else 'NO'}" for name, ok in row["checks"].items())
        for row in rows
    ]


def machine(recbole_version: str) -> dict[str, Any]:
    """What the figures depend on: CPU model, cores, load, versions."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    import torch

    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "recbole": recbole_version,
        "load_average": [round(x, 2) for x in os.getloadavg()],
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def markdown_report(rows: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    """A section to paste into docs/PERFORMANCE.md: settings, machine, the table, the verdicts."""
    lines = [
        f"Measured {meta['machine']['date']} on {meta['machine']['cpu']} ({meta['machine']['cores']} cores, "
        f"load average {meta['machine']['load_average'][0]} at the start), {meta['threads']} torch threads per side, "
        f"torch {meta['machine']['torch']}, RecBole {meta['machine']['recbole']}; "
        f"at most {meta['epochs']} epoch(s), patience {meta['patience']}, seed {meta['seed']}.",
        f"Training batch: ours {meta['our_batch']} sequences; RecBole {meta['recbole_batch_rule']}.",
        "",
        "`python scripts/benchmark.py peer " + " ".join(meta["argv"]) + "`",
        "",
        *table_lines(rows, markdown=True),
        "",
        *(f"- {line}" for line in verdict_lines(rows)),
    ]
    return "\n".join(lines) + "\n"
