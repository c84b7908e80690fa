"""`client_auth`, `client_key_file` and `dpop` settings: a readable private key with its
`kid` for private_key_jwt, never together with a secret; the flag for DPoP."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from joserfc.jwk import RSAKey

from bff.config.load import load_settings
from bff.config.report import masked_config
from tests.unit.config.env import BASE, problems


@pytest.fixture(scope="module")
def rsa() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "k-1"}, private=True)


@pytest.fixture
def key_env(tmp_path: Path, rsa: RSAKey) -> dict[str, str]:
    path = tmp_path / "client.jwk"
    path.write_text(json.dumps(rsa.as_dict(private=True)))
    env = {k: v for k, v in BASE.items() if k != "BFF_CLIENT_SECRET"}
    return {**env, "BFF_CLIENT_AUTH": "private_key_jwt", "BFF_CLIENT_KEY_FILE": str(path)}


def test_private_key_jwt_with_a_jwk(key_env: dict[str, str]) -> None:
    frontend = load_settings(key_env).frontend
    assert frontend.client_auth == "private_key_jwt"
    assert frontend.client_key_file == key_env["BFF_CLIENT_KEY_FILE"]
    assert frontend.client_secret == ""


def test_private_key_jwt_with_a_pem_in_toml(tmp_path: Path, rsa: RSAKey) -> None:
    path = tmp_path / "client.pem"
    path.write_bytes(rsa.as_pem(private=True))
    env = {k: v for k, v in BASE.items() if k != "BFF_CLIENT_SECRET"}
    toml = {"client_auth": "private_key_jwt", "client_key_file": str(path)}
    assert load_settings(env, toml).frontend.client_key_file == str(path)


def test_secret_together_with_private_key_jwt_is_refused(key_env: dict[str, str]) -> None:
    found = problems({**key_env, "BFF_CLIENT_SECRET": "s"})
    assert found == [
        "BFF_CLIENT_SECRET: not used with private_key_jwt (the key authenticates the "
        "client); remove it"
    ]


def test_key_file_missing_unreadable_unparseable_or_without_kid(
    key_env: dict[str, str], tmp_path: Path
) -> None:
    env = {k: v for k, v in key_env.items() if k != "BFF_CLIENT_KEY_FILE"}
    assert problems(env) == ["BFF_CLIENT_KEY_FILE: required with private_key_jwt"]
    gone = str(tmp_path / "nope.pem")
    assert problems({**env, "BFF_CLIENT_KEY_FILE": gone}) == [
        f"BFF_CLIENT_KEY_FILE: cannot read {gone} (No such file or directory)"
    ]
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("hello")
    [problem] = problems({**env, "BFF_CLIENT_KEY_FILE": str(garbage)})
    assert problem.startswith("BFF_CLIENT_KEY_FILE:") and "neither a JWK" in problem
    no_kid = tmp_path / "nokid.jwk"
    no_kid.write_text(json.dumps(RSAKey.generate_key(2048, private=True).as_dict(private=True)))
    [problem] = problems({**env, "BFF_CLIENT_KEY_FILE": str(no_kid)})
    assert problem.endswith("the JWK has no 'kid'")


def test_unknown_method_and_stray_key_file_are_refused(key_env: dict[str, str]) -> None:
    assert problems({**BASE, "BFF_CLIENT_AUTH": "tls_client_auth"}) == [
        "BFF_CLIENT_AUTH: must be one of client_secret_basic, client_secret_post, private_key_jwt"
    ]
    stray = {**BASE, "BFF_CLIENT_KEY_FILE": key_env["BFF_CLIENT_KEY_FILE"]}
    assert problems(stray) == [
        'BFF_CLIENT_KEY_FILE: used only with BFF_CLIENT_AUTH="private_key_jwt"'
    ]


def test_secret_methods_still_need_the_secret() -> None:
    env = {k: v for k, v in BASE.items() if k != "BFF_CLIENT_SECRET"}
    assert problems({**env, "BFF_CLIENT_AUTH": "client_secret_post"}) == [
        "BFF_CLIENT_SECRET: required (or BFF_CLIENT_SECRET_FILE)"
    ]
    settings = load_settings({**BASE, "BFF_CLIENT_AUTH": "client_secret_post"})
    assert settings.frontend.client_auth == "client_secret_post"
    assert load_settings(BASE).frontend.client_auth == ""


def test_dpop_flag_on_frontend_and_route() -> None:
    assert load_settings({**BASE, "BFF_DPOP": "true"}).frontend.uses_dpop
    assert not load_settings(BASE).frontend.uses_dpop
    routes = [{"prefix": "/api", "upstream": "http://127.0.0.1:9000", "dpop": True}]
    frontend = load_settings(BASE, {"routes": routes}).frontend
    assert frontend.routes[0].dpop and not frontend.dpop and frontend.uses_dpop
    bad = [{"prefix": "/api", "upstream": "http://127.0.0.1:9000", "dpop": "maybe"}]
    assert problems(BASE, {"routes": bad}) == ["routes[0].dpop: must be true or false"]


def test_check_config_shows_the_key_file_no_secret_and_the_dpop_route(
    key_env: dict[str, str],
) -> None:
    routes = [{"prefix": "/api", "upstream": "http://127.0.0.1:9000", "dpop": True}]
    shown = masked_config(load_settings({**key_env, "BFF_DPOP": "1"}, {"routes": routes}))
    assert shown["client_secret"] is None  # not configured, not "****"
    assert shown["client_auth"] == "private_key_jwt"
    assert shown["client_key_file"] == key_env["BFF_CLIENT_KEY_FILE"]
    assert shown["dpop"] is True
    assert shown["routes"][0]["dpop"] is True
    assert masked_config(load_settings(BASE))["client_secret"] == "****"


UP = "http://127.0.0.1:9000"


@pytest.mark.parametrize(
    "extra",
    [
        {"resource": "https://orders.example/"},
        {"scopes": ["orders:read"]},
        {"token": "client"},
        {"token": "exchange", "resource": "https://partner.example/"},
    ],
)
def test_dpop_refuses_per_route_tokens(extra: dict[str, object]) -> None:
    routes = [{"prefix": "/orders", "upstream": UP, **extra}]
    assert problems({**BASE, "BFF_DPOP": "true"}, {"routes": routes}) == [
        "route '/orders': per-route tokens (resource, scopes, token = client or exchange) "
        "are not supported with DPoP (BFF_DPOP is on); remove one of them"
    ]
    # a route's dpop gives every session a key: another route's own token is refused too
    both = [{"prefix": "/api", "upstream": UP, "dpop": True}, *routes]
    [problem] = problems(BASE, {"routes": both})
    assert problem.startswith("route '/orders': per-route tokens") and "a route's dpop" in problem
    assert load_settings(BASE, {"routes": routes}).frontend.routes[0].prefix == "/orders"


def test_dpop_refuses_websocket_routes_unless_they_send_no_token() -> None:
    routes = [{"prefix": "/live", "upstream": UP, "websocket": True}]
    assert problems({**BASE, "BFF_DPOP": "true"}, {"routes": routes}) == [
        "route '/live': websocket = true is not supported with DPoP (BFF_DPOP is on: the "
        'upstream handshake would need a proof); remove one of them, or token = "none"'
    ]
    anonymous = [{**routes[0], "token": "none"}]
    frontend = load_settings({**BASE, "BFF_DPOP": "true"}, {"routes": anonymous}).frontend
    assert frontend.routes[0].websocket and frontend.uses_dpop
