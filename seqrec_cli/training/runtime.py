"""Where and how computation runs: device choice, seeding, CPU threads, torch.distributed."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch
import torch.distributed as dist

from seqrec_cli.errors import UserError


def select_device(name: str, key: str = "trainer.device") -> torch.device:
    """`auto` prefers CUDA, then Apple's MPS, then the CPU; an explicit choice must exist.

    `key` is the setting's name in the command that asked (`device` for seqrec-eval / -recommend).
    """
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UserError(f"{key}={name} was asked for, but PyTorch sees no CUDA GPU: use {key}=auto or cpu.")
        index = int(name.split(":")[1]) if ":" in name else 0
        if index >= torch.cuda.device_count():
            raise UserError(
                f"{key}={name} does not exist: this machine has {torch.cuda.device_count()} CUDA device(s)."
            )
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise UserError(f"{key}=mps was asked for, but MPS is not available here: use {key}=auto or cpu.")
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


@dataclass(frozen=True)
class Distributed:
    """This process's place in a torchrun job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_distributed(enabled: bool, device_name: str) -> Distributed:
    """Join the process group torchrun set up: NCCL on CUDA, Gloo on the CPU."""
    if not enabled:
        return Distributed()
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ:
        raise UserError(
            "trainer.distributed=true needs the environment torchrun creates: start it with "
            "torchrun --nproc_per_node=N -m seqrec_cli.api trainer.distributed=true ..."
        )
    info = Distributed(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    use_cuda = torch.cuda.is_available() and device_name not in ("cpu", "mps")
    if use_cuda:
        torch.cuda.set_device(info.local_rank)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if use_cuda else "gloo")
    return info


def distributed_device(info: Distributed, device_name: str) -> torch.device:
    """Under torchrun each process drives the GPU of its local rank (or the CPU)."""
    if info.enabled and torch.cuda.is_available() and device_name not in ("cpu", "mps"):
        return torch.device("cuda", info.local_rank)
    return select_device(device_name)


def gather_strided(values: np.ndarray, info: Distributed) -> np.ndarray:
    """Reassemble per-rank shards taken as `rows[rank::world_size]` into the original order."""
    if not info.enabled:
        return values
    parts: list[Optional[np.ndarray]] = [None] * info.world_size
    dist.all_gather_object(parts, values)
    full = np.empty(sum(len(p) for p in parts), dtype=values.dtype)
    for rank, part in enumerate(parts):
        full[rank :: info.world_size] = part
    return full


def all_reduce_sum(value: torch.Tensor, info: Distributed) -> torch.Tensor:
    if info.enabled:
        value = value.clone()
        dist.all_reduce(value)
    return value


def shutdown_distributed(info: Distributed) -> None:
    if info.enabled and dist.is_initialized():
        dist.destroy_process_group()


def any_rank(flag: bool, info: Distributed, device: torch.device) -> bool:
    """True when `flag` is set on any process. Under torch.distributed all processes must stop at
    the same step, or the next gradient all-reduce waits forever; so a stop request is reduced."""
    if not info.enabled:
        return flag
    value = torch.tensor(1.0 if flag else 0.0, device=device)
    return bool(all_reduce_sum(value, info).item() > 0)
