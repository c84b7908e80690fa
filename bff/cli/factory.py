"""The app of a worker process (uvicorn's factory `bff.cli.factory:app_from_environment`):
settings from the environment that `bff serve` prepared (the config path and the
command-line overrides), logging, the drain signal and tracing; then the start-up heap
is settled for the garbage collector (`settle_heap`)."""

from __future__ import annotations

import gc
import json
import os
from typing import Any

from bff.cli.configuration import otlp_protocol, settings_from
from bff.cli.logging_setup import configure_logging
from bff.cli.serve import PROCESS_LIFECYCLE, install_drain_signal
from bff.telemetry.tracing import create_tracing
from bff.web.app import create_app

__all__ = ["GEN0_THRESHOLD", "app_from_environment", "settle_heap"]

# Container allocations (net of frees) between two young collections; CPython's is 700.
GEN0_THRESHOLD = 10_000


def settle_heap() -> None:
    """Once the app is built: what start-up made (modules, settings, the app) moves to
    the permanent generation, which no collection walks again, and young collections
    run every GEN0_THRESHOLD allocations instead of 700.

    A proxied request leaves no cyclic garbage, but 64 requests in flight hold enough
    objects to cross 700 again and again: measured (bench/hotpath.py, 1 worker, 64
    connections, 10 s) 1,096 young, 99 middle and 9 full collections, 0.67 s of the
    10 s, the full ones 50-70 ms each (walking the ~80,000 start-up objects), found
    nothing. With this: no collection at all in the same 10 s."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GEN0_THRESHOLD, *gc.get_threshold()[1:])


def app_from_environment() -> Any:
    """uvicorn factory for worker processes: settings come from the environment that
    `bff serve` prepared (the config path and the command-line overrides)."""
    overrides = json.loads(os.environ.get("BFF_CLI_OVERRIDES", "{}"))
    settings = settings_from(os.environ, None, overrides)
    configure_logging(settings.log_format)
    install_drain_signal(PROCESS_LIFECYCLE)
    tracing = create_tracing(
        settings.tracing,
        trusted_proxies=settings.trusted_proxies,
        service_name=os.environ.get("OTEL_SERVICE_NAME") or "bff",
        protocol=otlp_protocol(),
    )
    app = create_app(
        settings,
        tracing=tracing,
        lifecycle=PROCESS_LIFECYCLE,
    )
    settle_heap()
    return app
