"""One Frontend from the keys a collector reads: the flat BFF_* settings of the default
frontend, or any other mapping of the same keys under names of its own."""

from __future__ import annotations

import pytest

from bff.config.collector import Collector
from bff.config.load import load_settings
from bff.config.load_frontend import load_frontend
from tests.unit.config.env import BASE, problems


def test_https_public_url_gets_host_prefixed_cookie() -> None:
    s = load_settings({**BASE, "BFF_PUBLIC_URL": "https://app.example.com"})
    assert s.frontend.cookie_name == "__Host-bff-session"
    assert s.frontend.secure


def test_missing_issuer_is_named() -> None:
    env = dict(BASE)
    del env["BFF_ISSUER"]
    assert problems(env) == ["BFF_ISSUER: required"]


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://[::1]:8000", "http://127.9.0.1"])
def test_http_allowed_for_loopback(url: str) -> None:
    assert load_settings({**BASE, "BFF_PUBLIC_URL": url}).frontend.public_url == url


def test_http_issuer_refused_unless_loopback() -> None:
    assert any("BFF_ISSUER" in p for p in problems({**BASE, "BFF_ISSUER": "http://idp.example"}))


def test_prompt_setting() -> None:
    assert load_settings({**BASE, "BFF_PROMPT": "consent"}).frontend.prompt == "consent"
    assert load_settings(BASE).frontend.prompt is None
    found = problems({**BASE, "BFF_PROMPT": "consent&evil=1"})
    assert any(p.startswith("BFF_PROMPT") for p in found)
    assert any("cannot be combined" in p for p in problems({**BASE, "BFF_PROMPT": "none login"}))


# Issue 11 defect 1: RFC 8707 §2 allows any absolute URI without a fragment.
@pytest.mark.parametrize(
    "resource",
    [
        "urn:example:api",
        "api://orders",
        "https://api.example.com",
        "https://api.example.com/v1?x=1",
    ],
)
def test_resource_accepts_any_absolute_uri(resource: str) -> None:
    assert load_settings({**BASE, "BFF_RESOURCE": resource}).frontend.resource == resource


@pytest.mark.parametrize(
    ("resource", "fragment"),
    [
        ("/api", "not an absolute URI"),
        ("orders", "not an absolute URI"),
        ("api.example.com/x", "not an absolute URI"),
        ("https://api.example.com#frag", "fragment"),
        ("urn:example:api#x", "fragment"),
        ("urn:with space", "not an absolute URI"),
        ("https:///nohost", "no host"),
    ],
)
def test_resource_refuses_relative_or_fragment_naming_the_setting(
    resource: str, fragment: str
) -> None:
    found = problems({**BASE, "BFF_RESOURCE": resource})
    assert any(p.startswith("BFF_RESOURCE:") and fragment in p for p in found), found


def test_a_second_frontend_is_data_read_under_its_own_names() -> None:
    # The shape a later `[[frontends]]` table uses: the same keys, another collector.
    env = {
        **BASE,  # the default frontend's: not the shop's
        "BFF_FRONTEND_SHOP_ISSUER": "https://login.shop.example",
        "BFF_FRONTEND_SHOP_CLIENT_SECRET": "shop-secret",
    }
    table = {"client_id": "shop-spa", "public_url": "https://shop.example", "routes": []}
    c = Collector(env, table, {}, env_prefix="BFF_FRONTEND_SHOP_")
    shop = load_frontend(c, "shop")
    assert c.problems == []
    assert (shop.name, shop.issuer, shop.client_id) == (
        "shop",
        "https://login.shop.example",
        "shop-spa",
    )
    assert shop.client_secret == "shop-secret"
    assert shop.secure and shop.routes == ()
    assert c.sources["issuer"] == "BFF_FRONTEND_SHOP_ISSUER"
    assert c.sources["client_id"] == "config file"


def test_a_second_frontends_problems_carry_its_names() -> None:
    c = Collector({"BFF_ISSUER": "https://idp.example.com"}, {}, {}, env_prefix="BFF_FRONTEND_X_")
    load_frontend(c, "x")
    assert c.problems == [
        "BFF_FRONTEND_X_ISSUER: required",
        "BFF_FRONTEND_X_CLIENT_ID: required",
        "BFF_FRONTEND_X_CLIENT_SECRET: required (or BFF_FRONTEND_X_CLIENT_SECRET_FILE)",
    ]


def test_session_record_format_is_3_or_2_for_a_roll_over() -> None:
    assert load_settings(BASE).frontend.session_record_format == 3
    env = {**BASE, "BFF_SESSION_RECORD_FORMAT": "2"}
    assert load_settings(env).frontend.session_record_format == 2
    for bad in ("1", "4"):
        found = problems({**BASE, "BFF_SESSION_RECORD_FORMAT": bad})
        assert any(p.startswith("BFF_SESSION_RECORD_FORMAT") for p in found)
