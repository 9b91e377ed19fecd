"""Every random-number state a run uses, as plain values a weights-only checkpoint can hold.

Restoring them all (Python, NumPy's global and batch-order generators, torch CPU and CUDA) is what
makes a resumed run repeat an uninterrupted one bit for bit.
"""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch


def rng_state(np_rng: np.random.Generator) -> dict[str, Any]:
    state = {
        "python": random.getstate(),
        "numpy_global": _plain_numpy_state(np.random.get_state(legacy=False)),
        "numpy_batches": np_rng.bit_generator.state,
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng(state: dict[str, Any], np_rng: np.random.Generator) -> None:
    random.setstate(_as_tuple(state["python"]))
    np.random.set_state(_numpy_state(state["numpy_global"]))
    np_rng.bit_generator.state = state["numpy_batches"]
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def _plain_numpy_state(state: dict[str, Any]) -> dict[str, Any]:
    """NumPy's legacy state holds an ndarray, which a weights-only checkpoint cannot carry."""
    return {**state, "state": {**state["state"], "key": state["state"]["key"].tolist()}}


def _numpy_state(state: dict[str, Any]) -> dict[str, Any]:
    return {**state, "state": {**state["state"], "key": np.asarray(state["state"]["key"], dtype=np.uint32)}}


def _as_tuple(value: Any) -> Any:
    return tuple(_as_tuple(v) for v in value) if isinstance(value, (list, tuple)) else value
