"""Files of the run directory, each written atomically (temporary file in the same folder, then rename)."""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Sequence


def write_text_atomic(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
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
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    epochs = [r["epoch"] for r in rows]
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(9, 3.5))
    ax_loss.plot(epochs, [r["train_loss"] for r in rows], marker=".")
    ax_loss.set(xlabel="epoch", ylabel="train loss")
    key = f"valid/{monitor}"
    evaluated = [r for r in rows if r.get(key) not in (None, "")]
    ax_metric.plot([r["epoch"] for r in evaluated], [r[key] for r in evaluated], marker=".", color="tab:green")
    ax_metric.set(xlabel="epoch", ylabel=key)
    fig.tight_layout()
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp.png")
    os.close(fd)
    fig.savefig(tmp, dpi=100)
    plt.close(fig)
    os.replace(tmp, path)
    return True
