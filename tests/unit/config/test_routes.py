"""A frontend's route table as configured: BFF_ROUTES or [[routes]], every bad entry
named by its place."""

from __future__ import annotations

import pytest

from bff.config.load import load_settings
from tests.unit.config.env import BASE, problems


def test_routes_from_env_and_toml() -> None:
    s = load_settings({**BASE, "BFF_ROUTES": "/api=http://orders:8080,/b=http://b/v1"})
    assert [(r.prefix, r.upstream) for r in s.frontend.routes] == [
        ("/api", "http://orders:8080"),
        ("/b", "http://b/v1"),
    ]
    toml = {
        "routes": [
            {
                "prefix": "/api",
                "upstream": "http://o:1",
                "token": "optional",
                "csrf": False,
                "methods": ["get", "POST"],
                "retry_on_401": True,
            }
        ]
    }
    (route,) = load_settings(BASE, toml).frontend.routes
    assert route.token == "optional"
    assert route.csrf is False
    assert route.methods == frozenset({"GET", "POST"})
    assert route.retry_on_401 is True


@pytest.mark.parametrize(
    ("route", "fragment"),
    [
        ({"prefix": "api", "upstream": "http://o"}, "must start with '/'"),
        ({"prefix": "/api/", "upstream": "http://o"}, "plain path"),
        ({"prefix": "/a/../b", "upstream": "http://o"}, "plain path"),
        ({"prefix": "/bff", "upstream": "http://o"}, "shadow"),
        ({"prefix": "/api", "upstream": "ftp://o"}, "not an http(s) URL"),
        (
            {"prefix": "/api", "upstream": "http://o", "token": "maybe"},
            "user, optional, none, client, exchange",
        ),
        ({"prefix": "/api", "upstream": "http://o", "methods": ["FETCH"]}, "unknown method"),
        ({"prefix": "/api", "upstream": "http://o", "colour": 1}, "unknown route setting"),
        ({"prefix": "/api", "upstream": "http://o", "scopes": "a"}, "non-empty list of strings"),
        ({"prefix": "/api", "upstream": "http://o", "scopes": []}, "non-empty list of strings"),
        ({"prefix": "/api", "upstream": "http://o", "scopes": ['a"b']}, "not a scope token"),
        ({"prefix": "/api", "upstream": "http://o", "scopes": ["a b"]}, "not a scope token"),
        (
            {"prefix": "/api", "upstream": "http://o", "token": "none", "resource": "https://r"},
            "need token = user, client or exchange",
        ),
        (
            {"prefix": "/api", "upstream": "http://o", "token": "optional", "scopes": ["a"]},
            "need token = user, client or exchange",
        ),
    ],
)
def test_bad_routes_named(route: dict, fragment: str) -> None:
    found = problems(BASE, {"routes": [route]})
    assert any(fragment in p and p.startswith("routes[0]") for p in found), found


def test_route_resource_is_checked_as_a_resource_indicator() -> None:
    found = problems(
        BASE, {"routes": [{"prefix": "/a", "upstream": "http://o", "resource": "rel"}]}
    )
    assert any(p.startswith("routes[0].resource:") and "absolute URI" in p for p in found), found


@pytest.mark.parametrize("token", ["user", "client", "exchange"])
def test_route_resource_and_scopes_are_kept(token: str) -> None:
    route = {
        "prefix": "/orders",
        "upstream": "http://o",
        "token": token,
        "resource": "urn:example:orders",
        "scopes": ["orders:read", "orders:write", "orders:read"],
    }
    settings = load_settings(BASE, {"routes": [route]})
    (config,) = settings.frontend.routes
    assert config.token == token
    assert config.resource == "urn:example:orders"
    assert config.scopes == "orders:read orders:write"  # the scope parameter, deduplicated


def test_websocket_route_and_its_origins() -> None:
    toml = {
        "routes": [
            {"prefix": "/api", "upstream": "http://o:1"},
            {
                "prefix": "/live",
                "upstream": "http://chat:8080",
                "websocket": True,
                "origins": ["HTTPS://App.Example:443", "http://localhost:3000/"],
            },
        ]
    }
    plain, live = load_settings(BASE, toml).frontend.routes
    assert (plain.websocket, plain.origins) == (False, ())
    assert live.websocket is True
    assert live.origins == ("https://app.example", "http://localhost:3000")


@pytest.mark.parametrize(
    "origins",
    [["https://app.example/path"], ["app.example"], ["null"], "https://app.example", [1]],
)
def test_origins_must_be_origins(origins: object) -> None:
    route = {"prefix": "/live", "upstream": "http://o", "websocket": True, "origins": origins}
    assert any("routes[0].origins" in p for p in problems(BASE, {"routes": [route]}))
