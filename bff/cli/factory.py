"""The app of a worker process (uvicorn's factory `bff.cli.factory:app_from_environment`):
settings from the environment that `bff serve` prepared (the config path and the
command-line overrides), logging, the drain signal and tracing."""

from __future__ import annotations

import json
import os
from typing import Any

from bff.cli.configuration import otlp_protocol, settings_from
from bff.cli.logging_setup import configure_logging
from bff.cli.serve import PROCESS_LIFECYCLE, install_drain_signal
from bff.telemetry.tracing import create_tracing
from bff.web.app import create_app

__all__ = ["app_from_environment"]


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
    return create_app(
        settings,
        tracing=tracing,
        lifecycle=PROCESS_LIFECYCLE,
    )
