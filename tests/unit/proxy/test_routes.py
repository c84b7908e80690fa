"""Route table and the canonical path rule (THREATS.md invariant 1): pure, no loop."""

from __future__ import annotations

import pytest

from bff.config.load import load_settings
from bff.config.model import RouteConfig
from bff.errors import ConfigError, PathRejected
from bff.proxy.routes import RouteTable, canonical_path, safe_query
from tests.fake_idp import CLIENT_ID, CLIENT_SECRET, ISSUER, SECRET_KEY


def table(*routes: tuple[str, str]) -> RouteTable:
    return RouteTable(RouteConfig(prefix=p, upstream=u) for p, u in routes)


def target(t: RouteTable, raw: bytes) -> str | None:
    path = canonical_path(raw)
    route = t.match(path)
    return None if route is None else route.origin + route.target(path)


def test_longest_prefix_wins_on_segment_boundaries() -> None:
    t = table(("/api", "http://a:1"), ("/api/admin", "http://b:2"), ("/apix", "http://c:3"))
    assert target(t, b"/api") == "http://a:1/api"
    assert target(t, b"/api/") == "http://a:1/api/"
    assert target(t, b"/api/orders/7") == "http://a:1/api/orders/7"
    assert target(t, b"/api/admin") == "http://b:2/api/admin"
    assert target(t, b"/api/admin/x") == "http://b:2/api/admin/x"
    assert target(t, b"/api/administrator") == "http://a:1/api/administrator"
    assert target(t, b"/apix/1") == "http://c:3/apix/1"
    assert target(t, b"/apiy") is None
    assert target(t, b"/") is None
    assert target(t, b"/bff/user") is None


def test_nginx_proxy_pass_mapping() -> None:
    t = table(("/api", "http://h:8080/v1"), ("/slash", "http://h:8080/v2/"), ("/a/b", "http://h"))
    assert target(t, b"/api") == "http://h:8080/v1"
    assert target(t, b"/api/") == "http://h:8080/v1/"
    assert target(t, b"/api/orders/7") == "http://h:8080/v1/orders/7"
    assert target(t, b"/slash") == "http://h:8080/v2/"
    assert target(t, b"/slash/x") == "http://h:8080/v2/x"  # never `//x`
    assert target(t, b"/a/b/c") == "http://h/a/b/c"


def test_routes_from_settings_and_env() -> None:
    base = {
        "BFF_ISSUER": ISSUER,
        "BFF_CLIENT_ID": CLIENT_ID,
        "BFF_CLIENT_SECRET": CLIENT_SECRET,
        "BFF_SECRET_KEY": SECRET_KEY,
    }
    env = load_settings({**base, "BFF_ROUTES": "/api=http://a:1,/api/v2=http://b:2/x"})
    t = RouteTable(env.frontend.routes)
    assert target(t, b"/api/v2/q") == "http://b:2/x/q"
    toml = load_settings(
        base, {"routes": [{"prefix": "/api", "upstream": "HTTP://Orders:8080", "methods": ["get"]}]}
    )
    (route,) = RouteTable(toml.frontend.routes).routes
    assert route.origin == "http://orders:8080"
    assert route.config.methods == frozenset({"GET"})
    assert route.allow == b"GET"


def test_decisions_use_the_decoded_path_and_the_target_the_canonical_one() -> None:
    t = table(("/api", "http://h/v1"))
    # an escaped unreserved character is the character itself, on both sides
    assert target(t, b"/%61pi/x%7e") == "http://h/v1/x~"
    # reserved characters stay escaped (upper-cased): they mean data, not syntax
    assert target(t, b"/api/a%3bb/c%3Fd/e%23f") == "http://h/v1/a%3Bb/c%3Fd/e%23f"
    assert target(t, b"/api/a%20b/caf%C3%A9") == "http://h/v1/a%20b/caf%C3%A9"
    # raw characters a request line should not carry are escaped
    assert target(t, b"/api/a|b") == "http://h/v1/a%7Cb"
    # the query never takes part in a decision
    assert target(t, b"/api/x?/../../admin") == "http://h/v1/x"


@pytest.mark.parametrize(
    "raw",
    [
        b"/api/../admin",
        b"/api/./x",
        b"/api/..",
        b"/api/%2e%2e/admin",
        b"/api/%2E%2E/admin",
        b"/api/.%2e/admin",
        b"/api/%2e./admin",
        b"/api/%2e/admin",
        b"/api/orders/%2e%2e/%2e%2e/admin",
        b"/api/..;/admin",
        b"/api/..;jsessionid=1/admin",
        b"/api/...",
        b"/api/..%20",
        b"/api/x%2fy",
        b"/api/x%2F..%2Fadmin",
        b"/api/x%5cy",
        b"/api/x%5C..%5Cadmin",
        b"/api/x\\y",
        b"/api\\..\\admin",
        b"//evil.example/api",
        b"/api//evil.example",
        b"/api/x#frag",
        b"/api/x%00y",
        b"/api/x%0ay",
        b"/api/x\x00",
        b"/api/x\ty",
        b"/api/x%zz",
        b"/api/x%2",
        b"/api/%252e%252e/admin",
        b"/api/%252f",
        b"api/x",
        b"*",
        b"",
    ],
)
def test_unsafe_paths_are_rejected(raw: bytes) -> None:
    with pytest.raises(PathRejected):
        canonical_path(raw)


def test_plain_paths_are_accepted_unchanged() -> None:
    for raw in (b"/", b"/api", b"/api/", b"/api/a.b/c..d/.well-known", b"/api/x;v=1/@me:1"):
        assert canonical_path(raw).encoded == raw.decode()


def test_safe_query_is_byte_for_byte_except_unsendable_bytes() -> None:
    assert safe_query(b"a=1&b=%2f..%2F&c=/x?y") == "a=1&b=%2f..%2F&c=/x?y"
    assert safe_query(b"a= #\x00\xff") == "a=%20%23%00%FF"


def test_unsafe_upstream_path_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match=r"routes\[0\]\.upstream"):
        table(("/api", "http://h/v1/../admin"))


def test_path_parameters_are_flagged_and_matched_as_servlets_route_them() -> None:
    """`/api/admin;x/y` is `/api/admin/y` to a servlet container: the `/api/admin` route
    decides it, never `/api` (CVE-2020-1957); the proxy refuses it unless that route sets
    `path_params` (issue 11 defect 11)."""
    t = table(("/api", "http://a:1"), ("/api/admin", "http://b:2"))
    for raw in (b"/api/admin;x/y", b"/api/admin%3Bx/y", b"/api/admin%3bx", b"/api;v=1/admin"):
        path = canonical_path(raw)
        assert path.params, raw
        route = t.match(path)
        assert route is not None and route.config.prefix == "/api/admin", raw
    assert target(t, b"/api/admin;x/y") == "http://b:2/api/admin;x/y"  # sent as received
    assert not canonical_path(b"/api/admin/y").params
    assert not canonical_path(b"/api/a%2Cb").params
    for raw in (b"/api/;x/y", b"/api/%3Bx/y", b"/api/..;/admin", b"/api/.;x/admin"):
        with pytest.raises(PathRejected):
            canonical_path(raw)
