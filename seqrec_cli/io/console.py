"""What the user sees: a rich progress bar per epoch, tables, and a plain-text copy in train.log.

Console lines go through `logging` (Hydra routes them to the terminal and to train.log). Tables are
drawn by rich on the terminal and written as plain text to train.log through the `transcript`
logger, which only has the file handler, so nothing is shown twice.
"""

from __future__ import annotations

import io
import logging
import sys
from typing import Mapping, Optional, Sequence

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

TRANSCRIPT = logging.getLogger("seqrec_cli.transcript")


def stderr_console() -> Console:
    return Console(stderr=True)


def stdout_console() -> Console:
    """The terminal's width on a terminal; 140 columns when piped (logs, CI), not rich's 80."""
    return Console() if sys.stdout.isatty() else Console(width=140)


def epoch_progress(enabled: bool) -> Progress:
    """A transient bar: batches done, running loss and speed; it vanishes when the epoch ends."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("loss {task.fields[loss]:.4f}"),
        TextColumn("{task.fields[rate]:.1f} it/s"),
        TimeElapsedColumn(),
        console=stderr_console(),
        transient=True,
        disable=not (enabled and sys.stderr.isatty()),
    )


def format_metrics(metrics: Mapping[str, float], keys: Sequence[str]) -> str:
    return "  ".join(f"{k} {metrics[k]:.4f}" for k in keys if k in metrics)


def results_table(title: str, columns: Mapping[str, Mapping[str, float]], keys: Sequence[str]) -> Table:
    """One row per metric, one column per result set (e.g. model vs popularity baseline); means
    with 4 decimals, counts (ints) as they are, "-" where a result set lacks the row."""
    table = Table(title=title, min_width=len(title) + 4)  # never wrap the title over two lines
    table.add_column("metric")
    for name in columns:
        table.add_column(name, justify="right")
    for key in keys:
        table.add_row(key, *(_figure(col[key]) if key in col else "-" for col in columns.values()))
    return table


def _figure(value: float) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else f"{value:.4f}"


def show_table(table: Table, console: Optional[Console] = None) -> None:
    """Draw on the terminal (stdout) and copy as plain text into train.log."""
    (console or stdout_console()).print(table)
    buf = io.StringIO()
    Console(file=buf, width=100, color_system=None, force_terminal=False).print(table)
    TRANSCRIPT.info("\n%s", buf.getvalue().rstrip())


def console_handler() -> logging.Handler:
    """The terminal log handler (used by conf/hydra/job_logging/seqrec.yaml): rich, on stderr."""
    from rich.logging import RichHandler

    return RichHandler(console=stderr_console(), show_path=False, show_time=False, markup=False, rich_tracebacks=False)


def duration(seconds: float) -> str:
    """`m:ss`, or `h:mm:ss` from an hour on (the ETA of the epoch lines)."""
    minutes, sec = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{sec:02d}" if hours else f"{minutes}:{sec:02d}"
