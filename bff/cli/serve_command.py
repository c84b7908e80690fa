"""`bff serve`: check the configuration, prepare the environment the worker processes
read (the config path, the command-line overrides, the metrics folder), start the admin
listener, and run uvicorn with bff's bounded listener until a signal ends it
(`bff.cli.serve`)."""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
from pathlib import Path

import uvicorn

from bff.cli.configuration import otlp_protocol, report_problems, settings_from, warn
from bff.cli.logging_setup import configure_logging
from bff.config.known import unknown_env_warnings
from bff.config.model import Settings
from bff.config.report import bind_warnings, cookie_warnings
from bff.errors import ConfigError
from bff.proxy.ws_relay import MAX_MESSAGE  # (no metrics import: see bff.cli.serve)
from bff.telemetry.tracing import check_tracing
from bff.web.listener import bounded_http_protocol

__all__ = ["fresh_metrics_dir", "serve"]

_FACTORY = "bff.cli.factory:app_from_environment"


def fresh_metrics_dir(path: str) -> None:
    """Create the multiprocess metrics folder, and empty it of an earlier process's files:
    a restarted container keeps its tmp volume, and prometheus_client would otherwise go
    on summing the dead process's counters and live gauges."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)


def _uvicorn_config(settings: Settings) -> uvicorn.Config:
    return uvicorn.Config(
        _FACTORY,
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        # httptools with a header-size and header-read-time bound (bff.web.listener).
        http=bounded_http_protocol(settings),
        # WebSocket routes (bff.proxy.websocket): websockets' sans-I/O protocol (it answers
        # refusals before the upgrade), the browser's messages bounded as the upstream's.
        ws="websockets-sansio",
        ws_max_size=MAX_MESSAGE,
        # uvicorn trusts X-Forwarded-* from 127.0.0.1 by default: off here. The app
        # applies uvicorn's ProxyHeadersMiddleware itself for BFF_TRUSTED_PROXIES only.
        proxy_headers=False,
        access_log=False,
        server_header=False,
        log_config=configure_logging(settings.log_format),
        # In-flight requests (streams too) get this long once the drain delay is over.
        timeout_graceful_shutdown=settings.shutdown_timeout,  # type: ignore[arg-type]
    )


def serve(args: argparse.Namespace) -> int:
    overrides = {
        k: v
        for k, v in (("host", args.host), ("port", args.port), ("workers", args.workers))
        if v is not None
    }
    warnings = unknown_env_warnings(os.environ)
    try:
        settings = settings_from(os.environ, args.config, overrides)
        check_tracing(settings.tracing, protocol=otlp_protocol())
    except ConfigError as exc:
        warn(warnings)  # a misspelt variable may be why a setting is missing
        return report_problems(exc)
    warnings += bind_warnings(settings) + cookie_warnings(settings)
    if args.config:
        os.environ["BFF_CONFIG"] = os.path.abspath(args.config)
    os.environ["BFF_CLI_OVERRIDES"] = json.dumps(overrides)
    if (settings.workers > 1 or settings.admin_address) and not os.environ.get(
        "PROMETHEUS_MULTIPROC_DIR"
    ):
        # Each worker counts in its own files; the admin listener's /metrics merges them
        # (prometheus_client). Set before anything imports prometheus_client.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="bff-metrics-")
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        fresh_metrics_dir(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    # Only now: prometheus_client picks its value class (in memory, or the files the admin
    # listener merges) when first imported, and bff.cli.serve imports it.
    from bff.cli.serve import PROCESS_LIFECYCLE, run

    config = _uvicorn_config(settings)
    admin = None  # started once logging is configured (uvicorn.Config does it)
    if settings.admin_address:
        from bff.cli.admin_listener import AdminListener

        admin = AdminListener(
            settings,
            metrics_dir=os.environ["PROMETHEUS_MULTIPROC_DIR"],
            lifecycle=PROCESS_LIFECYCLE,  # SIGTERM: its /readyz turns 503 too
        )
        try:
            admin.start()
        except RuntimeError as exc:
            print(f"bff: {exc}", file=sys.stderr)
            return 1
    # (uvicorn.Config has configured logging: these lines follow BFF_LOG_FORMAT too)
    for warning in warnings:
        logging.getLogger("bff.config").warning("%s", warning)
    logging.getLogger("bff.serve").info(
        "serving on http://%s:%s (%s worker(s)), public URL %s%s",
        settings.host,
        settings.port,
        settings.workers,
        ", ".join(f.public_url for f in settings.frontends),
        f", admin on {settings.admin_listen}" if admin else "",
    )
    try:
        return run(
            config,
            drain_delay=settings.shutdown_drain_delay,
            metrics_dir=os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None,
        )
    finally:
        if admin is not None:
            admin.stop()
