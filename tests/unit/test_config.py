from __future__ import annotations

import pytest

from bff.config.settings import cookie_warnings, load_settings, read_toml, unknown_env_warnings
from bff.errors import ConfigError

KEY = "k" * 32
BASE = {
    "BFF_ISSUER": "https://idp.example.com",
    "BFF_CLIENT_ID": "spa",
    "BFF_CLIENT_SECRET": "s3cret-value",
    "BFF_SECRET_KEY": KEY,
}


def problems(env: dict[str, str], toml: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(env, toml)
    return info.value.problems


def test_minimal_config_has_spec_defaults() -> None:
    s = load_settings(BASE)
    assert s.scopes == "openid profile email offline_access"
    assert s.public_url == "http://localhost:8000"
    assert s.redirect_uri == "http://localhost:8000/bff/callback"
    assert s.session_store == "memory://"
    assert s.cookie_name == "bff-session"
    assert s.cookie_samesite == "strict"
    assert (s.idle_timeout, s.max_lifetime, s.refresh_skew) == (1800, 86400, 30)
    assert s.upstream_timeout == 30.0
    assert s.post_logout_redirect == "/"


def test_https_public_url_gets_host_prefixed_cookie() -> None:
    s = load_settings({**BASE, "BFF_PUBLIC_URL": "https://app.example.com"})
    assert s.cookie_name == "__Host-bff-session"
    assert s.secure


def test_env_wins_over_toml() -> None:
    s = load_settings({**BASE, "BFF_SCOPES": "openid email"}, {"scopes": "openid profile"})
    assert s.scopes == "openid email"


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


def test_missing_issuer_is_named() -> None:
    env = dict(BASE)
    del env["BFF_ISSUER"]
    assert problems(env) == ["BFF_ISSUER: required"]


@pytest.mark.parametrize("url", ["http://127.0.0.1:8000", "http://[::1]:8000", "http://127.9.0.1"])
def test_http_allowed_for_loopback(url: str) -> None:
    assert load_settings({**BASE, "BFF_PUBLIC_URL": url}).public_url == url


def test_http_issuer_refused_unless_loopback() -> None:
    assert any("BFF_ISSUER" in p for p in problems({**BASE, "BFF_ISSUER": "http://idp.example"}))


def test_secret_key_rotation_list() -> None:
    s = load_settings({**BASE, "BFF_SECRET_KEY": f"{'a' * 32}, {'b' * 40}"})
    assert s.secret_keys == ("a" * 32, "b" * 40)


def test_secrets_from_files(tmp_path) -> None:
    (tmp_path / "secret").write_text("from-a-file\n")
    env = {k: v for k, v in BASE.items() if k != "BFF_CLIENT_SECRET"}
    env["BFF_CLIENT_SECRET_FILE"] = str(tmp_path / "secret")
    assert load_settings(env).client_secret == "from-a-file"


def test_session_store_url_from_a_file_is_masked_and_not_a_typo(tmp_path) -> None:
    # A Redis URL carries the password: operators keep it in a secret file, not the env.
    (tmp_path / "store").write_text("redis://:hunter2pass@127.0.0.1:6379/0\n")
    env = {**BASE, "BFF_SESSION_STORE_FILE": str(tmp_path / "store")}
    settings = load_settings(env)
    assert settings.session_store == "redis://:hunter2pass@127.0.0.1:6379/0"
    assert "hunter2pass" not in repr(settings.masked())
    assert unknown_env_warnings(env) == []
    assert any(
        "BFF_SESSION_STORE_FILE" in p
        for p in problems({**BASE, "BFF_SESSION_STORE_FILE": str(tmp_path / "missing")})
    )


def test_https_cookie_without_host_prefix_is_worth_a_warning() -> None:
    https = {**BASE, "BFF_PUBLIC_URL": "https://app.example.com"}
    assert cookie_warnings(load_settings(https)) == []
    (warning,) = cookie_warnings(load_settings({**https, "BFF_COOKIE_NAME": "session"}))
    assert "__Host-" in warning and "'session'" in warning
    assert cookie_warnings(load_settings({**BASE, "BFF_COOKIE_NAME": "session"})) == []


def test_masked_output_hides_secrets() -> None:
    env = {**BASE, "BFF_SESSION_STORE": "redis://:hunter2pass@127.0.0.1:6379/0"}
    masked = repr(load_settings(env).masked())
    assert "s3cret-value" not in masked
    assert KEY not in masked
    assert "hunter2pass" not in masked
    assert "s3cret-value" not in repr(load_settings(env))


def test_routes_from_env_and_toml() -> None:
    s = load_settings({**BASE, "BFF_ROUTES": "/api=http://orders:8080,/b=http://b/v1"})
    assert [(r.prefix, r.upstream) for r in s.routes] == [
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
    (route,) = load_settings(BASE, toml).routes
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
        ({"prefix": "/api", "upstream": "http://o", "token": "maybe"}, "user, optional or none"),
        ({"prefix": "/api", "upstream": "http://o", "methods": ["FETCH"]}, "unknown method"),
        ({"prefix": "/api", "upstream": "http://o", "colour": 1}, "unknown route setting"),
        ({"prefix": "/api", "upstream": "http://o", "scopes": "a"}, "not supported yet"),
        ({"prefix": "/api", "upstream": "http://o", "resource": "https://r"}, "not supported yet"),
    ],
)
def test_bad_routes_named(route: dict, fragment: str) -> None:
    found = problems(BASE, {"routes": [route]})
    assert any(fragment in p and p.startswith("routes[0]") for p in found), found


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


def test_prompt_setting() -> None:
    assert load_settings({**BASE, "BFF_PROMPT": "consent"}).prompt == "consent"
    assert load_settings(BASE).prompt is None
    found = problems({**BASE, "BFF_PROMPT": "consent&evil=1"})
    assert any(p.startswith("BFF_PROMPT") for p in found)
    assert any("cannot be combined" in p for p in problems({**BASE, "BFF_PROMPT": "none login"}))


def test_access_log_setting() -> None:
    assert load_settings(BASE).access_log is True
    assert load_settings({**BASE, "BFF_ACCESS_LOG": "false"}).access_log is False
    assert load_settings(BASE, {"access_log": False}).access_log is False
    found = problems({**BASE, "BFF_ACCESS_LOG": "sometimes"})
    assert any(p.startswith("BFF_ACCESS_LOG") for p in found)


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
    assert load_settings({**BASE, "BFF_RESOURCE": resource}).resource == resource


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


def test_route_resource_is_checked_as_a_resource_indicator() -> None:
    found = problems(
        BASE, {"routes": [{"prefix": "/a", "upstream": "http://o", "resource": "rel"}]}
    )
    assert any(p.startswith("routes[0].resource:") and "absolute URI" in p for p in found), found


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
    assert [r.path_params for r in s.routes] == [True, False]
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
