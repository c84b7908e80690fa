"""`bff check-config`: validate the configuration and print the effective settings
(secrets masked) as a table or as JSON, with what the session store sees now."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
from typing import Any

from bff.cli.configuration import report_problems, settings_from, warn
from bff.config.known import unknown_env_warnings
from bff.config.model import Settings
from bff.config.report import (
    bind_warnings,
    cookie_warnings,
    effective_config,
    frontend_rows,
    masked_config,
)
from bff.errors import ConfigError
from bff.store.factory import create_store

__all__ = ["check_config"]


def check_config(args: argparse.Namespace) -> int:
    warn(unknown_env_warnings(os.environ))
    try:
        settings = settings_from(os.environ, args.config)
    except ConfigError as exc:
        return report_problems(exc)
    warn(bind_warnings(settings) + cookie_warnings(settings))
    topology = asyncio.run(_store_topology(settings))
    if args.format == "json":
        report = masked_config(settings)
        report["session_store_topology"] = topology
        print(json.dumps(report, indent=2, sort_keys=True))
        return 0
    rows = [row for row in effective_config(settings) if row[0] != "routes"]
    widths = [max(len(str(row[i])) for row in rows) for i in (0, 1, 3)]
    print("bff: the configuration is valid; effective settings (secrets masked):")
    for key, env, value, source in [("setting", "environment", "value", "from"), *rows]:
        print(f"  {key:<{widths[0]}}  {env:<{widths[1]}}  {source:<{widths[2]}}  {_show(value)}")
    if "frontends" not in dict(settings.sources):
        for route in masked_config(settings)["routes"]:
            fields = " ".join(f"{k}={json.dumps(v)}" for k, v in route.items())
            print(f"  [[routes]] {fields}")
    else:
        _print_frontends(settings)
    print(f"  session store topology: {json.dumps(topology, sort_keys=True)}")
    return 0


def _show(value: Any) -> str:
    return value if isinstance(value, str) else "(not set)" if value is None else json.dumps(value)


def _print_frontends(settings: Settings) -> None:
    """Every `[[frontends]]` table: its settings, then its routes."""
    for name, all_rows in frontend_rows(settings):
        rows = [row for row in all_rows if row[0] != "routes"]
        widths = [max(len(str(row[i])) for row in rows) for i in (0, 1, 3)]
        print(f"  [[frontends]] name={json.dumps(name)}")
        for key, env, value, source in rows:
            print(
                f"    {key:<{widths[0]}}  {env:<{widths[1]}}  {source:<{widths[2]}}  {_show(value)}"
            )
        for key, _env, value, _source in all_rows:
            if key == "routes":
                for route in value:
                    fields = " ".join(f"{k}={json.dumps(v)}" for k, v in route.items())
                    print(f"    [[frontends.routes]] {fields}")


async def _store_topology(settings: Settings) -> dict[str, Any]:
    """What the configured store sees now (bounded by its timeouts; no secret)."""
    store = create_store(settings)
    try:
        return await store.topology()
    finally:
        with contextlib.suppress(Exception):
            await store.aclose()
