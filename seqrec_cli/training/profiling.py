"""Optional profile of a few training steps (`trainer.profile_steps`): where a step's time goes.

On a GPU the question is whether the device or the Python host is the bottleneck. The share of a
step's wall time the device spends running kernels answers it: near 1, the GPU is the limit;
well below 1, the host falls behind and the GPU waits for work. Warm-up steps are skipped (the
allocator, kernel autotuning and `torch.compile` settle there) and the device is synchronised only
at the window's two ends, so the profiled steps run as unprofiled ones do, apart from the
profiler's own overhead. On a CPU the table still shows which operators cost the most.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch.profiler import ProfilerActivity, profile

WARMUP_STEPS = 5


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


@dataclass
class StepProfile:
    """The summary that goes into metrics.json (`profile`) and the operator table (profile.txt)."""

    summary: dict[str, Any]
    table: str


class StepProfiler:
    """Call `step()` after every optimizer step and `close()` when the epoch ends; `result` then
    holds the profile of steps WARMUP_STEPS + 1 .. WARMUP_STEPS + steps (fewer if the epoch was
    shorter), or None when the epoch ended before the window opened."""

    def __init__(self, steps: int, device: torch.device) -> None:
        self.steps, self.device = steps, device
        self.seen = 0
        self.started = 0.0
        self.prof: Optional[profile] = None
        self.result: Optional[StepProfile] = None

    def step(self) -> None:
        if self.result is not None:
            return
        self.seen += 1
        if self.seen == WARMUP_STEPS:
            _sync(self.device)
            cuda = [ProfilerActivity.CUDA] if self.device.type == "cuda" else []
            self.prof = profile(activities=[ProfilerActivity.CPU, *cuda])
            self.prof.start()
            self.started = time.perf_counter()
        elif self.seen == WARMUP_STEPS + self.steps:
            self.close()

    def close(self) -> None:
        """End the window (if open) and summarise it."""
        if self.prof is None or self.result is not None:
            return
        _sync(self.device)
        wall = time.perf_counter() - self.started
        self.prof.stop()
        steps = self.seen - WARMUP_STEPS
        events = self.prof.key_averages()
        device_us = sum(getattr(e, "self_device_time_total", 0.0) for e in events)
        host_us = sum(e.self_cpu_time_total for e in events)
        on_gpu = self.device.type == "cuda"
        summary = {
            "steps": steps,
            "warmup_steps": WARMUP_STEPS,
            "device": str(self.device),
            "wall_ms_per_step": round(1000 * wall / max(steps, 1), 3),
            # Time inside operators on the host: on a GPU mostly launching kernels.
            "host_op_ms_per_step": round(host_us / 1000 / max(steps, 1), 3),
            "device_kernel_ms_per_step": round(device_us / 1000 / max(steps, 1), 3) if on_gpu else None,
            "device_share": round(device_us / 1e6 / wall, 3) if on_gpu and wall > 0 else None,
        }
        sort = "self_device_time_total" if on_gpu else "self_cpu_time_total"
        self.result = StepProfile(summary, events.table(sort_by=sort, row_limit=30))
        self.prof = None
