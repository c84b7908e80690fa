"""Logging of every bff process: application lines and bff's own access log on standard
error (text or JSON, BFF_LOG_FORMAT), the audit trail as bare JSON lines, uvicorn's
access log off (it prints query strings), and the chatty libraries held at WARNING.
bff's access lines are buffered (`bff.telemetry.access_log`)."""

from __future__ import annotations

import copy
import logging
import logging.config
from typing import Any

from bff.telemetry.logs import TEXT_FORMAT

__all__ = ["configure_logging"]

_LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": TEXT_FORMAT},
        "bare": {"format": "%(message)s"},
        "json": {"()": "bff.telemetry.logs.JsonFormatter"},
    },
    "handlers": {
        "stderr": {
            "class": "bff.telemetry.access_log.StderrHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
        },
        "audit": {
            "class": "bff.telemetry.access_log.StderrHandler",
            "formatter": "bare",
            "stream": "ext://sys.stderr",
        },
        # Buffered, written within 0.1 s and before any other line (bff.telemetry.access_log)
        "access": {
            "class": "bff.telemetry.access_log.AccessLogHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
        },
    },
    "loggers": {
        "bff.audit": {"handlers": ["audit"], "level": "INFO", "propagate": False},
        "bff.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        "bff": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
        # uvicorn's access log prints query strings (/bff/callback?code=…): bff writes
        # its own access log without them, so this one stays off.
        "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
        # authlib logs the PKCE verifier at DEBUG; httpx logs every URL at INFO.
        "authlib": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "httpcore": {"level": "WARNING"},
    },
    "root": {"handlers": ["stderr"], "level": "WARNING"},
}


def configure_logging(log_format: str = "text") -> dict[str, Any]:
    """BFF_LOG_FORMAT: `json` writes application and access lines as JSON objects (the
    audit lines are JSON either way)."""
    config = copy.deepcopy(_LOGGING)
    if log_format == "json":
        config["handlers"]["stderr"]["formatter"] = "json"
        config["handlers"]["access"]["formatter"] = "json"
    logging.config.dictConfig(config)
    return config
