"""The model: a Frontend is the unit of configuration, Settings holds one or more of
them (the first is the default) plus the process-wide settings."""

from __future__ import annotations

import dataclasses
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from bff.config.load import load_settings
from bff.config.model import Frontend, RouteConfig, Settings
from bff.oidc.client import OidcClient
from tests.unit.config.env import BASE, KEY

SHOP = Frontend(
    name="shop",
    public_url="https://shop.example",
    issuer="https://login.shop.example",
    client_id="shop-spa",
    client_secret="shop-secret",
    scopes="openid shop",
    prompt="consent",
    routes=(RouteConfig(prefix="/orders", upstream="http://orders:8080"),),
    cookie_name="__Host-shop",
    idle_timeout=60,
    post_logout_redirect="/bye",
)


def two_frontends() -> Settings:
    default = load_settings({**BASE, "BFF_PUBLIC_URL": "https://app.example"})
    return dataclasses.replace(default, frontends=(default.frontend, SHOP))


def test_settings_keeps_two_frontends_apart_and_the_first_is_the_default() -> None:
    s = two_frontends()
    app, shop = s.frontends
    assert s.frontend is app and app.name == "default"
    assert (app.issuer, app.client_id, app.cookie_name) == (
        "https://idp.example.com",
        "spa",
        "__Host-bff-session",
    )
    assert (shop.issuer, shop.client_id, shop.cookie_name) == (
        "https://login.shop.example",
        "shop-spa",
        "__Host-shop",
    )
    assert app.routes == () and [r.prefix for r in shop.routes] == ["/orders"]
    assert (app.idle_timeout, shop.idle_timeout) == (1800, 60)
    assert app.redirect_uri == "https://app.example/bff/callback"
    assert shop.redirect_uri == "https://shop.example/bff/callback"
    assert shop.login_cookie_name == "__Host-shop-login"
    assert shop.post_logout_redirect_uri == "https://shop.example/bye"
    # The process-wide settings are the process's, not a frontend's.
    assert s.secret_keys == (KEY,) and not hasattr(shop, "secret_keys")
    assert not hasattr(s, "cookie_name") and not hasattr(s, "issuer")


def test_no_secret_in_the_repr_of_any_frontend() -> None:
    shown = repr(two_frontends())
    assert "shop-secret" not in shown and "s3cret-value" not in shown and KEY not in shown


def test_settings_needs_one_frontend_or_more_each_named_once() -> None:
    with pytest.raises(ValueError, match="at least one frontend"):
        Settings(frontends=(), secret_keys=(KEY,))
    with pytest.raises(ValueError, match="unique"):
        Settings(frontends=(SHOP, SHOP), secret_keys=(KEY,))


async def _authorization_query(frontend: Frontend) -> dict[str, list[str]]:
    def provider(request: httpx.Request) -> httpx.Response:
        issuer = f"https://{request.url.host}"
        assert request.url.path == "/.well-known/openid-configuration"
        return httpx.Response(
            200,
            json={
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/auth",
                "token_endpoint": f"{issuer}/token",
                "jwks_uri": f"{issuer}/jwks",
            },
        )

    async with httpx.AsyncClient(transport=httpx.MockTransport(provider)) as http:
        client = OidcClient.for_frontend(frontend, http=http)
        url = await client.authorization_url(state="st", nonce="no", code_challenge="ch")
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == frontend.issuer
    return parse_qs(parts.query)


@pytest.mark.anyio
async def test_each_frontends_client_logs_in_with_that_frontends_values() -> None:
    app, shop = two_frontends().frontends
    for frontend, scope in ((app, "openid profile email offline_access"), (shop, "openid shop")):
        query = await _authorization_query(frontend)
        assert query["client_id"] == [frontend.client_id]
        assert query["redirect_uri"] == [frontend.redirect_uri]
        assert query["scope"] == [scope]
    assert "prompt" not in await _authorization_query(app)
    assert (await _authorization_query(shop))["prompt"] == ["consent"]
