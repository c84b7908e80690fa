"""load_settings: TOML plus `BFF_*` (plus command-line overrides) -> Settings, every
problem named by its setting and reported at once; the process-wide settings."""

from __future__ import annotations

import pytest

from bff.config.known import unknown_env_warnings
from bff.config.load import load_settings, read_toml
from bff.config.report import masked_config
from bff.errors import ConfigError
from tests.unit.config.env import BASE, problems


def test_minimal_config_has_spec_defaults() -> None:
    s = load_settings(BASE)
    f = s.frontend
    assert f.scopes == "openid profile email offline_access"
    assert f.public_url == "http://localhost:8000"
    assert f.redirect_uri == "http://localhost:8000/bff/callback"
    assert s.session_store == "memory://"
    assert f.cookie_name == "bff-session"
    assert f.cookie_samesite == "strict"
    assert (f.idle_timeout, f.max_lifetime, f.refresh_skew) == (1800, 86400, 30)
    assert s.upstream_timeout == 30.0
    assert f.post_logout_redirect == "/"


def test_the_flat_settings_describe_one_default_frontend() -> None:
    s = load_settings({**BASE, "BFF_PUBLIC_URL": "https://app.example.com"})
    assert [f.name for f in s.frontends] == ["default"]
    assert s.frontend is s.frontends[0]
    assert (s.frontend.issuer, s.frontend.client_id) == ("https://idp.example.com", "spa")


def test_env_wins_over_toml() -> None:
    s = load_settings({**BASE, "BFF_SCOPES": "openid email"}, {"scopes": "openid profile"})
    assert s.frontend.scopes == "openid email"


def test_every_problem_reported_at_once_each_naming_its_setting() -> None:
    found = problems(
        {
            "BFF_ISSUER": "not a url",
            "BFF_CLIENT_ID": "spa",
            "BFF_SECRET_KEY": "short",
            "BFF_PUBLIC_URL": "http://app.example.com",
            "BFF_SESSION_STORE": "memory://",
            "BFF_WORKERS": "2",
            "BFF_ROUTES": "api=http://orders:8080",
        }
    )
    text = "\n".join(found)
    assert "BFF_ISSUER" in text
    assert "BFF_CLIENT_SECRET: required" in text
    assert "BFF_SECRET_KEY: key 1 is 5 characters" in text
    assert "BFF_PUBLIC_URL: plain http is allowed only for localhost" in text
    assert "memory:// cannot be shared by several workers" in text
    assert "BFF_ROUTES.prefix: must start with '/'" in text
    assert len(found) >= 6


def test_secret_key_rotation_list() -> None:
    s = load_settings({**BASE, "BFF_SECRET_KEY": f"{'a' * 32}, {'b' * 40}"})
    assert s.secret_keys == ("a" * 32, "b" * 40)


def test_secrets_from_files(tmp_path) -> None:
    (tmp_path / "secret").write_text("from-a-file\n")
    env = {k: v for k, v in BASE.items() if k != "BFF_CLIENT_SECRET"}
    env["BFF_CLIENT_SECRET_FILE"] = str(tmp_path / "secret")
    assert load_settings(env).frontend.client_secret == "from-a-file"


def test_session_store_url_from_a_file_is_masked_and_not_a_typo(tmp_path) -> None:
    # A Redis URL carries the password: operators keep it in a secret file, not the env.
    (tmp_path / "store").write_text("redis://:hunter2pass@127.0.0.1:6379/0\n")
    env = {**BASE, "BFF_SESSION_STORE_FILE": str(tmp_path / "store")}
    settings = load_settings(env)
    assert settings.session_store == "redis://:hunter2pass@127.0.0.1:6379/0"
    assert "hunter2pass" not in repr(masked_config(settings))
    assert unknown_env_warnings(env) == []
    assert any(
        "BFF_SESSION_STORE_FILE" in p
        for p in problems({**BASE, "BFF_SESSION_STORE_FILE": str(tmp_path / "missing")})
    )


def test_bad_numbers_and_enums() -> None:
    found = problems(
        {
            **BASE,
            "BFF_SESSION_IDLE_TIMEOUT": "soon",
            "BFF_COOKIE_SAMESITE": "none",
            "BFF_TRUSTED_PROXIES": "10.0.0.0/8,nonsense",
            "BFF_POST_LOGOUT_REDIRECT": "https://evil.example",
        }
    )
    text = "\n".join(found)
    assert "BFF_SESSION_IDLE_TIMEOUT: must be a number" in text
    assert "BFF_COOKIE_SAMESITE" in text
    assert "'nonsense' is not an IP address" in text
    assert "BFF_POST_LOGOUT_REDIRECT" in text


def test_unknown_store_scheme() -> None:
    assert any(
        "BFF_SESSION_STORE" in p for p in problems({**BASE, "BFF_SESSION_STORE": "mongo://x"})
    )


def test_unreadable_toml_named(tmp_path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("issuer = ")
    with pytest.raises(ConfigError, match="invalid TOML"):
        read_toml(str(bad))
    with pytest.raises(ConfigError, match="cannot be read"):
        read_toml(str(tmp_path / "missing.toml"))


def test_access_log_setting() -> None:
    assert load_settings(BASE).access_log is True
    assert load_settings({**BASE, "BFF_ACCESS_LOG": "false"}).access_log is False
    assert load_settings(BASE, {"access_log": False}).access_log is False
    found = problems({**BASE, "BFF_ACCESS_LOG": "sometimes"})
    assert any(p.startswith("BFF_ACCESS_LOG") for p in found)


def test_edge_bounds_have_documented_defaults() -> None:
    s = load_settings(BASE)
    assert (s.login_pending_max, s.login_pending_total) == (100, 10000)
    assert (s.max_header_bytes, s.header_read_timeout) == (32768, 10.0)
    assert s.admin_listen == "" and s.admin_address is None


@pytest.mark.parametrize(
    ("value", "address"),
    [
        ("127.0.0.1:9091", ("127.0.0.1", 9091)),
        ("0.0.0.0:9091", ("0.0.0.0", 9091)),
        ("[::1]:9091", ("::1", 9091)),
        ("localhost:1", ("localhost", 1)),
    ],
)
def test_admin_listen_is_host_and_port(value: str, address: tuple[str, int]) -> None:
    assert load_settings({**BASE, "BFF_ADMIN_LISTEN": value}).admin_address == address


@pytest.mark.parametrize(
    "value", ["9091", "host:", ":9091", "host:99999", "host:port", "[::1:9091", "a b:1"]
)
def test_bad_admin_listen_is_named(value: str) -> None:
    found = problems({**BASE, "BFF_ADMIN_LISTEN": value})
    assert any(p.startswith("BFF_ADMIN_LISTEN:") for p in found), found


def test_admin_listen_may_not_take_the_main_port() -> None:
    found = problems({**BASE, "BFF_ADMIN_LISTEN": "0.0.0.0:8000"})
    assert any("main listener" in p for p in found), found
    assert load_settings({**BASE, "BFF_ADMIN_LISTEN": "127.0.0.2:8000"}).admin_listen


def test_bad_edge_bounds_are_named() -> None:
    found = problems(
        {
            **BASE,
            "BFF_LOGIN_PENDING_MAX": "0",
            "BFF_LOGIN_PENDING_TOTAL": "many",
            "BFF_MAX_HEADER_BYTES": "100",
            "BFF_HEADER_READ_TIMEOUT": "0",
            "BFF_BODY_READ_TIMEOUT": "-1",
        }
    )
    for name in (
        "BFF_LOGIN_PENDING_MAX",
        "BFF_LOGIN_PENDING_TOTAL",
        "BFF_MAX_HEADER_BYTES",
        "BFF_HEADER_READ_TIMEOUT",
        "BFF_BODY_READ_TIMEOUT",
    ):
        assert any(p.startswith(name) for p in found), (name, found)


@pytest.mark.parametrize("value", ["inf", "nan", "-inf", "Infinity", "1e999"])
def test_durations_must_be_finite(value: str) -> None:
    """`float("inf")` would be no bound at all (security review finding 6)."""
    names = ("BFF_UPSTREAM_TIMEOUT", "BFF_HEADER_READ_TIMEOUT", "BFF_UPSTREAM_QUEUE_TIMEOUT")
    found = problems({**BASE, **dict.fromkeys(names, value)})
    for name in names:
        assert any(p.startswith(name) and "finite" in p for p in found), (name, found)


def test_numbers_in_toml_must_be_finite() -> None:
    found = problems(BASE, {"upstream_timeout": float("inf"), "login_pending_max": float("inf")})
    for name in ("upstream_timeout", "login_pending_max"):
        assert any(p.startswith(name) for p in found), (name, found)


def test_upstream_pool_settings_and_path_params() -> None:
    s = load_settings(BASE)
    assert s.upstream_max_connections == 256
    assert s.upstream_max_connections_per_session == 32
    assert s.upstream_queue_timeout == 1.0
    route = {"prefix": "/api", "upstream": "http://orders:8080"}
    s = load_settings(
        {**BASE, "BFF_UPSTREAM_MAX_CONNECTIONS_PER_SESSION": "4"},
        {
            "upstream_queue_timeout": 0.5,
            "routes": [{**route, "path_params": True}, {**route, "prefix": "/b"}],
        },
    )
    assert s.upstream_max_connections_per_session == 4
    assert s.upstream_queue_timeout == 0.5
    assert [r.path_params for r in s.frontend.routes] == [True, False]
    found = problems(
        {**BASE, "BFF_UPSTREAM_MAX_CONNECTIONS": "0", "BFF_UPSTREAM_QUEUE_TIMEOUT": "-1"},
        {"routes": [{**route, "path_params": "sometimes"}]},
    )
    assert any(p.startswith("BFF_UPSTREAM_MAX_CONNECTIONS: must be at least 1") for p in found)
    assert any(p.startswith("BFF_UPSTREAM_QUEUE_TIMEOUT: must be at least 0") for p in found)
    assert "routes[0].path_params: must be true or false" in found


def test_upstream_transport_setting() -> None:
    assert load_settings(BASE).upstream_transport == "lean"
    s = load_settings({**BASE, "BFF_UPSTREAM_TRANSPORT": "aiohttp"})
    assert s.upstream_transport == "aiohttp"
    assert load_settings(BASE, {"upstream_transport": "aiohttp"}).upstream_transport == "aiohttp"
    found = problems({**BASE, "BFF_UPSTREAM_TRANSPORT": "curl"})
    assert "BFF_UPSTREAM_TRANSPORT: must be lean or aiohttp" in found


def test_observability_and_shutdown_defaults() -> None:
    s = load_settings(BASE)
    assert (s.log_format, s.tracing) == ("text", "off")
    assert (s.shutdown_drain_delay, s.shutdown_timeout) == (5.0, 30.0)


def test_observability_and_shutdown_from_env_and_toml() -> None:
    env = {
        **BASE,
        "BFF_LOG_FORMAT": "JSON",
        "BFF_TRACING": "otlp",
        "BFF_SHUTDOWN_DRAIN_DELAY": "0",
        "BFF_SHUTDOWN_TIMEOUT": "12.5",
    }
    s = load_settings(env)
    assert (s.log_format, s.tracing, s.shutdown_drain_delay, s.shutdown_timeout) == (
        "json",
        "otlp",
        0.0,
        12.5,
    )
    toml = {"log_format": "json", "tracing": "off", "shutdown_drain_delay": 2}
    s = load_settings(BASE, toml)
    assert (s.log_format, s.tracing, s.shutdown_drain_delay) == ("json", "off", 2.0)


def test_bad_observability_and_shutdown_values_are_named() -> None:
    env = {
        **BASE,
        "BFF_LOG_FORMAT": "xml",
        "BFF_TRACING": "jaeger",
        "BFF_SHUTDOWN_DRAIN_DELAY": "-1",
        "BFF_SHUTDOWN_TIMEOUT": "soon",
    }
    with pytest.raises(ConfigError) as info:
        load_settings(env)
    found = " ".join(info.value.problems)
    for name in (
        "BFF_LOG_FORMAT",
        "BFF_TRACING",
        "BFF_SHUTDOWN_DRAIN_DELAY",
        "BFF_SHUTDOWN_TIMEOUT",
    ):
        assert name in found
