"""Shared by the serving tests: small trained runs and their bundles, each made once per session.

Each run is a real `seqrec-train debug=smoke` process, cached here by name, so every test module
that needs the attention run reuses the same one.
"""

from __future__ import annotations

from pathlib import Path
from typing import Optional, Sequence

import numpy as np

import pytest

from conftest import run_cli

# Every encoder and both optional inputs. DEFAULT_RUNS are trained for the default suite; the
# others only when a slow test asks for them.
RUNS: dict[str, list[str]] = {
    "attention": ["encoder=attention"],
    "gru": ["encoder=gru"],
    "ligr_gap_user": [
        "encoder=attention",
        "encoder.block=ligr",
        "encoder.time_features=gap",
        "model.user_embedding=true",
    ],
    "lstm_user": ["encoder=lstm", "model.user_embedding=true"],
    "gru_attention_gap": ["encoder=gru_attention", "encoder.time_features=gap"],
}
DEFAULT_RUNS = ("attention", "gru")

_runs: dict[str, Path] = {}
_bundles: dict[tuple[str, str], Path] = {}


def _root(factory: pytest.TempPathFactory) -> Path:
    root = factory.getbasetemp() / "serving"
    root.mkdir(exist_ok=True)
    return root


def trained_runs(factory: pytest.TempPathFactory, names: tuple[str, ...]) -> dict[str, Path]:
    """Run directories of `names` (keys of RUNS), the missing ones trained now."""
    root = _root(factory)
    for name in names:
        if name in _runs:
            continue
        out = root / "runs" / name
        result = run_cli(["debug=smoke", f"hydra.run.dir={out}", "trainer.num_threads=1", *RUNS[name]], root)
        assert result.returncode == 0, result.stderr[-3000:]
        _runs[name] = out
    return {name: _runs[name] for name in names}


def bundle(factory: pytest.TempPathFactory, name: str, fmt: str = "onnx", k_max: Optional[int] = None) -> Path:
    """The bundle of run `name`, exported in this process (once per name and format)."""
    from seqrec_cli.serving.bundle import export_bundle

    key = (name, fmt)
    if key not in _bundles:
        run = trained_runs(factory, (name,))[name]
        out = _root(factory) / "bundles" / f"{name}-{fmt}"
        export_bundle(run, out, fmt, k_max or 100)
        _bundles[key] = out
    return _bundles[key]


def assert_same_top(
    eager_items: Sequence, eager_scores: Sequence, items: Sequence, scores: Sequence, tol: float = 1e-5
) -> None:
    """Two top-k lists agree: scores within `tol` position by position, and the same items in the
    same order wherever neighbouring scores differ by more than `tol` (near-ties may swap; a tie
    group cut by the end of the list may hold other members)."""
    eager_scores, scores = np.asarray(eager_scores, np.float64), np.asarray(scores, np.float64)
    assert len(eager_items) == len(items)
    np.testing.assert_allclose(scores, eager_scores, atol=tol, rtol=0)
    start = 0
    for i in range(1, len(eager_items) + 1):
        if i == len(eager_items) or eager_scores[i - 1] - eager_scores[i] > tol:
            if i < len(eager_items):  # a complete group: same members (order only within ties)
                assert set(map(str, eager_items[start:i])) == set(map(str, items[start:i])), (eager_items, items)
            start = i
