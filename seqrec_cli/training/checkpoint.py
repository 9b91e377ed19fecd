"""Checkpoints: atomic writes, safe loads.

A checkpoint holds only tensors and plain Python values, so it loads with
`torch.load(weights_only=True)`, which cannot run code from a file someone sent you. It is written
to a temporary file in the same folder and renamed, so a crash mid-write leaves the previous file.
"""

from __future__ import annotations

import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import torch

from seqrec_cli.errors import UserError


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            torch.save(payload, fh)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    if not path.is_file():
        raise UserError(f"Checkpoint not found: {path}.")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        lines = str(exc).splitlines()
        reason = next((line.strip() for line in lines if "Unsupported" in line), lines[0] if lines else "")
        raise UserError(
            f"Refusing to load {path}: it holds more than tensors and plain values ({reason.rstrip('.')})."
        ) from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise UserError(f"Checkpoint {path} is truncated or corrupt ({str(exc).splitlines()[0]}).") from None
