"""`bff serve | check-config | sessions`: the only code that reads os.environ."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import logging
import logging.config
import os
import sys
import tempfile
from collections.abc import Mapping, Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from bff.config.known import unknown_env_warnings
from bff.config.load import load_settings, read_toml
from bff.config.model import Settings
from bff.config.report import bind_warnings, cookie_warnings, effective_config, masked_config
from bff.errors import ConfigError

__all__ = ["app_from_environment", "configure_logging", "main", "settings_from", "version_text"]

_LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "bare": {"format": "%(message)s"},
        "json": {"()": "bff.telemetry.logs.JsonFormatter"},
    },
    "handlers": {
        "stderr": {
            "class": "logging.StreamHandler",
            "formatter": "plain",
            "stream": "ext://sys.stderr",
        },
        "audit": {
            "class": "logging.StreamHandler",
            "formatter": "bare",
            "stream": "ext://sys.stderr",
        },
    },
    "loggers": {
        "bff.audit": {"handlers": ["audit"], "level": "INFO", "propagate": False},
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
    logging.config.dictConfig(config)
    return config


_VERSIONED = ("starlette", "uvicorn", "redis", "authlib", "joserfc")


def version_text() -> str:
    """`bff --version`: this package and the libraries that matter, as installed."""

    def version(name: str) -> str:
        try:
            return metadata.version(name)
        except metadata.PackageNotFoundError:
            return "not installed"

    libraries = ", ".join(f"{name} {version(name)}" for name in _VERSIONED)
    python = ".".join(str(n) for n in sys.version_info[:3])
    return f"bff {version('bff')} (python {python}; {libraries})"


def settings_from(
    environ: Mapping[str, str], config_path: str | None, overrides: Mapping[str, Any] | None = None
) -> Settings:
    path = config_path or environ.get("BFF_CONFIG")
    toml = read_toml(path) if path else {}
    return load_settings(environ, toml, overrides=overrides)


def app_from_environment() -> Any:
    """uvicorn factory for worker processes: settings come from the environment that
    `bff serve` prepared (the config path and the command-line overrides)."""
    from bff.cli.serve import PROCESS_LIFECYCLE, install_drain_signal
    from bff.telemetry.tracing import create_tracing
    from bff.web.app import create_app

    overrides = json.loads(os.environ.get("BFF_CLI_OVERRIDES", "{}"))
    settings = settings_from(os.environ, None, overrides)
    configure_logging(settings.log_format)
    install_drain_signal(PROCESS_LIFECYCLE)
    tracing = create_tracing(
        settings.tracing,
        trusted_proxies=settings.trusted_proxies,
        service_name=os.environ.get("OTEL_SERVICE_NAME") or "bff",
        protocol=_otlp_protocol(),
    )
    return create_app(
        settings,
        tracing=tracing,
        lifecycle=PROCESS_LIFECYCLE,
    )


def _otlp_protocol() -> str | None:
    return (
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or os.environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or None
    )


def _report(error: ConfigError) -> int:
    print("bff: invalid configuration:", file=sys.stderr)
    for problem in error.problems:
        print(f"  - {problem}", file=sys.stderr)
    return 1


def _warn(lines: list[str]) -> None:
    for line in lines:
        print(f"bff: warning: {line}", file=sys.stderr)


def _fresh_metrics_dir(path: str) -> None:
    """Create the multiprocess metrics folder, and empty it of an earlier process's files:
    a restarted container keeps its tmp volume, and prometheus_client would otherwise go
    on summing the dead process's counters and live gauges."""
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    for stale in folder.glob("*.db"):
        stale.unlink(missing_ok=True)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bff.cli.serve import PROCESS_LIFECYCLE, run
    from bff.telemetry.tracing import check_tracing

    overrides = {
        k: v
        for k, v in (("host", args.host), ("port", args.port), ("workers", args.workers))
        if v is not None
    }
    warnings = unknown_env_warnings(os.environ)
    try:
        settings = settings_from(os.environ, args.config, overrides)
        check_tracing(settings.tracing, protocol=_otlp_protocol())
    except ConfigError as exc:
        _warn(warnings)  # a misspelt variable may be why a setting is missing
        return _report(exc)
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
        _fresh_metrics_dir(os.environ["PROMETHEUS_MULTIPROC_DIR"])
    from bff.web.listener import bounded_http_protocol

    config = uvicorn.Config(
        "bff.cli.main:app_from_environment",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        loop="uvloop",
        # httptools with a header-size and header-read-time bound (bff.listener).
        http=bounded_http_protocol(settings),
        # uvicorn trusts X-Forwarded-* from 127.0.0.1 by default: off here. The app
        # applies uvicorn's ProxyHeadersMiddleware itself for BFF_TRUSTED_PROXIES only.
        proxy_headers=False,
        access_log=False,
        server_header=False,
        log_config=configure_logging(settings.log_format),
        # In-flight requests (streams too) get this long once the drain delay is over.
        timeout_graceful_shutdown=settings.shutdown_timeout,  # type: ignore[arg-type]
    )
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
        settings.frontend.public_url,
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


def _check_config(args: argparse.Namespace) -> int:
    _warn(unknown_env_warnings(os.environ))
    try:
        settings = settings_from(os.environ, args.config)
    except ConfigError as exc:
        return _report(exc)
    _warn(bind_warnings(settings) + cookie_warnings(settings))
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
        shown = (
            value if isinstance(value, str) else "(not set)" if value is None else json.dumps(value)
        )
        print(f"  {key:<{widths[0]}}  {env:<{widths[1]}}  {source:<{widths[2]}}  {shown}")
    for route in masked_config(settings)["routes"]:
        fields = " ".join(f"{k}={json.dumps(v)}" for k, v in route.items())
        print(f"  [[routes]] {fields}")
    print(f"  session store topology: {json.dumps(topology, sort_keys=True)}")
    return 0


async def _store_topology(settings: Settings) -> dict[str, Any]:
    """What the configured store sees now (bounded by its timeouts; no secret)."""
    from bff.store.factory import create_store

    store = create_store(settings)
    try:
        return await store.topology()
    finally:
        with contextlib.suppress(Exception):
            await store.aclose()


def _sessions(args: argparse.Namespace) -> int:
    from bff.cli.sessions import run_sessions_command

    configure_logging()  # the audit trail of revocations goes to standard error
    _warn(unknown_env_warnings(os.environ))
    try:
        settings = settings_from(os.environ, args.config)
    except ConfigError as exc:
        return _report(exc)
    return run_sessions_command(settings, args)


class _Version(argparse.Action):
    """`--version` on one line (argparse's own action wraps it at the terminal width)."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        print(version_text())
        parser.exit()


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="bff", description="OAuth backend-for-frontend")
    parser.add_argument("--version", action=_Version, help="print versions and exit")
    sub = parser.add_subparsers(dest="command", required=True)
    config_help = "TOML config file (default: $BFF_CONFIG); environment variables win over it"
    serve = sub.add_parser("serve", help="run the BFF")
    serve.add_argument("--config", metavar="FILE", help=config_help)
    serve.add_argument("--host", help="address to listen on (BFF_HOST; default 127.0.0.1)")
    serve.add_argument("--port", type=int, help="port to listen on (BFF_PORT; default 8000)")
    serve.add_argument(
        "--workers", type=int, metavar="N", help="worker processes (BFF_WORKERS; default 1)"
    )
    serve.set_defaults(func=_serve)
    check = sub.add_parser("check-config", help="validate and print the effective config")
    check.add_argument("--config", metavar="FILE", help=config_help)
    check.add_argument(
        "--format",
        choices=("text", "json"),
        default="text",
        help="text: a table of setting, env name, source and value; json: "
        "{toml_key: value} for automation (default: text)",
    )
    check.set_defaults(func=_check_config)
    sessions = sub.add_parser("sessions", help="list or revoke sessions")
    sessions.add_argument("--config", metavar="FILE", help=config_help)
    actions = sessions.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", help="live sessions, the most recently seen first")
    listing.add_argument("--sub", help="only the sessions of this user (the ID token's sub)")
    listing.add_argument("--json", action="store_true", help="a JSON array instead of a table")
    revoke = actions.add_parser(
        "revoke", help="end sessions and revoke their refresh tokens; exit 1 if none matched"
    )
    target = revoke.add_mutually_exclusive_group(required=True)
    target.add_argument("--session", metavar="HASH", help="one session, as `list` shows it")
    target.add_argument("--sub", help="every session of this user")
    target.add_argument("--all", action="store_true", help="every session")
    sessions.set_defaults(func=_sessions)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
