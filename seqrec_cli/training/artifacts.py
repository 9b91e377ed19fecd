"""Files of the run directory, each written atomically (temporary file in the same folder, then rename)."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any, Mapping, Optional, Sequence

# mkstemp creates owner-only (0600) files; results are meant to be read by others (a shared
# cluster, a web server), as any file written with open() would be.
READABLE = 0o644


def _make_readable(fd: int) -> None:
    if hasattr(os, "fchmod"):  # POSIX; Windows files have no such mode bits
        os.fchmod(fd, READABLE)


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        _make_readable(fd)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


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


def plot_runs(path: Path, runs: Mapping[str, Sequence[Mapping[str, Any]]], metric_key: str, max_legend: int = 12) -> bool:
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
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp.png")
    _make_readable(fd)
    os.close(fd)
    try:
        fig.savefig(tmp, dpi=100)
        os.replace(tmp, path)
    finally:
        plt.close(fig)
        Path(tmp).unlink(missing_ok=True)
    return True


def _number(value: Any) -> Optional[float]:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None
