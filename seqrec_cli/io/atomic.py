"""Atomic, durable file writes with one-sentence errors.

A file is written to a temporary sibling, flushed and fsynced, renamed over the target, and the
folder is fsynced too: after a crash or a power loss a reader finds either the previous complete
file or the new complete one, never a torn or zero-byte one. Temporary names end in `.tmp` so a
later start can recognise (and remove) the leftovers of a killed write.
"""

from __future__ import annotations

import errno
import os
import shutil
import tempfile
from pathlib import Path
from typing import BinaryIO, Callable, Optional

from seqrec_cli.errors import UserError

# mkstemp creates owner-only (0600) files; run artefacts, checkpoints and caches are meant to be
# read by others (a shared cluster, a web server), as any file written with open() would be.
READABLE = 0o644
TMP_SUFFIX = ".tmp"


def atomic_write(path: Path, write: Callable[[BinaryIO], None], size_hint: Optional[int] = None) -> None:
    """Write `path` through `write(fh)` atomically; OS failures become a `UserError`.

    `size_hint` (bytes) lets a full-disk error say how much space the file needed.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    except OSError as exc:
        raise UserError(_explain(exc, path, size_hint)) from None
    try:
        if hasattr(os, "fchmod"):  # POSIX; Windows files have no such mode bits
            os.fchmod(fd, READABLE)
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        fsync_dir(path.parent)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        cause = _os_error(exc)
        if cause is None:
            raise
        raise UserError(_explain(cause, path, size_hint)) from None


def write_text_atomic(path: Path, text: str) -> None:
    data = text.encode("utf-8")
    atomic_write(path, lambda fh: fh.write(data), len(data))


def fsync_dir(folder: Path) -> None:
    """Make a rename in `folder` durable (a no-op where folders cannot be opened, e.g. Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the `.tmp` leftovers of writes killed mid-way (call only while owning `folder`)."""
    removed = []
    if folder.is_dir():
        for tmp in folder.glob(f"*{TMP_SUFFIX}"):
            tmp.unlink(missing_ok=True)
            removed.append(tmp)
    return removed


def _os_error(exc: BaseException) -> Optional[OSError]:
    """The OS error behind `exc`: writers such as torch.save re-raise a failed write as a
    RuntimeError whose context is the original OSError."""
    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, OSError):
            return exc
        exc = exc.__cause__ or exc.__context__
        seen += 1
    return None


def _explain(exc: OSError, path: Path, size_hint: Optional[int]) -> str:
    if exc.errno == errno.ENOSPC:
        free = _free_bytes(path.parent)
        need = f"it needs about {_mib(size_hint)}" if size_hint else "it needs more space"
        have = f" and {_mib(free)} is free there" if free is not None else ""
        return f"The disk is full: could not write {path} ({need}{have}); free some space and run again."
    if exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        return f"Cannot write {path}: {exc.strerror.lower()} (is the folder read-only?)."
    return f"Could not write {path}: {exc.strerror or exc}."


def _free_bytes(folder: Path) -> Optional[int]:
    try:
        return shutil.disk_usage(folder).free
    except OSError:
        return None


def _mib(n: Optional[int]) -> str:
    return f"{(n or 0) / 2**20:.1f} MiB"
