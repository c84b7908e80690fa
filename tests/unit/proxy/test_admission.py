"""Which requests a route takes at all (SPEC.md "The proxy"; THREATS.md invariant 13): its
methods (405 with Allow), never TRACE, TRACK, CONNECT or WebDAV on a route without
`methods`, and no `;` path parameter unless the route allows them (400). Pure."""

from __future__ import annotations

import json

from bff.config.model import RouteConfig
from bff.proxy.admission import refusal
from bff.proxy.routes import RouteTable, canonical_path


def decide(config: RouteConfig, method: str, raw: bytes) -> tuple[int, str, bytes | None] | None:
    (route,) = RouteTable([config]).routes
    refused = refusal(route, method, canonical_path(raw))
    if refused is None:
        return None
    (status, _, body), extra = refused
    return status, json.loads(body)["error"], extra[1] if extra else None


def test_a_route_takes_its_methods_only() -> None:
    config = RouteConfig(prefix="/api", upstream="http://up", methods=frozenset({"GET", "POST"}))
    assert decide(config, "GET", b"/api/x") is None
    assert decide(config, "DELETE", b"/api/x") == (405, "method_not_allowed", b"GET, POST")
    assert decide(config, "get", b"/api/x") == (405, "method_not_allowed", b"GET, POST")


def test_a_route_without_methods_takes_the_ordinary_ones_only() -> None:
    config = RouteConfig(prefix="/api", upstream="http://up")
    for method in ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"):
        assert decide(config, method, b"/api/x") is None
    allow = b"DELETE, GET, HEAD, OPTIONS, PATCH, POST, PUT"
    for method in ("TRACE", "TRACK", "CONNECT", "PROPFIND", "PURGE"):
        assert decide(config, method, b"/api/x") == (405, "method_not_allowed", allow)


def test_path_parameters_only_where_the_route_allows_them() -> None:
    strict = RouteConfig(prefix="/api", upstream="http://up")
    assert decide(strict, "GET", b"/api/a;jsessionid=1") == (400, "invalid_path", None)
    loose = RouteConfig(prefix="/api", upstream="http://up", path_params=True)
    assert decide(loose, "GET", b"/api/a;jsessionid=1") is None
