"""Logging of every bff process: text or JSON lines, the audit trail apart."""

from __future__ import annotations

import logging

from bff.cli.logging_setup import configure_logging


def test_configure_logging_picks_the_format() -> None:
    try:
        config = configure_logging("json")
        assert config["handlers"]["stderr"]["formatter"] == "json"
        assert config["handlers"]["audit"]["formatter"] == "bare"  # audit: JSON already
        assert configure_logging()["handlers"]["stderr"]["formatter"] == "plain"
    finally:
        # as before any configuration
        for name in ("bff", "bff.audit", "bff.access"):
            logging.getLogger(name).propagate = True
            logging.getLogger(name).handlers.clear()
