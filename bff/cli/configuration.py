"""Settings as every command reads them (the environment, a TOML file, the command
line's overrides), and how a command reports a configuration's problems and warnings on
standard error."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from typing import Any

from bff.config.load import load_settings, read_toml
from bff.config.model import Settings
from bff.errors import ConfigError

__all__ = ["otlp_protocol", "report_problems", "settings_from", "warn"]


def settings_from(
    environ: Mapping[str, str], config_path: str | None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    path = config_path or environ.get("BFF_CONFIG")
    toml = read_toml(path) if path else {}
    return load_settings(environ, toml, overrides=overrides)


def otlp_protocol() -> str | None:
    """The OTLP exporter's protocol, as OpenTelemetry's own variables name it."""
    return (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or None
    )


def report_problems(error: ConfigError) -> int:
    """Every problem of an invalid configuration, one per line; the exit status."""
    print("bff: invalid configuration:", file=sys.stderr)
    for problem in error.problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1


def warn(lines: list[str]) -> None:
    for line in lines:
        print(f"bff: warning: {line}", file=sys.stderr)
