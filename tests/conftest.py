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
