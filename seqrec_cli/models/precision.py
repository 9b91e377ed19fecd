"""When a model runs under autocast: one rule for training, evaluation and recommendation."""

from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext

import torch


def autocast(device: torch.device, enabled: bool, dtype: torch.dtype = torch.bfloat16) -> AbstractContextManager:
    """Autocast to `dtype` on CUDA when `enabled` (`trainer.amp`); anywhere else a no-op, so a CPU
    run computes in float32 whatever the setting. Callers turn scores back to float32 themselves."""
    if enabled and device.type == "cuda":
        return torch.autocast(device.type, dtype=dtype)
    return nullcontext()
