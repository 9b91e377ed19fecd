"""Stop requests as clean exits for the command-line entry points."""

from __future__ import annotations

import logging
import os
import signal
import sys
from contextlib import contextmanager
from typing import Any, Iterator, Optional

from seqrec_cli.errors import Interrupted

log = logging.getLogger("seqrec_cli")


def _raise_interrupted(signum: int, _frame: Any) -> None:
    raise Interrupted(signal.Signals(signum).name)


@contextmanager
def interrupts_as_exits() -> Iterator[None]:
    """SIGTERM raises `Interrupted`; an interrupt that escapes (e.g. during start-up, before any
    handler of the command runs) ends the process with one line and 128 + the signal number."""
    previous = signal.signal(signal.SIGTERM, _raise_interrupted)
    try:
        yield
    except KeyboardInterrupt:
        _exit(Interrupted("SIGINT"))
    except Interrupted as exc:
        _exit(exc)
    finally:
        signal.signal(signal.SIGTERM, previous)


def _exit(exc: Interrupted) -> None:
    sys.stderr.write(f"Interrupted by {exc.signal_name} before anything was written.\n")
    sys.stderr.flush()
    # Nothing is open yet; os._exit keeps the exit code even when the interrupt landed inside an
    # import, after which CPython's shutdown re-raises SIGINT on itself (exit -2 instead of 130).
    os._exit(exc.exit_code)


@contextmanager
def stop_requests() -> Iterator[dict[str, Optional[str]]]:
    """Turn SIGINT/SIGTERM into a flag the loop checks after each step (restored on exit)."""
    flag: dict[str, Optional[str]] = {"signal": None}

    def handler(signum: int, _frame: Any) -> None:
        flag["signal"] = signal.Signals(signum).name

    previous = {}
    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            previous[sig] = signal.signal(sig, handler)
        except ValueError:  # not the main thread: leave signals alone
            pass
    try:
        yield flag
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
