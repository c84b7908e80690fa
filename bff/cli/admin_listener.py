"""Runs the admin app (`bff.web.admin_app`) on `BFF_ADMIN_LISTEN`, once per `bff serve`.

It runs on a thread of the process that `bff serve` started: with `--workers 1` that
process also serves requests, with more it is uvicorn's supervisor, which only watches
the workers. Either way there is exactly one admin socket, whatever the worker count,
so several workers never compete for (or split) it, and the metrics it serves are the
merge of every worker's (`PROMETHEUS_MULTIPROC_DIR`, set by `bff serve`).
"""

from __future__ import annotations

import logging
import threading

import uvicorn

from bff.config.model import Settings
from bff.web.admin_app import create_admin_app
from bff.web.lifecycle import Lifecycle
from bff.web.listener import bounded_http_protocol

__all__ = ["AdminListener"]

_log = logging.getLogger("bff.admin")
_STARTUP_WAIT = 10.0  # seconds `start` waits for the socket to be bound


class AdminListener:
    def __init__(
        self,
        settings: Settings,
        *,
        metrics_dir: str | None,
        lifecycle: Lifecycle | None = None,
    ) -> None:
        address = settings.admin_address
        if address is None:
            raise ValueError("BFF_ADMIN_LISTEN is empty: no admin listener to run")
        host, port = address
        app = create_admin_app(settings, metrics_dir=metrics_dir, lifecycle=lifecycle)
        self._server = uvicorn.Server(
            uvicorn.Config(
                app,
                host=host,
                port=port,
                loop="asyncio",
                # The same header-size and header-read-time bounds as the main listener.
                http=bounded_http_protocol(settings),
                lifespan="on",
                access_log=False,
                server_header=False,
                log_config=None,
                timeout_graceful_shutdown=5,
            )
        )
        self._thread = threading.Thread(target=self._server.run, name="bff-admin", daemon=True)
        self.address = address

    def start(self) -> None:
        """Serve in the background; raise RuntimeError if the socket cannot be bound."""
        self._thread.start()
        deadline = threading.Event()
        for _ in range(int(_STARTUP_WAIT / 0.05)):
            if self._server.started or not self._thread.is_alive():
                break
            deadline.wait(0.05)
        if not self._server.started:
            self.stop()
            raise RuntimeError(
                f"admin listener could not start on {self.address[0]}:{self.address[1]}"
            )
        _log.info("admin listener on %s:%s", *self.address)

    def stop(self) -> None:
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(timeout=10)
