"""Open a bundle for serving: check every file, then load the graph (onnxruntime or torch.export).

`open_bundle` refuses a bundle whose files do not match the SHA-256 digests in its metadata.json
(a tampered or half-copied bundle), and never unpickles anything.
"""

from __future__ import annotations

import json
import logging
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np

from seqrec_cli.errors import UserError
from seqrec_cli.serving.files import FORMAT_VERSION, HISTORIES_FILE, ITEMS_FILE, METADATA_FILE, sha256

log = logging.getLogger(__name__)


@dataclass
class Histories:
    """Each known user's full history, in model rows (bundle file histories.npz)."""

    index: dict[str, int]  # original user id (as text) -> position
    offsets: np.ndarray
    items: np.ndarray
    gaps: Optional[np.ndarray]
    user_rows: Optional[np.ndarray]

    def of(self, position: int) -> tuple[np.ndarray, Optional[np.ndarray], int]:
        span = slice(self.offsets[position], self.offsets[position + 1])
        gaps = self.gaps[span].astype(np.int64) if self.gaps is not None else None
        row = int(self.user_rows[position]) if self.user_rows is not None else 0
        return self.items[span].astype(np.int64), gaps, row


@dataclass
class Bundle:
    path: Path
    meta: dict[str, Any]
    item_ids: list[Any]  # row -> original id; row 0 is None (padding)
    titles: Optional[list[Optional[str]]]
    item_index: dict[str, int]  # original id (as text) -> row
    histories: Optional[Histories]
    session: Any = field(repr=False)  # `Session`

    @property
    def max_len(self) -> int:
        return int(self.meta["max_len"])

    @property
    def k_max(self) -> int:
        return int(self.meta["k_range"][1])

    @property
    def n_items(self) -> int:
        return int(self.meta["n_items"])

    @property
    def digest(self) -> str:
        """Short id of this bundle: the model file's SHA-256 prefix."""
        return self.meta["files"][self.meta["model_file"]][:12]

    def run(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """One forward pass of the graph: (rows [b, K] int64, scores [b, K] float32)."""
        return self.session.run(inputs)


def verify(path: Path) -> dict[str, Any]:
    """metadata.json of a bundle whose every listed file matches its digest; else a UserError."""
    meta_file = path / METADATA_FILE
    if not meta_file.is_file():
        raise UserError(f"{path} is not a bundle (no {METADATA_FILE}): make one with seqrec-export.")
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        files = meta["files"]
        model_file = meta["model_file"]
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError) as exc:
        raise UserError(f"{meta_file} is unreadable or incomplete ({exc}).") from None
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path} is bundle format {meta.get('format_version')}; this version reads {FORMAT_VERSION}.")
    if model_file not in files or ITEMS_FILE not in files:
        raise UserError(f"{meta_file} lists no checksum for {model_file} or {ITEMS_FILE}.")
    for name, digest in files.items():
        file = path / name
        if Path(name).name != name or not file.is_file():
            raise UserError(f"Bundle file {file} is missing: the bundle is incomplete.")
        if sha256(file) != digest:
            raise UserError(
                f"Bundle file {file} does not match its SHA-256 in {METADATA_FILE}: refusing a "
                "modified or damaged bundle."
            )
    return meta


def open_bundle(path: str | Path, threads: int = 1) -> Bundle:
    """Verify and load a bundle (`threads`: intra-op threads of one forward pass)."""
    root = Path(path).expanduser()
    if not root.is_dir():
        raise UserError(f"Bundle directory not found: {root}.")
    meta = verify(root)
    items = json.loads((root / ITEMS_FILE).read_text(encoding="utf-8"))
    ids = items["ids"]
    index = {str(v): row for row, v in enumerate(ids) if row > 0}
    histories = _load_histories(root / HISTORIES_FILE) if HISTORIES_FILE in meta["files"] else None
    model = root / meta["model_file"]
    session = OnnxSession(model, threads) if meta["format"] == "onnx" else ExportedSession(model, threads)
    return Bundle(root, meta, ids, items.get("titles"), index, histories, session)


def _load_histories(path: Path) -> Histories:
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    index = {str(v): i for i, v in enumerate(arrays["user_ids"].tolist())}
    return Histories(index, arrays["offsets"], arrays["items"], arrays.get("gaps"), arrays.get("user_rows"))


class OnnxSession:
    """onnxruntime on the CPU, one pass at a time (the batcher serialises them)."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self._inputs = [i.name for i in self._session.get_inputs()]

    def run(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        rows, scores = self._session.run(None, {name: inputs[name] for name in self._inputs})
        return rows, scores


class ExportedSession:
    """A `torch.export` program, run eagerly; refused when its archive holds pickled payloads."""

    def __init__(self, path: Path, threads: int) -> None:
        import torch

        _refuse_pickles(path)
        self._torch = torch
        self._threads = threads
        self._module = torch.export.load(str(path)).module()

    def run(self, inputs: dict[str, np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        torch = self._torch
        if torch.get_num_threads() != self._threads:
            torch.set_num_threads(self._threads)
        with torch.no_grad():
            rows, scores = self._module(**{k: torch.from_numpy(np.ascontiguousarray(v)) for k, v in inputs.items()})
        return rows.numpy(), scores.numpy()


def _refuse_pickles(path: Path) -> None:
    """torch.export.load unpickles weights or constants flagged `use_pickle` and custom objects:
    read the archive's payload configs first and refuse any such entry."""
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if name.endswith(".json") and ("/weights/" in name or "/constants/" in name):
                    config = json.loads(archive.read(name))
                    for entry in (config.get("config") or {}).values():
                        if entry.get("use_pickle") or not str(entry.get("path_name", "")).startswith(
                            ("weight", "tensor")
                        ):
                            raise UserError(f"{path} holds a pickled payload ({name}): refusing to load it.")
    except (zipfile.BadZipFile, json.JSONDecodeError, AttributeError) as exc:
        raise UserError(f"{path} is not a readable torch.export archive ({exc}).") from None
