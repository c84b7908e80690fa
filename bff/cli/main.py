"""`bff serve | check-config | sessions`: the command line's arguments, `--version`, and
the dispatch to each command's module (`bff.cli.serve_command`, `bff.cli.check_config`,
`bff.cli.sessions`)."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from importlib import metadata
from typing import Any

from bff.cli.configuration import report_problems, settings_from, warn
from bff.cli.logging_setup import configure_logging
from bff.config.known import unknown_env_warnings
from bff.errors import ConfigError

__all__ = ["main", "version_text"]

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


# Each command's module is imported when it runs: `bff --version` loads no server.
def _serve(args: argparse.Namespace) -> int:
    from bff.cli.serve_command import serve

    return serve(args)


def _check_config(args: argparse.Namespace) -> int:
    from bff.cli.check_config import check_config

    return check_config(args)


def _sessions(args: argparse.Namespace) -> int:
    from bff.cli.sessions import run_sessions_command

    configure_logging()  # the audit trail of revocations goes to standard error
    warn(unknown_env_warnings(os.environ))
    try:
        settings = settings_from(os.environ, args.config)
    except ConfigError as exc:
        return report_problems(exc)
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
    serve_parser = sub.add_parser("serve", help="run the BFF")
    serve_parser.add_argument("--config", metavar="FILE", help=config_help)
    serve_parser.add_argument("--host", help="address to listen on (BFF_HOST; default 127.0.0.1)")
    serve_parser.add_argument("--port", type=int, help="port to listen on (BFF_PORT; default 8000)")
    serve_parser.add_argument(
        "--workers", type=int, metavar="N", help="worker processes (BFF_WORKERS; default 1)"
    )
    serve_parser.set_defaults(func=_serve)
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
