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
    """Where a dataset comes from and the digest its publisher gives for it.

    GroupLens publishes an MD5 file next to each archive (no SHA-256), so the table carries those
    MD5 digests and every download from the default address is checked against them; a
    `dataset.sha256` is checked as well whenever it is set. With neither known (a user's own URL,
    or ml-latest-small, whose archive is re-issued with each refresh) the download goes ahead with
    a logged note giving the SHA-256 it got, so it can be pinned.
    """

    url: str
    sha256: Optional[str] = None
    md5: Optional[str] = None


REMOTES = {
    "ml-100k": Remote(_GROUPLENS + "ml-100k.zip", md5="0e33842e24a9c977be4e0107933c0723"),
    "ml-1m": Remote(_GROUPLENS + "ml-1m.zip", md5="c4d9eecfca2ab87c1945afe126590906"),
    "ml-10m": Remote(_GROUPLENS + "ml-10m.zip", md5="ce571fd55effeba0271552578f2648bd"),
    "ml-20m": Remote(_GROUPLENS + "ml-20m.zip", md5="cd245b17a1ae2cc31bb14903e1204af3"),
    "ml-25m": Remote(_GROUPLENS + "ml-25m.zip", md5="6b51fb2759a8657d3bfcbfc42b592ada"),
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


def fetch(
    name: str,
    root: Path,
    marker: str,
    url: Optional[str] = None,
    sha256: Optional[str] = None,
    md5: Optional[str] = None,
) -> Path:
    """`root/name/`, holding `marker` (the file the reader needs), downloading the archive if absent."""
    dest = root / name
    if (dest / marker).is_file():
        return dest
    if name not in REMOTES and url is None:
        raise UserError(f"No download address is known for dataset {name!r}: set dataset.url or dataset.path.")
    remote = REMOTES.get(name, Remote(url or ""))
    # The publisher's digests describe the file at the publisher's address, not a user's URL.
    expected_md5 = md5 or (remote.md5 if url is None else None)
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
    download(url, archive, expected, name, hint, md5=expected_md5)
    try:
        unpack(archive, dest, marker)
    finally:
        archive.unlink(missing_ok=True)
    log.info("Dataset %s is ready in %s", name, dest)
    return dest


def _suffix(url: str) -> str:
    suffix = PurePosixPath(url.split("?", 1)[0]).suffix
    return suffix if suffix else ".download"


def download(url: str, dest: Path, sha256: Optional[str], label: str, hint: str, md5: Optional[str] = None) -> None:
    """Stream `url` to `dest` atomically, checking its length and (when known) its SHA-256 / MD5."""
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}-", suffix=".part")
    tmp = Path(tmp_name)
    digest = hashlib.sha256()
    md5_digest = hashlib.md5(usedforsecurity=False)
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
                        md5_digest.update(chunk)
                        received += len(chunk)
                        progress.advance(task, len(chunk))
        if total is not None and received != total:
            raise _truncated(label, url, received, total, hint)
        _check_digests(
            label, url, hint, got_sha256=digest.hexdigest(), got_md5=md5_digest.hexdigest(), sha256=sha256, md5=md5
        )
        os.replace(tmp, dest)
    except urllib.error.HTTPError as exc:
        raise UserError(f"Could not download {label}: {url} answered HTTP {exc.code} {exc.reason}; {hint}.") from None
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


def _check_digests(
    label: str, url: str, hint: str, *, got_sha256: str, got_md5: str, sha256: Optional[str], md5: Optional[str]
) -> None:
    """Refuse a download whose MD5 / SHA-256 differs from the known one; log the SHA-256 otherwise."""
    if md5 is not None and got_md5 != md5.lower():
        raise UserError(
            f"The download of {label} from {url} does not match the publisher's MD5 checksum "
            f"(expected {md5}, got {got_md5}), so it was discarded: try again, or {hint}."
        )
    if sha256 is None and md5 is None:
        log.warning(
            "No checksum is known for %s, so the download was not verified; it has SHA-256 %s "
            "(set dataset.sha256 to pin it).",
            label,
            got_sha256,
        )
    elif sha256 is not None and got_sha256 != sha256:
        raise UserError(
            f"The download of {label} from {url} does not match its SHA-256 checksum (expected "
            f"{sha256}, got {got_sha256}), so it was discarded: try again, or check dataset.sha256."
        )


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
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        transient=True,
    )


def _move_into_place(work: Path, dest: Path, marker: str, archive_name: str) -> None:
    """Rename the unpacked folder holding `marker` (the shallowest one) to `dest`."""
    holders = [p.parent for p in work.rglob(marker)]
    if not holders:
        raise UserError(f"The download {archive_name} holds no {marker}: is it the right dataset?")
    if dest.exists() and not (dest / marker).is_file():
        if any(dest.iterdir()):
            raise UserError(f"{dest} exists but holds no {marker}: move it away and run again.")
        dest.rmdir()
    try:
        os.replace(min(holders, key=lambda p: len(p.parts)), dest)
    except OSError:
        if not (dest / marker).is_file():  # not a concurrent run that finished first
            raise


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
                    raise UserError(
                        f"The download {archive.name} holds an unsafe path {member!r}; it was not unpacked."
                    )
            zf.extractall(work)
        _move_into_place(work, dest, marker, archive.name)
    except zipfile.BadZipFile as exc:
        raise UserError(
            f"The download {archive.name} is a damaged zip archive ({exc}): delete it and try again."
        ) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
