"""A run directory belongs to one process: claimed under a name no other run can take, and locked
while written.

Two runs started in the same second used to share `outputs/<date>/<time>` and overwrite each
other; two processes pointed at one directory interleaved its files. `claim_new_dir` creates the
directory atomically (`mkdir` fails when it exists, so a second claimant moves on to a suffixed
name) and `RunDirLock` holds an exclusive `flock` for as long as the process writes there: the
kernel drops it when the process ends, however it ends, so a killed run never leaves a stale lock.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from typing import Any, Optional

from seqrec_cli.errors import UserError

LOCK_NAME = ".lock"


def claim_new_dir(wanted: str | Path) -> Path:
    """Create `wanted` (or `wanted-2`, `wanted-3`, ... when taken) atomically and return it."""
    base = Path(wanted)
    base.parent.mkdir(parents=True, exist_ok=True)
    for n in range(1, 10_000):
        candidate = base if n == 1 else base.with_name(f"{base.name}-{n}")
        try:
            candidate.mkdir()
            return candidate
        except FileExistsError:
            continue
    raise UserError(f"Could not find a free run directory name next to {base}.")


class RunDirLock:
    """Exclusive ownership of a run directory, as a context manager.

    A second writer is refused with one sentence naming the holder (pid, host, start time). On
    systems without `fcntl` (Windows) the directory is used unlocked.
    """

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = Path(run_dir)
        self._fd: Optional[int] = None

    def __enter__(self) -> "RunDirLock":
        self.acquire()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def acquire(self) -> None:
        try:
            import fcntl
        except ImportError:  # pragma: no cover - Windows
            return
        path = self.run_dir / LOCK_NAME
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise UserError(f"Cannot write the run directory {self.run_dir}: {exc.strerror.lower()}.") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise UserError(
                f"The run directory {self.run_dir} is in use by another run ({holder}): wait for it to finish, "
                "or give this run its own directory (leave hydra.run.dir at its default)."
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(_me()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None


def _me() -> dict[str, Any]:
    return {"pid": os.getpid(), "host": socket.gethostname(), "started": time.strftime("%Y-%m-%d %H:%M:%S")}


def _holder(fd: int) -> str:
    try:
        info = json.loads(os.pread(fd, 4096, 0).decode() or "{}")
        return f"pid {info['pid']} on {info['host']}, started {info['started']}"
    except (OSError, ValueError, KeyError):
        return "a process that has not said who it is yet"
