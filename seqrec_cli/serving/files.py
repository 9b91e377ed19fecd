"""A bundle's file names, format version and checksums (the layout is in `bundle`'s docstring).

Shared by the writer (`bundle`, which needs torch) and the reader (`engine`), so a process that
serves an ONNX bundle imports numpy and onnxruntime but never torch (about 250 MB less resident
memory, and a much smaller heap for the garbage collector to walk).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

FORMAT_VERSION = 1
MODEL_FILES = {"onnx": "model.onnx", "pt2": "model.pt2"}
ITEMS_FILE, HISTORIES_FILE, METADATA_FILE = "items.json", "histories.npz", "metadata.json"


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
