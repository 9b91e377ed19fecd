"""Micro-batching: concurrent requests share forward passes (at most max_batch each), a pass never
mixes two bundles, and a failing pass fails only its own requests."""

from __future__ import annotations

import asyncio
import time

import pytest

from seqrec_cli.serving.batcher import MicroBatcher


def serve_all(run_batch, submissions: list[tuple[str, int]], max_batch: int = 4) -> list:
    """Submit every (bundle, payload) at once; their results (or exceptions) in the same order."""

    async def main() -> list:
        batcher = MicroBatcher(run_batch, max_batch=max_batch, max_wait_s=0.002)
        batcher.start()
        try:
            tasks = [batcher.submit(b, p) for b, p in submissions]
            return await asyncio.gather(*tasks, return_exceptions=True)
        finally:
            await batcher.stop()

    return asyncio.run(main())


def test_concurrent_requests_share_passes_of_at_most_max_batch():
    passes: list[list[int]] = []

    def run_batch(bundle, payloads):
        passes.append(list(payloads))
        time.sleep(0.02)  # a forward pass: requests queue up meanwhile
        return [p * 10 for p in payloads]

    results = serve_all(run_batch, [("a", i) for i in range(10)])
    assert results == [i * 10 for i in range(10)]
    assert sorted(p for batch in passes for p in batch) == list(range(10))
    assert max(len(batch) for batch in passes) <= 4 and len(passes) == 3  # 4 + 4 + 2, not 10 passes


def test_a_pass_never_mixes_bundles():
    passes: list[tuple[str, list[int]]] = []

    def run_batch(bundle, payloads):
        passes.append((bundle, list(payloads)))
        return [f"{bundle}{p}" for p in payloads]

    submissions = [("old", 0), ("new", 1), ("old", 2), ("new", 3)]
    assert serve_all(run_batch, submissions) == ["old0", "new1", "old2", "new3"]
    owner = {p: b for b, p in submissions}
    assert all(owner[p] == bundle for bundle, ps in passes for p in ps)  # each payload ran on its own bundle
    assert sorted(p for _, ps in passes for p in ps) == [0, 1, 2, 3]


def test_a_failing_pass_fails_its_requests_and_the_next_pass_runs():
    def run_batch(bundle, payloads):
        if bundle == "broken":
            raise RuntimeError("boom")
        return [ValueError("bad one") if p == 1 else p for p in payloads]

    results = serve_all(run_batch, [("broken", 0), ("ok", 1), ("ok", 2)])
    assert isinstance(results[0], RuntimeError) and isinstance(results[1], ValueError) and results[2] == 2


@pytest.mark.parametrize("max_batch", [1, 64])
def test_every_request_is_answered_whatever_the_batch_bound(max_batch):
    results = serve_all(lambda b, ps: [p + 1 for p in ps], [("a", i) for i in range(50)], max_batch)
    assert results == list(range(1, 51))
