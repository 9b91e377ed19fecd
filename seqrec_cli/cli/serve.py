"""`seqrec-serve`: a bundle (`bundle=DIR`) or a finished run (`run=DIR`, exported to a temporary
bundle first) behind the HTTP API of `seqrec_cli.serving.app`, on 127.0.0.1 unless told otherwise.

The bundle's checksums are verified before anything is served; a tampered or incomplete bundle is
one sentence and exit 2. SIGHUP (or POST /admin/reload) reloads a bundle without dropping requests.
"""

from __future__ import annotations

import contextlib
import logging
import shutil
import socket
import sys
import tempfile
from pathlib import Path
from typing import Iterator

import hydra
from omegaconf import DictConfig

from seqrec_cli.config.convert import to_typed
from seqrec_cli.config.registry import CONFIG_PATH
from seqrec_cli.cli.exits import check_composition, user_errors_exit
from seqrec_cli.errors import UserError
from seqrec_cli.serving.config import ServeAppConfig, register_serving_schemas, validate_serve

log = logging.getLogger("seqrec_cli")

register_serving_schemas()


def serve(cfg: ServeAppConfig) -> None:
    validate_serve(cfg)
    try:
        import uvicorn

        from seqrec_cli.serving.app import create_app
    except ImportError as exc:
        raise UserError(
            f"seqrec-serve needs the serve extra ({exc.name} is missing): pip install 'seqrec-cli[serve]'."
        ) from None
    from seqrec_cli.serving.engine import open_bundle

    scratch = None
    try:
        path = cfg.bundle
        if cfg.run:
            from seqrec_cli.serving.bundle import export_bundle  # torch: only to export (bundle= never loads it)

            scratch = Path(tempfile.mkdtemp(prefix="seqrec-serve-"))
            path = str(export_bundle(cfg.run, scratch / "bundle"))
        bundle = open_bundle(path, cfg.threads)
        sock = _bind(cfg.host, cfg.port)
        host, port = sock.getsockname()[:2]
        log.info(
            "Serving %s (%s, %d items, top-%d) on http://%s:%d",
            bundle.path,
            bundle.digest,
            bundle.n_items,
            bundle.k_max,
            host,
            port,
        )
        config = uvicorn.Config(
            create_app(bundle, cfg), log_level=cfg.log_level, access_log=False, timeout_graceful_shutdown=5
        )
        _server_class(uvicorn)(config).run(sockets=[sock])
    finally:
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)


def _server_class(uvicorn) -> type:
    """uvicorn's Server, less its re-raising of SIGTERM / SIGINT after a graceful shutdown: that
    would end this process before it removes the temporary bundle of `run=`; it exits 0 instead."""

    class Server(uvicorn.Server):
        @contextlib.contextmanager
        def capture_signals(self) -> Iterator[None]:
            with super().capture_signals():
                yield
                getattr(self, "_captured_signals", []).clear()

    return Server


def _bind(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"Cannot listen on {host}:{port} ({exc.strerror}).") from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


@hydra.main(version_base="1.3", config_path=CONFIG_PATH, config_name="serve")
@user_errors_exit
def main(cfg: DictConfig) -> None:
    serve(to_typed(cfg, ServeAppConfig, "seqrec-serve", ("run", "bundle")))


def cli() -> None:
    """The console script: a composition error is one sentence and exit 2, then Hydra runs `main`."""
    check_composition("serve", sys.argv[1:], "seqrec-serve")
    main()


if __name__ == "__main__":
    cli()
