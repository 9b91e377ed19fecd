"""The HTTP API of `seqrec-serve` (FastAPI): recommend, batch, health, metadata, reload.

Request bodies are read with a size limit and validated by `requests.parse_query`; every mistake
is a 4xx JSON `{"error": "..."}` naming it. Recommendations go through the micro-batcher, so
concurrent requests share forward passes. `POST /admin/reload` (or SIGHUP) opens a bundle, checks
it and only then swaps the one reference that new requests read: requests already queued finish
on the bundle they were validated against, and none is dropped.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import logging
import signal
from typing import Any, AsyncIterator, Optional, Sequence

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import Response

from seqrec_cli.errors import UserError
from seqrec_cli.serving.batcher import MicroBatcher
from seqrec_cli.serving.config import ServeAppConfig
from seqrec_cli.serving.engine import Bundle, open_bundle
from seqrec_cli.serving.explain import bundle_score_fn, explain
from seqrec_cli.serving.queries import Query, pack
from seqrec_cli.serving.requests import BadRequest, Defaults, parse_json, parse_query

log = logging.getLogger(__name__)


class ServerState:
    """The bundle now served (one reference, swapped whole by a reload) and the batcher."""

    def __init__(self, bundle: Bundle, settings: ServeAppConfig) -> None:
        self.bundle = bundle
        self.settings = settings
        self.defaults = Defaults(on_unknown=settings.on_unknown)
        self.batcher = MicroBatcher(self._run_batch, settings.max_batch, settings.max_wait_ms / 1000)
        self._reload_lock: Optional[asyncio.Lock] = None
        self.reloads = 0

    def _run_batch(self, bundle: Bundle, queries: Sequence[Query]) -> list[Any]:
        rows, scores = bundle.run(pack(queries, bundle))
        return [
            answer(bundle, q, rows[i, : q.k], scores[i, : q.k], self.settings.explain_top)
            for i, q in enumerate(queries)
        ]

    async def reload(self, path: Optional[str]) -> dict[str, Any]:
        """Open and check `path` (default: the bundle now served, read again), then swap it in."""
        if self._reload_lock is None:
            self._reload_lock = asyncio.Lock()
        async with self._reload_lock:
            target = path or str(self.bundle.path)
            loop = asyncio.get_running_loop()
            try:
                new = await loop.run_in_executor(None, open_bundle, target, self.settings.threads)
            except UserError as exc:
                raise BadRequest(422, f"Reload refused, still serving {self.bundle.path}: {exc}") from None
            old, self.bundle = self.bundle, new
            self.reloads += 1
            gc.freeze()  # the new bundle's objects too (see settle_heap); the old one is freed by refcount
            log.info("Reloaded: now serving %s (%s; was %s)", new.path, new.digest, old.digest)
            return {"bundle": str(new.path), "digest": new.digest, "previous": old.digest}


def settle_heap() -> None:
    """Collect once, then move every object alive now (the bundle's id maps, the libraries) out of
    the cyclic garbage collector's reach: a full collection walks all of them, and under load one
    such walk stalled every request in flight for a few hundred ms (the p99 of the load test)."""
    gc.collect()
    gc.freeze()


def answer(bundle: Bundle, q: Query, rows: np.ndarray, scores: np.ndarray, explain_top: int) -> dict[str, Any]:
    keep = rows > 0
    rows, scores = rows[keep], scores[keep]
    items = [_item(bundle, int(r), {"score": round(float(s), 6)}) for r, s in zip(rows, scores)]
    if q.explain and len(rows):
        window = q.window(bundle.max_len)
        gaps = q.gaps[-bundle.max_len :] if q.gaps is not None else None
        reasons = explain(bundle_score_fn(bundle), window, gaps, q.user_row, rows, explain_top)
        for item, why in zip(items, reasons):
            item["because"] = [_item(bundle, r.item_row, {"contribution": round(r.contribution, 6)}) for r in why]
    out: dict[str, Any] = {}
    if q.label is not None:
        out["user"] = q.label
    out["items"] = items
    out["history_used"] = int(min(len(q.history), bundle.max_len))
    if q.unknown:
        out["skipped_unknown"] = q.unknown
    return out


def _item(bundle: Bundle, row: int, extra: dict[str, Any]) -> dict[str, Any]:
    item: dict[str, Any] = {"item": bundle.item_ids[row]}
    if bundle.titles is not None:
        item["title"] = bundle.titles[row]
    item.update(extra)
    return item


def _json(data: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(data, ensure_ascii=False, separators=(",", ":")), status_code=status, media_type="application/json"
    )


async def read_body(request: Request, limit: int) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None and (not declared.isdigit() or int(declared) > limit):
        raise BadRequest(413, f"The body is larger than this server accepts ({limit} bytes).")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BadRequest(413, f"The body is larger than this server accepts ({limit} bytes).")
        chunks.append(chunk)
    return b"".join(chunks)


def create_app(bundle: Bundle, settings: ServeAppConfig, sighup: bool = True) -> FastAPI:
    state = ServerState(bundle, settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.batcher.start()
        settle_heap()
        loop = asyncio.get_running_loop()
        if sighup:
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(_reload_quietly(state)))
        yield
        if sighup:
            loop.remove_signal_handler(signal.SIGHUP)
        await state.batcher.stop()

    app = FastAPI(title="seqrec-serve", lifespan=lifespan, docs_url=None, redoc_url=None, openapi_url=None)
    app.state.serving = state

    @app.exception_handler(BadRequest)
    async def bad_request(request: Request, exc: BadRequest) -> Response:
        return _json({"error": exc.message}, exc.status)

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("Unexpected error on %s", request.url.path)
        return _json({"error": f"Internal error ({type(exc).__name__}); the server goes on serving."}, 500)

    _routes(app, state)
    return app


def _routes(app: FastAPI, state: ServerState) -> None:
    @app.get("/health")
    async def health() -> Response:
        b = state.bundle
        return _json(
            {
                "status": "ok",
                "bundle": b.digest,
                "items": b.n_items,
                "passes": state.batcher.passes,
                "requests": state.batcher.requests,
                "reloads": state.reloads,
            }
        )

    @app.get("/metadata")
    async def metadata() -> Response:
        return _json({**state.bundle.meta, "path": str(state.bundle.path), "digest": state.bundle.digest})

    @app.post("/recommend")
    async def recommend(request: Request) -> Response:
        body = parse_json(await read_body(request, state.settings.max_body_bytes))
        bundle = state.bundle
        query = parse_query(body, bundle, state.defaults)
        return _json(await state.batcher.submit(bundle, query))

    @app.post("/recommend/batch")
    async def recommend_batch(request: Request) -> Response:
        body = parse_json(await read_body(request, state.settings.max_body_bytes))
        if not isinstance(body, dict) or set(body) != {"requests"} or not isinstance(body["requests"], list):
            raise BadRequest(422, 'The body must be {"requests": [request, ...]}.')
        items = body["requests"]
        if not 1 <= len(items) <= state.settings.max_batch_requests:
            raise BadRequest(
                422, f"requests holds {len(items)} requests; send 1 to {state.settings.max_batch_requests}."
            )
        bundle = state.bundle
        queries = [parse_query(q, bundle, state.defaults, f"requests[{i}].") for i, q in enumerate(items)]
        results = await asyncio.gather(*(state.batcher.submit(bundle, q) for q in queries))
        return _json({"results": list(results)})

    @app.post("/admin/reload")
    async def reload(request: Request) -> Response:
        raw = await read_body(request, state.settings.max_body_bytes)
        body = parse_json(raw) if raw.strip() else {}
        if not isinstance(body, dict) or set(body) - {"bundle"} or not isinstance(body.get("bundle", ""), str):
            raise BadRequest(422, 'The body must be empty (reload the bundle now served) or {"bundle": "DIR"}.')
        return _json(await state.reload(body.get("bundle") or None))


async def _reload_quietly(state: ServerState) -> None:
    try:
        await state.reload(None)
    except BadRequest as exc:
        log.error("%s", exc.message)
