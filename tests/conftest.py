"""Shared helpers: run the real CLI in a temporary directory, find the shared datasets."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def run_cli(
    args: list[str], cwd: Path, module: str = "seqrec_cli.cli.train", timeout: int = 300, env: dict | None = None
) -> subprocess.CompletedProcess:
    """`python -m seqrec_cli.cli.train ARGS` (seqrec-train) (or another `module`) in `cwd`, with a private data cache
    and download folder; `env` adds or replaces environment variables."""
    env = {
        **os.environ,
        "SEQREC_CACHE_DIR": str(cwd / ".cache"),
        "SEQREC_DATA_DIR": str(cwd / ".data"),
        "PYTHONUNBUFFERED": "1",
        **(env or {}),
    }
    env.pop("HYDRA_FULL_ERROR", None)
    return subprocess.run(
        [sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )


def single_run_dir(root: Path) -> Path:
    """The one run directory (the one holding .hydra/) under `root/outputs`."""
    dirs = sorted(p.parent for p in (root / "outputs").rglob(".hydra"))
    assert len(dirs) == 1, dirs
    return dirs[0]


@pytest.fixture
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip("../shared/data is not available")
    return SHARED_DATA


PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_valid_png(path: Path) -> None:
    """A real, non-empty image: PNG signature, a size, and (with matplotlib) decodable pixels."""
    data = path.read_bytes()
    assert data[:8] == PNG_SIGNATURE and len(data) > 1000, path
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 100 and height > 100
    image = pytest.importorskip("matplotlib.image").imread(path)
    assert image.shape[:2] == (height, width) and image.std() > 0  # not a blank canvas
