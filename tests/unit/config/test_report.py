"""What check-config shows (the user's TOML keys, secrets masked, where each value came
from) and the start-up warnings about a valid configuration."""

from __future__ import annotations

import dataclasses

import pytest

from bff.config.known import KNOWN_SETTINGS
from bff.config.load import load_settings
from bff.config.model import Settings
from bff.config.report import bind_warnings, cookie_warnings, effective_config, masked_config
from tests.unit.config.env import BASE, KEY


def _settings(**env: str) -> Settings:
    return load_settings({**BASE, **env})


def test_masked_output_hides_secrets() -> None:
    env = {**BASE, "BFF_SESSION_STORE": "redis://:hunter2pass@127.0.0.1:6379/0"}
    masked = repr(masked_config(load_settings(env)))
    assert "s3cret-value" not in masked
    assert KEY not in masked
    assert "hunter2pass" not in masked
    assert "s3cret-value" not in repr(load_settings(env))


def test_masked_config_keeps_the_table_order_and_reads_the_default_frontend() -> None:
    s = _settings(BFF_ROUTES="/api=http://orders:8080", BFF_COOKIE_NAME="sid")
    masked = masked_config(s)
    expected = [k.key for k in KNOWN_SETTINGS if k.key != "admin_token"]
    assert list(masked) == expected
    assert masked["cookie_name"] == "sid" and masked["client_secret"] == "****"
    assert masked["routes"] == [
        {
            "prefix": "/api",
            "upstream": "http://orders:8080",
            "token": "user",
            "csrf": True,
            "retry_on_401": False,
            "path_params": False,
        }
    ]
    assert masked["secret_key"] == "****"
    two_keys = _settings(BFF_SECRET_KEY=f"{KEY},{'j' * 32}")
    assert masked_config(two_keys)["secret_key"] == "**** (2 keys)"


def test_https_cookie_without_host_prefix_is_worth_a_warning() -> None:
    https = {**BASE, "BFF_PUBLIC_URL": "https://app.example.com"}
    assert cookie_warnings(load_settings(https)) == []
    (warning,) = cookie_warnings(load_settings({**https, "BFF_COOKIE_NAME": "session"}))
    assert "__Host-" in warning and "'session'" in warning
    assert cookie_warnings(load_settings({**BASE, "BFF_COOKIE_NAME": "session"})) == []


def test_check_config_names_are_toml_keys_with_env_names_and_sources() -> None:
    s = load_settings(
        {**BASE, "BFF_SESSION_IDLE_TIMEOUT": "60"},
        {"session_max_lifetime": 3600},
        overrides={"port": 8001},
    )
    rows = {key: (env, value, source) for key, env, value, source in effective_config(s)}
    assert rows["session_idle_timeout"] == (
        "BFF_SESSION_IDLE_TIMEOUT",
        60,
        "BFF_SESSION_IDLE_TIMEOUT",
    )
    assert rows["session_max_lifetime"] == ("BFF_SESSION_MAX_LIFETIME", 3600, "config file")
    assert rows["port"] == ("BFF_PORT", 8001, "--port")
    assert rows["secret_key"] == ("BFF_SECRET_KEY", "****", "BFF_SECRET_KEY")
    assert rows["refresh_skew"][2] == "default"
    # No internal names: every key is one a user can write in TOML.
    known = {k.key for k in KNOWN_SETTINGS}
    assert set(rows) <= known and "idle_timeout" not in rows and "secret_keys" not in rows
    shown = repr(masked_config(s))
    assert KEY not in shown and "s3cret-value" not in shown


def test_bind_warning_when_port_differs_from_public_url() -> None:
    (warning,) = bind_warnings(_settings(BFF_PORT="8001"))
    assert "port 8001" in warning and "names port 8000" in warning
    assert "BFF_TRUSTED_PROXIES" in warning


@pytest.mark.parametrize(
    "env",
    [
        {},  # defaults: 127.0.0.1:8000 and http://localhost:8000
        {"BFF_PORT": "8001", "BFF_TRUSTED_PROXIES": "127.0.0.1"},  # a proxy maps the port
        {"BFF_PORT": "8080", "BFF_PUBLIC_URL": "https://app.example.com"},  # TLS in front
        {"BFF_HOST": "0.0.0.0"},  # every address includes loopback
        {"BFF_PORT": "80", "BFF_PUBLIC_URL": "http://localhost"},
    ],
)
def test_no_bind_warning_when_it_can_work(env: dict[str, str]) -> None:
    assert bind_warnings(_settings(**env)) == []


def test_bind_warning_when_listening_on_a_non_loopback_address_for_a_loopback_url() -> None:
    (warning,) = bind_warnings(_settings(BFF_HOST="192.0.2.10"))
    assert "192.0.2.10" in warning and "loopback" in warning


def test_warnings_cover_every_frontend() -> None:
    s = _settings(BFF_PUBLIC_URL="https://app.example.com")
    plain = dataclasses.replace(
        s.frontend, name="dev", public_url="http://localhost:9000", cookie_name="dev"
    )
    tossable = dataclasses.replace(s.frontend, name="shop", cookie_name="shop")
    s = dataclasses.replace(s, frontends=(s.frontend, plain, tossable))
    (bind,) = bind_warnings(s)
    assert "http://localhost:9000 names port 9000" in bind
    (cookie,) = cookie_warnings(s)
    assert "'shop'" in cookie
