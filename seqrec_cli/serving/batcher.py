"""Micro-batching: concurrent requests answered by one forward pass.

Requests queue up while a pass runs; the worker then takes everything queued (at most
`max_batch`), lets the event loop read whatever requests have already arrived, and waits for more
only while new ones keep coming and at most `max_wait` seconds in all. A lone request therefore
never waits, and under load a pass carries every request that arrived during the previous one.
Forward passes run one at a time on a worker thread, so the event loop keeps accepting requests.

Each queued request carries the bundle it was validated against: a pass only mixes requests of
the same bundle, so a reload never feeds item rows of one bundle to another bundle's graph.
"""

from __future__ import annotations

import asyncio
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Callable, Optional, Sequence

log = logging.getLogger(__name__)

# run_batch(bundle, payloads) -> one result per payload (an exception object for a failed one)
RunBatch = Callable[[Any, Sequence[Any]], list[Any]]


@dataclass
class _Pending:
    bundle: Any
    payload: Any
    future: asyncio.Future


class MicroBatcher:
    def __init__(self, run_batch: RunBatch, max_batch: int, max_wait_s: float) -> None:
        self._run_batch = run_batch
        self.max_batch = max_batch
        self.max_wait_s = max_wait_s
        self._queue: Optional[asyncio.Queue] = None
        self._task: Optional[asyncio.Task] = None
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="seqrec-forward")
        self.passes = 0
        self.requests = 0

    def start(self) -> None:
        self._queue = asyncio.Queue()
        self._task = asyncio.get_running_loop().create_task(self._work())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        self._pool.shutdown(wait=True)

    async def submit(self, bundle: Any, payload: Any) -> Any:
        """The result for `payload`, computed in some forward pass with `bundle`."""
        assert self._queue is not None, "MicroBatcher.start() was not called"
        future = asyncio.get_running_loop().create_future()
        self._queue.put_nowait(_Pending(bundle, payload, future))
        result = await future
        if isinstance(result, BaseException):
            raise result
        return result

    async def _collect(self) -> list[_Pending]:
        queue = self._queue
        batch = [await queue.get()]
        deadline = time.perf_counter() + self.max_wait_s
        while len(batch) < self.max_batch:
            while len(batch) < self.max_batch and not queue.empty():
                batch.append(queue.get_nowait())
            if len(batch) >= self.max_batch or time.perf_counter() >= deadline:
                break
            before = len(batch)
            await asyncio.sleep(0)  # let already-received requests reach the queue
            if queue.empty() and len(batch) == before:
                break
        return batch

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        carry: list[_Pending] = []
        while True:
            batch = carry or await self._collect()
            same = [p for p in batch if p.bundle is batch[0].bundle]
            carry = [p for p in batch if p.bundle is not batch[0].bundle]
            try:
                results = await loop.run_in_executor(
                    self._pool, self._run_batch, same[0].bundle, [p.payload for p in same]
                )
            except Exception as exc:  # a bug in a pass must fail its requests, not the worker
                log.exception("A forward pass failed")
                results = [exc] * len(same)
            self.passes += 1
            self.requests += len(same)
            for pending, result in zip(same, results):
                if not pending.future.done():
                    pending.future.set_result(result)
