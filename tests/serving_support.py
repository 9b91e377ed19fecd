"""Shared by the serving tests: small trained runs and their bundles, each made once per session.

Each run is a real `seqrec-train debug=smoke` process, cached here by name, so every test module
that needs the attention run reuses the same one.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Optional, Sequence

import pytest

from conftest import REPO, run_cli

sys.path.insert(0, str(REPO / "scripts"))
from serve_parity import disagreement  # noqa: E402

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
    "bert4rec": ["encoder=attention", "objective=masked"],
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
    """Two top-k lists agree (scripts/serve_parity.py: scores within `tol`, same order beyond near-ties)."""
    why = disagreement(eager_items, eager_scores, items, scores, tol)
    assert why is None, (why, list(eager_items), list(items))
