"""Typed configuration of `seqrec-export` and `seqrec-serve` (conf/export.yaml, conf/serve.yaml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from seqrec_cli.config.checks import require, require_choice
from seqrec_cli.errors import UserError


@dataclass
class ExportAppConfig:
    """`seqrec-export`: a finished run as a self-contained bundle."""

    run: Optional[str] = None
    format: str = "onnx"
    out: Optional[str] = None
    # The largest K a client may ask for (capped at the catalogue size).
    k_max: int = 100
    # Keep every user's history in the bundle, so `{"user": id}` requests work without the run's data.
    histories: bool = True
    overwrite: bool = False


@dataclass
class ServeAppConfig:
    """`seqrec-serve`: a bundle (or a run, exported on the fly) behind an HTTP API."""

    run: Optional[str] = None
    bundle: Optional[str] = None
    host: str = "127.0.0.1"
    # 0 = any free port (the one chosen is logged).
    port: int = 8000
    # Micro-batching: a forward pass takes at most this many queued requests, waiting at most max_wait_ms.
    max_batch: int = 64
    max_wait_ms: float = 2.0
    # Intra-op threads of one forward pass.
    threads: int = 1
    max_body_bytes: int = 1_048_576
    # Requests of /recommend/batch at most.
    max_batch_requests: int = 256
    # Default for requests that do not say: error | skip unknown item ids.
    on_unknown: str = "error"
    # History items given per recommended item by "explain": true.
    explain_top: int = 3
    log_level: str = "info"


def validate_export(cfg: ExportAppConfig) -> None:
    if not cfg.run:
        raise UserError("Name the run directory: seqrec-export run=outputs/<date>/<time> out=bundle/.")
    if not cfg.out:
        raise UserError("Name the bundle folder to write: seqrec-export run=... out=bundle/.")
    require_choice("format", cfg.format, ("onnx", "pt2"))
    require(cfg.k_max > 0, "k_max", cfg.k_max, "an integer > 0")


def validate_serve(cfg: ServeAppConfig) -> None:
    if bool(cfg.run) == bool(cfg.bundle):
        raise UserError(
            "Say what to serve: seqrec-serve bundle=DIR (from seqrec-export) or run=DIR (exported on the "
            "fly), one of the two."
        )
    require(0 <= cfg.port <= 65535, "port", cfg.port, "0 (any free port) or a TCP port")
    require(cfg.max_batch > 0, "max_batch", cfg.max_batch, "an integer > 0")
    require(0 <= cfg.max_wait_ms <= 1000, "max_wait_ms", cfg.max_wait_ms, "milliseconds in [0, 1000]")
    require(cfg.threads > 0, "threads", cfg.threads, "an integer > 0")
    require(cfg.max_body_bytes > 0, "max_body_bytes", cfg.max_body_bytes, "an integer > 0")
    require(cfg.max_batch_requests > 0, "max_batch_requests", cfg.max_batch_requests, "an integer > 0")
    require(cfg.explain_top > 0, "explain_top", cfg.explain_top, "an integer > 0")
    require_choice("on_unknown", cfg.on_unknown, ("error", "skip"))
    require_choice("log_level", cfg.log_level, ("debug", "info", "warning", "error"))


def register_serving_schemas() -> None:
    from hydra.core.config_store import ConfigStore  # only to register: the server imports these classes

    cs = ConfigStore.instance()
    cs.store(name="export_schema", node=ExportAppConfig)
    cs.store(name="serve_schema", node=ServeAppConfig)
