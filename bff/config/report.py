"""What check-config and start-up say about valid settings: the effective configuration
under the user's TOML keys with every secret masked, and the warnings worth a line (a
listening address the public URL cannot reach, an https cookie without `__Host-`). Pure."""

from __future__ import annotations

import ipaddress
from typing import Any
from urllib.parse import urlsplit

from bff.config.checks import is_loopback_host
from bff.config.known import KNOWN_SETTINGS
from bff.config.model import Frontend, RouteConfig, Settings
from bff.store.redis_url import mask_store_url

__all__ = [
    "bind_warnings",
    "cookie_warnings",
    "effective_config",
    "frontend_dict",
    "frontend_rows",
    "masked_config",
]


def masked_config(settings: Settings) -> dict[str, Any]:
    """The effective configuration of the process and its default frontend under the
    TOML keys a user writes, every secret replaced by a mask (the shape of
    `check-config --format json`), and `frontends`: every frontend under its table's keys.
    With `[[frontends]]` the flat frontend keys are left out (no default frontend stands
    apart from the others)."""
    tables = "frontends" in dict(settings.sources)
    out: dict[str, Any] = {}
    for known in KNOWN_SETTINGS:
        if known.frontend and tables:
            continue
        holder: Frontend | Settings = settings.frontend if known.frontend else settings
        if known.key in out or known.key == "frontends" or not hasattr(holder, known.attr):
            continue  # a setting of a later release, or listed twice after a merge
        out[known.key] = _masked(known.key, known.secret, getattr(holder, known.attr))
    out["session_store"] = mask_store_url(settings.session_store)
    out["frontends"] = [frontend_dict(f) for f in settings.frontends]
    return out


def frontend_dict(frontend: Frontend) -> dict[str, Any]:
    """One frontend under the keys of its `[[frontends]]` table, secrets masked."""
    out: dict[str, Any] = {"name": frontend.name}
    for known in KNOWN_SETTINGS:
        if known.frontend and hasattr(frontend, known.attr):
            out[known.key] = _masked(known.key, known.secret, getattr(frontend, known.attr))
    return out


def _masked(key: str, secret: bool, value: Any) -> Any:
    if secret and not value:
        return None  # not configured (the client secret with private_key_jwt)
    if secret:
        count = len(value) if isinstance(value, tuple) else 1
        return "****" if count == 1 else f"**** ({count} keys)"
    if key == "routes":
        return [_route_dict(r) for r in value]
    return list(value) if isinstance(value, tuple) else value


def _route_dict(route: RouteConfig) -> dict[str, Any]:
    d: dict[str, Any] = {
        "prefix": route.prefix,
        "upstream": _mask_url_password(route.upstream),
        "token": route.token,
        "csrf": route.csrf,
        "retry_on_401": route.retry_on_401,
        "path_params": route.path_params,
    }
    if route.websocket:
        d["websocket"] = True
        d["origins"] = list(route.origins)
    if route.methods is not None:
        d["methods"] = sorted(route.methods)
    if route.scopes:
        d["scopes"] = route.scopes
    if route.resource:
        d["resource"] = route.resource
    if route.dpop:
        d["dpop"] = True
    return d


def _mask_url_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":****@", 1)
    return url


def effective_config(settings: Settings) -> list[tuple[str, str, Any, str]]:
    """(TOML key, env name, masked value, where it came from) per setting, for the text
    form of check-config."""
    sources = dict(settings.sources)
    by_key = {k.key: k for k in KNOWN_SETTINGS}
    return [
        (key, by_key[key].env, value, sources.get(key, "default"))
        for key, value in masked_config(settings).items()
        if key != "frontends"  # shown per frontend (`frontend_rows`)
    ]


def frontend_rows(settings: Settings) -> list[tuple[str, list[tuple[str, str, Any, str]]]]:
    """(name, rows) per frontend: (key, env name, masked value, where it came from)."""
    sources = dict(settings.sources)
    tables = "frontends" in sources
    out = []
    for frontend in settings.frontends:
        rows = []
        for key, value in frontend_dict(frontend).items():
            if key == "name":
                continue
            if tables:
                env = f"BFF_FRONTEND_{frontend.name.upper()}_{key.upper()}"
                source = sources.get(f"frontends.{frontend.name}.{key}", "default")
            else:
                env, source = f"BFF_{key.upper()}", sources.get(key, "default")
            rows.append((key, env, value, source))
        out.append((frontend.name, rows))
    return out


def _port_of(url: str) -> int | None:
    parts = urlsplit(url)
    try:
        return parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None


def bind_warnings(settings: Settings) -> list[str]:
    """Where the listening address cannot be what a frontend's BFF_PUBLIC_URL names, so
    that the provider would send browsers back to an address nobody answers (or another
    one). Only for a plain-http public URL (development, loopback): an https one is
    served through a TLS-terminating proxy, which may map any port."""
    return [w for f in settings.frontends for w in _bind_warnings(settings, f.public_url)]


def _bind_warnings(settings: Settings, public_url: str) -> list[str]:
    public = urlsplit(public_url)
    if public.scheme != "http" or settings.trusted_proxies or settings.port == 0:
        return []
    warnings = []
    port = _port_of(public_url)
    if port is not None and port != settings.port:
        warnings.append(
            f"bff listens on port {settings.port} but BFF_PUBLIC_URL {public_url} "
            f"names port {port}: after login the provider sends the browser to port {port}. "
            f"Set BFF_PUBLIC_URL to http://{public.hostname}:{settings.port}, or --port {port}, "
            "or list the proxy that forwards to bff in BFF_TRUSTED_PROXIES"
        )
    try:
        wildcard = ipaddress.ip_address(settings.host.strip("[]")).is_unspecified
    except ValueError:
        wildcard = False  # a host name
    if is_loopback_host(public.hostname) and not wildcard and not is_loopback_host(settings.host):
        warnings.append(
            f"bff listens on {settings.host}, which is not loopback, but BFF_PUBLIC_URL "
            f"{public_url} names a loopback host: browsers cannot reach it there. "
            "Listen on 127.0.0.1 (--host) or set BFF_PUBLIC_URL to the address browsers use"
        )
    return warnings


def cookie_warnings(settings: Settings) -> list[str]:
    """An https session cookie without the `__Host-` prefix can be set or shadowed by a
    sibling subdomain (cookie tossing, THREATS.md): allowed, but worth a line."""
    return [
        f"BFF_COOKIE_NAME {f.cookie_name!r} has no __Host- prefix: on https a "
        "sibling subdomain can then toss a cookie of that name at bff (keep the "
        "default __Host-bff-session unless a subdomain must share it)"
        for f in settings.frontends
        if f.secure and not f.cookie_name.startswith("__Host-")
    ]
