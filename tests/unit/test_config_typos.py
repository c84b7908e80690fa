"""Configuration that refuses typos: unknown TOML keys are errors, unknown `BFF_*`
variables warnings, both with a "did you mean"; check-config's names are the user's."""

from __future__ import annotations

import pytest

from bff.config.settings import (
    KNOWN_SETTINGS,
    Settings,
    bind_warnings,
    effective_config,
    load_settings,
    unknown_env_warnings,
)
from bff.errors import ConfigError
from tests.unit.test_config import BASE, KEY


def problems(toml: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load_settings(BASE, toml)
    return info.value.problems


@pytest.mark.parametrize(
    ("typo", "suggestion"),
    [
        ("sesion_store", "session_store"),
        ("issuer_url", "issuer"),
        ("idle_timeout", "session_idle_timeout"),
        ("trusted_proxy", "trusted_proxies"),
        ("route", "routes"),
    ],
)
def test_unknown_top_level_key_is_an_error_with_a_suggestion(typo: str, suggestion: str) -> None:
    (problem,) = problems({typo: "x"})
    assert problem == f"{typo}: unknown setting (did you mean {suggestion}?)"


def test_unknown_key_without_a_close_name_has_no_suggestion() -> None:
    assert problems({"zzzz": 1}) == ["zzzz: unknown setting"]


def test_typos_are_reported_with_every_other_problem() -> None:
    with pytest.raises(ConfigError) as info:
        load_settings({**BASE, "BFF_REFRESH_SKEW": "soon"}, {"sesion_store": "redis://x"})
    assert len(info.value.problems) == 2


def test_every_known_key_is_accepted_in_toml() -> None:
    # A known key never trips the typo check (its value may still be refused).
    found: list[str] = []
    for known in KNOWN_SETTINGS:
        try:
            load_settings(BASE, {known.key: object()})
        except ConfigError as exc:
            found += [p for p in exc.problems if "unknown setting" in p]
    assert found == []


def test_unknown_env_variables_are_warnings_with_suggestions() -> None:
    env = {
        **BASE,
        "BFF_SESION_STORE": "redis://x",
        "BFF_CLIENT_SECRET_FILE": "/run/secret",
        "BFF_CONFIG": "/etc/bff.toml",
        "BFF_FRONTEND_SHOP_CLIENT_SECRET": "x",
        "BFF_TEST_REDIS_URL": "redis://127.0.0.1",
        "BFF_WHATEVER_ELSE": "1",
        "HOME": "/root",
    }
    warnings = unknown_env_warnings(env)
    assert warnings == [
        "BFF_SESION_STORE is not a bff setting and is ignored (did you mean BFF_SESSION_STORE?)",
        "BFF_WHATEVER_ELSE is not a bff setting and is ignored",
    ]
    # Still only a warning: the settings load.
    assert load_settings(env).session_store == "memory://"


@pytest.mark.parametrize(
    "name",
    [
        "BFF_ADMIN_LISTEN",
        "BFF_LOGIN_PENDING_MAX",
        "BFF_LOG_FORMAT",
        "BFF_TRACING",
        "BFF_SHUTDOWN_DRAIN_DELAY",
        "BFF_SHUTDOWN_TIMEOUT",
        "BFF_CLI_OVERRIDES",
        "BFF_ADMIN_TOKEN_FILE",
        "BFF_SECRET_KEY_FILE",
        "BFF_LOGOUT_ID_TOKEN_HINT",
    ],
)
def test_settings_of_spec_and_parallel_work_are_not_typos(name: str) -> None:
    assert unknown_env_warnings({name: "x"}) == []


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
    shown = repr(s.masked())
    assert KEY not in shown and "s3cret-value" not in shown


def _settings(**env: str) -> Settings:
    return load_settings({**BASE, **env})


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


def test_every_settings_field_is_in_the_table() -> None:
    # A new setting needs its one entry in KNOWN_SETTINGS (TOML key, env name, field):
    # without it, its TOML key would be refused and check-config would not show it.
    fields = set(Settings.__dataclass_fields__) - {"sources"}
    assert fields - {k.attr for k in KNOWN_SETTINGS} == set()
