"""Downloads of named public datasets: once, verified, atomic, with a progress bar.

A dataset lands in `<data dir>/<name>/` (data dir = `dataset.data_dir`, else `$SEQREC_DATA_DIR`,
else `~/.cache/seqrec_cli/datasets`). The archive is streamed to a temporary file in the same
folder, hashed on the way, checked against its length and SHA-256, and only then renamed into
place; it is unpacked into a temporary folder that is renamed as a whole. So an interrupted or bad
download never looks complete, and the next run starts it again. Without a network the message
says where to get the file and where to put it.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import socket
import tempfile
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Optional

from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn, TransferSpeedColumn

from seqrec_cli.errors import UserError

log = logging.getLogger(__name__)

_GROUPLENS = "https://files.grouplens.org/datasets/movielens/"


@dataclass(frozen=True)
class Remote:
    """Where a dataset comes from. `sha256` is None where no checksum could be verified yet:
    the download then goes ahead with a logged note giving the digest it got, so it can be pinned
    (dataset.sha256 or this table)."""

    url: str
    sha256: Optional[str] = None


REMOTES = {
    "ml-100k": Remote(_GROUPLENS + "ml-100k.zip"),
    "ml-1m": Remote(_GROUPLENS + "ml-1m.zip"),
    "ml-10m": Remote(_GROUPLENS + "ml-10m.zip"),
    "ml-20m": Remote(_GROUPLENS + "ml-20m.zip"),
    "ml-25m": Remote(_GROUPLENS + "ml-25m.zip"),
    "ml-latest-small": Remote(_GROUPLENS + "ml-latest-small.zip"),
}

_CHUNK = 1 << 20
_TIMEOUT_S = 30


def data_dir(configured: Optional[str] = None) -> Path:
    """Where downloaded datasets live: the configured folder, $SEQREC_DATA_DIR, or the user cache."""
    if configured:
        return Path(configured).expanduser()
    env = os.environ.get("SEQREC_DATA_DIR")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "seqrec_cli" / "datasets"


def fetch(name: str, root: Path, marker: str, url: Optional[str] = None, sha256: Optional[str] = None) -> Path:
    """`root/name/`, holding `marker` (the file the reader needs), downloading the archive if absent."""
    dest = root / name
    if (dest / marker).is_file():
        return dest
    if name not in REMOTES and url is None:
        raise UserError(f"No download address is known for dataset {name!r}: set dataset.url or dataset.path.")
    remote = REMOTES.get(name, Remote(url or ""))
    url = url or remote.url
    expected = (sha256 or remote.sha256 or "").strip().lower() or None
    hint = (
        f"download {url} yourself, unzip it and put its files in {dest}, or set dataset.path to a "
        f"folder holding {marker}"
    )
    try:
        root.mkdir(parents=True, exist_ok=True)
        probe = tempfile.NamedTemporaryFile(dir=root, prefix=".write-test-")
        probe.close()
    except OSError as exc:
        raise UserError(
            f"Cannot write to the dataset folder {root} ({exc.strerror or exc}): set $SEQREC_DATA_DIR or "
            f"dataset.data_dir to a writable folder, or {hint}."
        ) from None
    archive = root / f"{name}{_suffix(url)}"
    download(url, archive, expected, name, hint)
    try:
        unpack(archive, dest, marker)
    finally:
        archive.unlink(missing_ok=True)
    log.info("Dataset %s is ready in %s", name, dest)
    return dest


def _suffix(url: str) -> str:
    suffix = PurePosixPath(url.split("?", 1)[0]).suffix
    return suffix if suffix else ".download"


def download(url: str, dest: Path, sha256: Optional[str], label: str, hint: str) -> None:
    """Stream `url` to `dest` atomically, checking its length and (when known) its SHA-256."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}-", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    received = 0
    try:
        with os.fdopen(fd, "wb") as out:
            request = urllib.request.Request(url, headers={"User-Agent": "seqrec-cli"})
            with urllib.request.urlopen(request, timeout=_TIMEOUT_S) as response:
                total = _content_length(response)
                with _progress() as progress:
                    task = progress.add_task(f"Downloading {label}", total=total)
                    while True:
                        chunk = response.read(_CHUNK)
                        if not chunk:
                            break
                        out.write(chunk)
                        digest.update(chunk)
                        received += len(chunk)
                        progress.advance(task, len(chunk))
        if total is not None and received != total:
            raise _truncated(label, url, received, total, hint)
        got = digest.hexdigest()
        if sha256 is None:
            log.warning(
                "No SHA-256 is known for %s, so the download was not verified; it has SHA-256 %s "
                "(set dataset.sha256 to pin it).", label, got,
            )
        elif got != sha256:
            raise UserError(
                f"The download of {label} from {url} does not match its SHA-256 checksum (expected "
                f"{sha256}, got {got}), so it was discarded: try again, or check dataset.sha256."
            )
        os.replace(tmp, dest)
    except urllib.error.HTTPError as exc:
        raise UserError(
            f"Could not download {label}: {url} answered HTTP {exc.code} {exc.reason}; {hint}."
        ) from None
    except urllib.error.URLError as exc:
        raise UserError(
            f"Could not download {label}: no network connection to {url} ({_reason(exc.reason)}); {hint}."
        ) from None
    except http.client.IncompleteRead as exc:
        raise _truncated(label, url, received + len(exc.partial), None, hint) from None
    except (socket.timeout, TimeoutError, ConnectionError, http.client.HTTPException) as exc:
        raise UserError(
            f"Could not download {label}: the connection to {url} failed ({_reason(exc)}); {hint}."
        ) from None
    finally:
        tmp.unlink(missing_ok=True)


def _truncated(label: str, url: str, received: int, total: Optional[int], hint: str) -> UserError:
    size = f"{received:,} of {total:,} bytes" if total is not None else f"{received:,} bytes"
    return UserError(
        f"The download of {label} from {url} was cut short ({size}), so it was discarded: try again, or {hint}."
    )


def _reason(reason: object) -> str:
    return getattr(reason, "strerror", None) or str(reason) or type(reason).__name__


def _content_length(response: http.client.HTTPResponse) -> Optional[int]:
    value = response.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None


def _progress() -> Progress:
    return Progress(
        TextColumn("{task.description}"), BarColumn(), DownloadColumn(), TransferSpeedColumn(),
        TimeRemainingColumn(), console=Console(stderr=True), transient=True,
    )


def unpack(archive: Path, dest: Path, marker: str) -> None:
    """Unzip `archive` so that `dest/marker` exists, via a temporary folder renamed into place.

    The archive's own top folder (e.g. `ml-10M100K/`) is dropped: files land directly in `dest`.
    """
    if not zipfile.is_zipfile(archive):
        if archive.suffix != ".zip":  # a plain file download: the file is the dataset
            dest.mkdir(exist_ok=True)
            os.replace(archive, dest / marker)
            return
        raise UserError(f"The download {archive.name} is not a valid zip archive: delete it and try again.")
    work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}-unpack-"))
    try:
        with zipfile.ZipFile(archive) as zf:
            for member in zf.namelist():
                if member.startswith(("/", "\\")) or ".." in PurePosixPath(member).parts:
                    raise UserError(f"The download {archive.name} holds an unsafe path {member!r}; it was not unpacked.")
            zf.extractall(work)
        holders = [p.parent for p in work.rglob(marker)]
        if not holders:
            raise UserError(f"The download {archive.name} holds no {marker}: is it the right dataset?")
        if dest.exists() and not (dest / marker).is_file():
            if any(dest.iterdir()):
                raise UserError(f"{dest} exists but holds no {marker}: move it away and run again.")
            dest.rmdir()
        try:
            os.replace(min(holders, key=lambda p: len(p.parts)), dest)
        except OSError:
            if not (dest / marker).is_file():  # not a concurrent run that finished first
                raise
    except zipfile.BadZipFile as exc:
        raise UserError(f"The download {archive.name} is a damaged zip archive ({exc}): delete it and try again.") from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
