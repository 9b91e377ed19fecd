"""Files of the run directory, each written atomically (temporary file in the same folder, then rename)."""

from __future__ import annotations

import csv
import io
import json
import math
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

from seqrec_cli.io.atomic import atomic_write, write_text_atomic

__all__ = ["write_text_atomic", "write_json", "write_csv", "write_history", "plot_curves", "plot_runs"]


def write_json(path: Path, data: Any) -> None:
    write_text_atomic(path, json.dumps(data, indent=2, sort_keys=False) + "\n")


def write_csv(path: Path, rows: Sequence[dict[str, Any]], first_columns: Sequence[str] = ()) -> None:
    """Rows as CSV; columns are `first_columns`, then the union of the rows' keys in first-seen order."""
    columns: list[str] = list(first_columns)
    for row in rows:
        columns += [k for k in row if k not in columns]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text_atomic(path, buf.getvalue())


def write_history(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """history.csv: one row per epoch."""
    write_csv(path, rows)


def plot_curves(path: Path, rows: Sequence[dict[str, Any]], monitor: str) -> bool:
    """curves.png: train loss and the monitored validation metric per epoch (needs matplotlib)."""
    return plot_runs(path, {"": rows}, f"valid/{monitor}")


def plot_runs(
    path: Path, runs: Mapping[str, Sequence[Mapping[str, Any]]], metric_key: str, max_legend: int = 12
) -> bool:
    """Train loss and `metric_key` per epoch, one line per run (label -> history rows).

    Rows are history.csv rows, as dicts from the trainer or as strings read back from the file;
    epochs without a validation (an empty cell) are skipped. Returns False without matplotlib.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import MaxNLocator
    except ImportError:
        return False
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(10, 4))
    for label, rows in runs.items():
        loss = [(_number(r.get("epoch")), _number(r.get("train_loss"))) for r in rows]
        metric = [(_number(r.get("epoch")), _number(r.get(metric_key))) for r in rows]
        loss = [(e, v) for e, v in loss if e is not None and v is not None]
        metric = [(e, v) for e, v in metric if e is not None and v is not None]
        if loss:
            ax_loss.plot(*zip(*loss), marker=".", label=label or None)
        if metric:
            ax_metric.plot(*zip(*metric), marker=".", label=label or None)
    ax_loss.set(xlabel="epoch", ylabel="train loss")
    ax_metric.set(xlabel="epoch", ylabel=metric_key)
    for ax in (ax_loss, ax_metric):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    labelled = [label for label in runs if label]
    if labelled and len(labelled) <= max_legend:
        ax_metric.legend(fontsize="small")
    fig.tight_layout()
    try:
        atomic_write(path, lambda fh: fig.savefig(fh, format="png", dpi=100))
    finally:
        plt.close(fig)
    return True


def _number(value: Any) -> Optional[float]:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None
