"""A frontend's route table as configured: `BFF_ROUTES` (`PREFIX=UPSTREAM,...`) or TOML
`[[routes]]` tables -> `RouteConfig`s, every entry checked and every problem named by
its place (`routes[0].prefix`). How requests are matched lives in bff.proxy.routes."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from bff.config.checks import resource_problem, url_problems, web_origin
from bff.config.collector import Collector
from bff.config.model import RouteConfig

__all__ = ["RESERVED_PREFIXES", "TOKEN_MODES", "parse_routes"]

RESERVED_PREFIXES = ("/bff", "/healthz", "/readyz", "/metrics")
TOKEN_MODES = ("user", "optional", "none", "client", "exchange")
_SCOPE_TOKEN = re.compile(r"[\x21\x23-\x5b\x5d-\x7e]{1,128}")
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
ROUTE_KEYS = frozenset(
    {
        "prefix",
        "upstream",
        "token",
        "csrf",
        "methods",
        "retry_on_401",
        "scopes",
        "resource",
        "path_params",
        "websocket",
        "origins",
        "dpop",
    }
)


def parse_routes(c: Collector) -> tuple[RouteConfig, ...]:
    """The routes the collector's environment (wins) or TOML mapping lists."""
    entries: list[tuple[dict[str, Any], str]] = []
    env = c.label("routes")
    if env in c.environ:
        c.sources["routes"] = env
        for i, item in enumerate(filter(None, c.environ[env].split(","))):
            prefix, sep, upstream = item.strip().partition("=")
            if not sep:
                c.problems.append(f"{env}: entry {i + 1} is not PREFIX=UPSTREAM_URL")
                continue
            entries.append(({"prefix": prefix.strip(), "upstream": upstream.strip()}, env))
    else:
        if "routes" in c.toml:
            c.sources["routes"] = "config file"
        toml_routes = c.toml.get("routes", [])
        if not isinstance(toml_routes, list):
            c.problems.append("routes: must be an array of tables ([[routes]])")
            toml_routes = []
        for i, table in enumerate(toml_routes):
            if not isinstance(table, dict):
                c.problems.append(f"routes[{i}]: must be a table")
                continue
            entries.append((table, f"routes[{i}]"))

    routes: list[RouteConfig] = []
    seen: set[str] = set()
    for entry, where in entries:
        route = _parse_route(c, entry, where)
        if route is None:
            continue
        if route.prefix in seen:
            c.problems.append(f"{where}: duplicate prefix {route.prefix!r}")
        seen.add(route.prefix)
        routes.append(route)
    return tuple(routes)


def _scopes(c: Collector, value: Any, where: str) -> str | None:
    """A list of scope tokens (RFC 6749 §3.3: printable ASCII, no space, quote or
    backslash) -> the space-joined `scope` parameter."""
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        c.problems.append(f"{where}: must be a non-empty list of strings")
        return None
    bad = [v for v in value if not _SCOPE_TOKEN.fullmatch(v)]
    if bad:
        c.problems.append(f"{where}: {bad[0]!r} is not a scope token")
        return None
    return " ".join(dict.fromkeys(value))


def _prefix_problem(prefix: Any) -> str | None:
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        return f"must start with '/', got {prefix!r}"
    if prefix != "/" and (
        prefix.endswith("/")
        or any(seg in ("", ".", "..") for seg in prefix[1:].split("/"))
        or any(ch in prefix for ch in "%\\?#;")
        or any(ord(ch) <= 0x20 or ord(ch) >= 0x7F for ch in prefix)
    ):
        return f"must be a plain path like /api, got {prefix!r}"
    if any(
        prefix == r or prefix.startswith(r + "/") or r.startswith(prefix + "/") or prefix == "/"
        for r in RESERVED_PREFIXES
    ):
        return f"{prefix!r} would shadow bff's own endpoints"
    return None


def _origins(c: Collector, value: Any, where: str) -> tuple[str, ...]:
    """`origins = ["https://app.example"]`: a WebSocket route's Origin allow-list."""
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        c.problems.append(f"{where}: must be a list of origins like https://app.example")
        return ()
    out = []
    for v in value:
        origin = web_origin(v)
        if origin is None:
            c.problems.append(f"{where}: {v!r} is not an origin like https://app.example")
        else:
            out.append(origin)
    return tuple(out)


def _parse_route(c: Collector, item: dict[str, Any], where: str) -> RouteConfig | None:
    for key in sorted(set(item) - ROUTE_KEYS):
        c.problems.append(f"{where}.{key}: unknown route setting")
    prefix, upstream = item.get("prefix"), item.get("upstream")
    before = len(c.problems)
    problem = _prefix_problem(prefix)
    if problem:
        c.problems.append(f"{where}.prefix: {problem}")
    if not isinstance(upstream, str):
        c.problems.append(f"{where}.upstream: required URL")
    else:
        c.problems.extend(url_problems(upstream, f"{where}.upstream"))
    token = item.get("token", "user")
    if token not in TOKEN_MODES:
        c.problems.append(f"{where}.token: must be one of {', '.join(TOKEN_MODES)}")
    csrf = c.flag(item.get("csrf", True), f"{where}.csrf", True)
    retry = c.flag(item.get("retry_on_401", False), f"{where}.retry_on_401", False)
    path_params = c.flag(item.get("path_params", False), f"{where}.path_params", False)
    websocket = c.flag(item.get("websocket", False), f"{where}.websocket", False)
    origins = _origins(c, item.get("origins", []), f"{where}.origins")
    dpop = c.flag(item.get("dpop", False), f"{where}.dpop", False)
    methods = item.get("methods")
    method_set: frozenset[str] | None = None
    if methods is not None:
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            c.problems.append(f"{where}.methods: must be a list of HTTP method names")
        else:
            method_set = frozenset(m.upper() for m in methods)
            for bad in sorted(method_set - HTTP_METHODS):
                c.problems.append(f"{where}.methods: unknown method {bad!r}")
    resource = item.get("resource")
    if "resource" in item and not (
        isinstance(resource, str) and resource_problem(resource) is None
    ):
        why = resource_problem(resource) if isinstance(resource, str) else "must be a string"
        c.problems.append(f"{where}.resource: {why}")
    scopes = _scopes(c, item.get("scopes"), f"{where}.scopes") if "scopes" in item else None
    if token in ("none", "optional") and ("resource" in item or "scopes" in item):
        # Refused rather than ignored: an operator must never believe a route gets a
        # narrower token than the one it is actually sent.
        c.problems.append(
            f"{where}: resource and scopes need token = user, client or exchange "
            f"(token = {token} sends no token of the route's own)"
        )
    if len(c.problems) > before:
        return None
    assert isinstance(prefix, str)
    assert isinstance(upstream, str)
    return RouteConfig(
        prefix=prefix,
        upstream=upstream.rstrip("/") if urlsplit(upstream).path == "/" else upstream,
        token=token,
        csrf=csrf,
        methods=method_set,
        retry_on_401=retry,
        path_params=path_params,
        scopes=scopes,
        resource=resource if isinstance(resource, str) else None,
        websocket=websocket,
        origins=origins,
        dpop=dpop,
    )
