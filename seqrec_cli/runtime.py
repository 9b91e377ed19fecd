"""Where and how computation runs: device choice, seeding, CPU threads."""

from __future__ import annotations

import os
import random
from typing import Optional

import numpy as np
import torch

from seqrec_cli.errors import UserError


def select_device(name: str) -> torch.device:
    """`auto` prefers CUDA, then Apple's MPS, then the CPU; an explicit choice must exist."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"trainer.device={name} was asked for, but PyTorch sees no CUDA GPU: use trainer.device=auto or cpu.")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise UserError(f"trainer.device={name} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s).")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError("trainer.device=mps was asked for, but MPS is not available here: use trainer.device=auto or cpu.")
    return torch.device(name)


def seed_everything(seed: int) -> None:
    """Seed Python, NumPy and PyTorch (all devices) from one number; 0 is a seed like any other."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def set_deterministic(enabled: bool) -> None:
    """Ask PyTorch for deterministic kernels; cuBLAS also needs a fixed workspace for that."""
    if enabled:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    torch.use_deterministic_algorithms(enabled)
    torch.backends.cudnn.benchmark = False


def set_threads(num_threads: Optional[int]) -> None:
    if num_threads:
        torch.set_num_threads(num_threads)
