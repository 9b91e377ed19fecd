"""On-disk cache of processed interactions, keyed by what produced them.

Reading and filtering a 20M-row file takes tens of seconds; reloading the arrays takes about one.
The key hashes the source identity (path, size and a SHA-256 of the file's bytes, or the generator
settings), every preprocessing setting and a format version, so a changed file or setting never
reuses a stale cache, even when the new file has the old one's size and modification time. Files are
written to a temporary name and renamed: a crash never leaves a torn cache that looks complete.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
from pathlib import Path
from typing import Any, Optional

import numpy as np

from seqrec_cli.data.preprocess import Interactions
from seqrec_cli.errors import UserError
from seqrec_cli.io.atomic import atomic_write

log = logging.getLogger(__name__)

# Bump when the processed format or the preprocessing rules change (3: exact ids beyond 2**53,
# content-hashed sources, time windows).
CACHE_FORMAT = 3


def default_cache_dir() -> Path:
    env = os.environ.get("SEQREC_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    return base / "seqrec_cli"


def cache_key(payload: dict[str, Any]) -> str:
    blob = json.dumps({"format": CACHE_FORMAT, **payload}, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


def cache_file(cache_dir: Path, name: str, key: str) -> Path:
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    return cache_dir / f"{safe}-{key}.npz"


def load(path: Path) -> Optional[tuple[Interactions, dict]]:
    """The cached interactions and summary, or None when absent or unreadable (then rebuilt)."""
    if not path.is_file():
        return None
    try:
        with np.load(path, allow_pickle=False) as z:
            inter = Interactions(
                offsets=z["offsets"],
                items=z["items"],
                times=z["times"] if "times" in z.files else None,
                user_ids=z["user_ids"],
                item_ids=z["item_ids"],
            )
            summary = json.loads(str(z["summary"]))
    except Exception as exc:  # a damaged cache is rebuilt, never trusted
        log.warning("Ignoring unreadable cache file %s (%s); rebuilding it.", path, exc)
        return None
    return inter, summary


def check_writable(cache_dir: Path) -> None:
    """Fail before the expensive work, not after it, when the cache cannot be written."""
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        tempfile.NamedTemporaryFile(dir=cache_dir, prefix=".write-test-").close()
    except OSError as exc:
        raise _not_writable(cache_dir, exc) from None


def _not_writable(cache_dir: Path, exc: OSError) -> UserError:
    return UserError(
        f"Cannot write the data cache in {cache_dir} ({exc.strerror or exc}): set dataset.cache_dir "
        "(or $SEQREC_CACHE_DIR) to a writable folder, or dataset.use_cache=false."
    )


def save(path: Path, inter: Interactions, summary: dict) -> None:
    """Write atomically and durably (`io.atomic`: temporary sibling, fsync, rename, 0644 like every
    other artefact), so a crash never leaves a torn cache that looks complete."""
    arrays = {
        "offsets": inter.offsets,
        "items": inter.items,
        "user_ids": _storable(inter.user_ids),
        "item_ids": _storable(inter.item_ids),
        "summary": np.array(json.dumps(summary)),
    }
    if inter.times is not None:
        arrays["times"] = inter.times
    size = sum(a.nbytes for a in arrays.values())
    atomic_write(path, lambda fh: np.savez(fh, **arrays), size_hint=size)


def _storable(ids: np.ndarray) -> np.ndarray:
    """Object arrays of strings cannot be saved without pickle; fixed-width unicode can."""
    return ids.astype(str) if ids.dtype == object else ids
