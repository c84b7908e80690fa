"""Settings: parsed once from TOML plus `BFF_*` environment variables, frozen, and
validated all at once (every problem named by its setting, reported together).

Environment wins over the file. Secrets come from the environment, or from a file
named by `<NAME>_FILE` (e.g. BFF_CLIENT_SECRET_FILE), and may be left out of TOML.
The flat settings describe the single default frontend plus the process. Only the CLI
reads `os.environ`; this module takes the environment as a parameter.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Mapping
from typing import Any

from bff.config.checks import split_host_port
from bff.config.collector import Collector
from bff.config.known import unknown_keys
from bff.config.load_frontend import load_frontend
from bff.config.load_frontends import flat_frontend_problems, load_frontends
from bff.config.model import Frontend, Settings
from bff.errors import ConfigError
from bff.store.redis_url import HA_SCHEMES, mask_store_url, parse_ha_url

__all__ = ["load_settings", "read_admin_token", "read_toml"]

STORE_SCHEMES = ("memory", "redis", "rediss", "unix", *HA_SCHEMES)
LOG_FORMATS = ("text", "json")
TRACING_MODES = ("off", "otlp")
_PLACEHOLDER = Frontend(issuer="", client_id="", client_secret="")


def read_toml(path: str) -> dict[str, Any]:
    """Read a TOML config file; ConfigError naming the file when unreadable."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError([f"config file {path}: cannot be read ({exc.strerror})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"config file {path}: invalid TOML ({exc})"]) from None


def load_settings(
    environ: Mapping[str, str],
    toml: Mapping[str, Any] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build Settings from env + TOML (+ CLI `overrides`); ConfigError lists ALL problems."""
    c = Collector(environ, toml or {}, overrides or {})
    c.problems.extend(unknown_keys(c.toml))
    frontends: tuple[Frontend, ...]
    if "frontends" in c.toml:
        # Several frontends: the flat frontend settings would be ambiguous (which one do
        # they describe?), so they are refused rather than merged or ignored.
        c.problems.extend(flat_frontend_problems(environ, c.toml))
        frontends = load_frontends(environ, c.toml["frontends"], c.problems, c.sources)
        c.sources["frontends"] = "config file"
    else:
        frontends = (load_frontend(c),)
    placeholder = frontends[:1] or (_PLACEHOLDER,)  # Settings needs one; we raise anyway
    settings = _process_settings(c, frontends if not c.problems else placeholder)
    if c.problems:
        raise ConfigError(c.problems)
    return settings


def _store(c: Collector) -> tuple[str, str]:
    # BFF_SESSION_STORE_FILE too: a Redis URL with a password belongs in a secret file.
    store = c.text("session_store", "memory://", secret=True) or "memory://"
    scheme = store.split("://", 1)[0] if "://" in store else ""
    if scheme not in STORE_SCHEMES:
        c.problems.append(
            f"BFF_SESSION_STORE: unsupported URL {mask_store_url(store)!r}; "
            f"use one of {', '.join(s + '://' for s in STORE_SCHEMES)}"
        )
    elif scheme in HA_SCHEMES:
        try:
            parse_ha_url(store)
        except ValueError as exc:
            c.problems.append(f"BFF_SESSION_STORE: {mask_store_url(store)!r}: {exc}")
    return store, scheme


def _trusted_proxies(c: Collector) -> tuple[str, ...]:
    proxies_raw = c.raw("trusted_proxies")
    proxies: list[str] = []
    if proxies_raw is not None:
        value, source = proxies_raw
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list):
            c.problems.append(f"{source}: must be a comma-separated list of CIDRs")
            items = []
        for item in items:
            text = str(item).strip()
            if not text:
                continue
            try:
                proxies.append(str(ipaddress.ip_network(text, strict=False)))
            except ValueError:
                c.problems.append(f"{source}: {text!r} is not an IP address or CIDR")
    return tuple(proxies)


def _admin_listen(c: Collector, host: str, port: int) -> str:
    admin_listen = c.text("admin_listen", "") or ""
    if admin_listen:
        try:
            admin_host, admin_port = split_host_port(admin_listen)
        except ValueError as exc:
            c.problems.append(f"BFF_ADMIN_LISTEN: {exc} (e.g. 127.0.0.1:9091; empty: off)")
        else:
            wildcard = {admin_host, host} & {"0.0.0.0", "::", ""}  # noqa: S104 - a comparison
            if admin_port == port and (admin_host == host or wildcard):
                c.problems.append(f"BFF_ADMIN_LISTEN: port {admin_port} is the main listener's")
    return admin_listen


_MIN_ADMIN_TOKEN = 32  # characters


def read_admin_token(path: str) -> str:
    """The admin API's bearer token from BFF_ADMIN_TOKEN_FILE; ValueError naming the
    problem (never the token) when the file is unreadable or the token too weak."""
    try:
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        why = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
        raise ValueError(f"cannot read {path} ({why})") from None
    if len(token) < _MIN_ADMIN_TOKEN:
        raise ValueError(
            f"the token in {path} is {len(token)} characters; at least {_MIN_ADMIN_TOKEN} "
            "required (e.g. secrets.token_urlsafe(32))"
        )
    if not (token.isascii() and token.isprintable()) or " " in token:
        raise ValueError(f"the token in {path} must be printable ASCII without spaces")
    return token


def _admin_token_file(c: Collector) -> str | None:
    path = c.text("admin_token_file") or None
    if path:  # read again when the admin listener starts
        try:
            read_admin_token(path)
        except ValueError as exc:
            c.problems.append(f"BFF_ADMIN_TOKEN_FILE: {exc}")
    return path


def _process_settings(c: Collector, frontends: tuple[Frontend, ...]) -> Settings:
    """The process-wide settings around `frontends`; placeholders where `c.problems`
    has a problem (the caller raises then)."""
    keys_text = c.required("secret_key", secret=True)
    secret_keys = tuple(k.strip() for k in keys_text.split(",") if k.strip())
    for i, key in enumerate(secret_keys):
        if len(key) < 32:
            c.problems.append(
                f"BFF_SECRET_KEY: key {i + 1} is {len(key)} characters; at least 32 required"
            )
    store, scheme = _store(c)
    store_prefix = c.text("store_prefix", "bff") or "bff"
    if any(ch in store_prefix for ch in "{}*?[] ") or not store_prefix:
        c.problems.append("BFF_STORE_PREFIX: must not contain braces, glob characters or spaces")
    upstream_timeout = c.seconds("upstream_timeout", 30)
    max_connections = c.number("upstream_max_connections", 256, minimum=1)
    per_session = c.number("upstream_max_connections_per_session", 32, minimum=1)
    queue_timeout = c.number("upstream_queue_timeout", 1, minimum=0, as_float=True)
    transport = (c.text("upstream_transport", "lean") or "lean").lower()
    if transport not in ("lean", "aiohttp"):
        c.problems.append("BFF_UPSTREAM_TRANSPORT: must be lean or aiohttp")
    proxies = _trusted_proxies(c)
    host = c.text("host", "127.0.0.1") or "127.0.0.1"
    port = c.number("port", 8000, minimum=0)
    if port > 65535:
        c.problems.append(f"BFF_PORT: {port} is not a port number")
    workers = c.number("workers", 1, minimum=1)
    if scheme == "memory" and workers > 1:
        c.problems.append(
            "BFF_SESSION_STORE: memory:// cannot be shared by several workers; "
            "use redis:// with --workers > 1"
        )
    # Off where the ingress already logs every request (as nginx's `access_log off`):
    # one log line per request is a measurable share of the proxy hop.
    access_log = c.optional_flag("access_log", True)
    login_pending_max = c.number("login_pending_max", 100, minimum=1)
    login_pending_total = c.number("login_pending_total", 10000, minimum=1)
    max_header_bytes = c.number("max_header_bytes", 32768, minimum=1024)
    header_read_timeout = c.seconds("header_read_timeout", 10)
    body_read_timeout = c.seconds("body_read_timeout", 30)
    admin_listen = _admin_listen(c, host, port)
    admin_token_file = _admin_token_file(c)
    log_format = (c.text("log_format", "text") or "text").lower()
    if log_format not in LOG_FORMATS:
        c.problems.append("BFF_LOG_FORMAT: must be text or json")
    tracing = (c.text("tracing", "off") or "off").lower()
    if tracing not in TRACING_MODES:
        c.problems.append("BFF_TRACING: must be off or otlp")
    drain_delay = c.number("shutdown_drain_delay", 5, minimum=0, as_float=True)
    shutdown_timeout = c.number("shutdown_timeout", 30, minimum=0, as_float=True)
    return Settings(
        frontends=frontends,
        secret_keys=secret_keys,
        session_store=store,
        store_prefix=store_prefix,
        upstream_timeout=upstream_timeout,
        upstream_max_connections=max_connections,
        upstream_max_connections_per_session=per_session,
        upstream_queue_timeout=float(queue_timeout),
        upstream_transport="aiohttp" if transport == "aiohttp" else "lean",
        trusted_proxies=proxies,
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        login_pending_max=login_pending_max,
        login_pending_total=login_pending_total,
        max_header_bytes=max_header_bytes,
        header_read_timeout=header_read_timeout,
        body_read_timeout=body_read_timeout,
        admin_listen=admin_listen,
        admin_token_file=admin_token_file,
        log_format="json" if log_format == "json" else "text",
        tracing="otlp" if tracing == "otlp" else "off",
        shutdown_drain_delay=float(drain_delay),
        shutdown_timeout=float(shutdown_timeout),
        sources=tuple(sorted(c.sources.items())),
    )
