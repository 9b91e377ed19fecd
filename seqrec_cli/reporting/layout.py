"""The terminal table of `seqrec-report`: which columns it could show, in which order, which
of them fit the terminal's width, and the caption (shared settings, what was left out).

Its input is `report.report_rows` (one flat dict per run); its output a rich Table. The run
name and the metrics always stay; the other columns are kept in order of how much they tell
(what tells the runs apart first, bookkeeping last) while the table fits, measured as rich
measures it. The warm / cold group (`test/warm/ndcg@10`, ..., evaluation/warm_cold.py) is shown
only when some run has it, and is kept right after the differing settings.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional, Sequence

from rich import box
from rich.console import Console
from rich.table import Table

# Always shown (when present): (config key, column title).
KEY_PARAMS = [
    ("dataset.name", "dataset"),
    ("encoder.name", "encoder"),
    ("loss.name", "loss"),
    ("optimizer.name", "optim"),
    ("optimizer.lr", "lr"),
    ("model.embedding_dim", "dim"),
    ("model.max_len", "max_len"),
    ("encoder.num_layers", "layers"),
    ("encoder.dropout", "dropout"),
    ("trainer.batch_size", "batch"),
]
ALWAYS_SHOWN = ["encoder.name", "loss.name"]
TABLE_METRICS = ["valid/ndcg@10", "test/ndcg@10", "test/hr@10", "test/mrr"]
# The warm / cold group, in display order, and the order in which they are kept when space is short.
WARM_COLD = ["test/warm/ndcg@10", "test/warm/hr@10", "test/cold/ndcg@10", "test/cold/hr@10", "test/cold/targets"]
WARM_COLD_KEPT = ["test/cold/ndcg@10", "test/warm/ndcg@10", "test/cold/hr@10", "test/warm/hr@10", "test/cold/targets"]


def report_table(rows: Sequence[dict[str, Any]], settings: Sequence[str], width: Optional[int] = None) -> Table:
    """Encoder, loss, the settings that differ (of KEY_PARAMS and `settings`), the warm / cold group
    and the tags get columns; settings all runs share go in the caption. With `width`, columns
    are left out (least telling first) until the table fits; the run name and the metrics always
    stay, and the caption names what was left out."""
    titles = dict(KEY_PARAMS)
    candidates = [k for k, _ in KEY_PARAMS if k not in ALWAYS_SHOWN] + list(settings)
    distinct = {k: {json.dumps(r.get(k), default=str) for r in rows} for k in candidates}
    varying = [k for k in candidates if len(distinct[k]) > 1]
    shared = [
        f"{titles.get(k, k)}={cell(rows[0].get(k))}"
        for k in candidates
        if len(distinct[k]) == 1 and rows[0].get(k) is not None
    ]
    prefix = _common_folder([r["run"] for r in rows])
    columns = _columns(rows, varying, titles, len(prefix) + 1 if prefix else 0)
    # Most telling first: what tells the runs apart, then what describes them, then bookkeeping.
    same = [k for k in ALWAYS_SHOWN if len({r.get(k) for r in rows}) == 1]
    differing = [k for k in ALWAYS_SHOWN if k not in same]
    optional = [*differing, *varying, *WARM_COLD_KEPT, "tags", *same, "best_epoch", "sec"]
    kept = _fit(columns, optional, width) if width else set(columns)
    # A column every run shares moves to the caption rather than vanishing.
    shared[:0] = [f"{titles[k]}={cell(rows[0].get(k))}" for k in same if k not in kept]
    left_out = [
        k if k in WARM_COLD else columns[k].title.replace("\n", " ")
        for k in optional
        if k in columns and k not in kept and k not in same
    ]
    notes = [f"runs in {prefix}/"] if prefix else []
    notes += ["all runs: " + ", ".join(shared)] if shared else []
    if left_out:
        notes.append(f"left out to fit {width} columns: {', '.join(left_out)} (all in report.csv)")
    table = _table(len(rows), [c for k, c in columns.items() if k in kept], "\n".join(notes) or None)
    return table


@dataclass
class _Column:
    title: str
    cells: list[str]
    justify: str = "right"


def _common_folder(labels: Sequence[str]) -> str:
    """The folder every run label starts with (a sweep's own name), shown once in the caption."""
    if len(labels) < 2:
        return ""
    parts = [Path(label).parts for label in labels]
    common = []
    for names in zip(*parts):
        if len(set(names)) > 1:
            break
        common.append(names[0])
    return str(Path(*common)) if common and all(len(p) > len(common) for p in parts) else ""


def _columns(
    rows: Sequence[dict[str, Any]], varying: Sequence[str], titles: dict[str, str], strip: int
) -> dict[str, _Column]:
    """Every column the table could show, in display order, keyed by its row key; run labels lose
    their first `strip` characters (the folder they share)."""

    def setting_title(key: str) -> str:
        return titles.get(key) or "\n".join(key.rsplit(".", 1))  # long dotted keys wrap at the last dot

    labels = [row["run"][strip:] + ("" if row["status"] == "done" else f" ({row['status']})") for row in rows]
    columns = {"run": _Column("run", labels, "left")}
    for key in [*ALWAYS_SHOWN, *varying]:
        justify = "left" if key in ALWAYS_SHOWN else "right"
        columns[key] = _Column(setting_title(key), [cell(r.get(key)) for r in rows], justify)
    if any(r.get("tags") for r in rows):
        columns["tags"] = _Column("tags", [cell(r.get("tags")) for r in rows], "left")
    columns["best_epoch"] = _Column("best\nepoch", [cell(r["best_epoch"]) for r in rows])
    for key in TABLE_METRICS:
        columns[key] = _Column(key.replace("/", "\n"), [cell(r.get(key), ".4f") for r in rows])
    if any(r.get(key) is not None for r in rows for key in WARM_COLD):  # only where some run has them
        for key in WARM_COLD:
            fmt = "" if key.endswith("/targets") else ".4f"
            columns[key] = _Column(key.replace("/", "\n"), [cell(r.get(key), fmt) for r in rows])
    columns["sec"] = _Column("sec", [cell(r["total_seconds"], ".1f") for r in rows])
    return columns


def _fit(columns: dict[str, _Column], optional: Sequence[str], width: int) -> set[str]:
    """The run name, the metrics, and as many `optional` columns (in that order) as fit in `width`."""
    kept = {k for k in columns if k not in optional}
    for key in optional:
        if key in columns and _natural_width([c for k, c in columns.items() if k in kept | {key}]) <= width:
            kept.add(key)
    return kept


def _natural_width(columns: Sequence[_Column]) -> int:
    """Width the table takes when no cell is cut, as rich measures it (padding and separators included)."""
    table = _table(len(columns[0].cells), columns, None)
    return Console(width=100_000, file=io.StringIO()).measure(table).maximum


def _table(n_runs: int, columns: Sequence[_Column], caption: Optional[str]) -> Table:
    table = Table(
        title=f"{n_runs} run{'s' if n_runs != 1 else ''}",
        box=box.SIMPLE_HEAD,
        show_edge=False,
        caption=caption,
        caption_justify="left",
    )
    for column in columns:
        table.add_column(column.title, justify=column.justify, overflow="fold")
    for i in range(n_runs):
        table.add_row(*(c.cells[i] for c in columns))
    return table


def cell(value: Any, fmt: str = "") -> str:
    """A table cell: "-" for a missing value, numbers in `fmt`."""
    if value is None:
        return "-"
    if fmt and isinstance(value, (int, float)) and not isinstance(value, bool):
        return format(value, fmt)
    return str(value)
