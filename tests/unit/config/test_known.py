"""Configuration that refuses typos: unknown TOML keys are errors, unknown `BFF_*`
variables warnings, both with a "did you mean"; the table covers every field."""

from __future__ import annotations

import dataclasses

import pytest

from bff.config.known import KNOWN_SETTINGS, unknown_env_warnings
from bff.config.load import load_settings
from bff.config.model import Frontend, Settings
from bff.errors import ConfigError
from tests.unit.config.env import BASE, problems


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
    (problem,) = problems(BASE, {typo: "x"})
    assert problem == f"{typo}: unknown setting (did you mean {suggestion}?)"


def test_unknown_key_without_a_close_name_has_no_suggestion() -> None:
    assert problems(BASE, {"zzzz": 1}) == ["zzzz: unknown setting"]


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


def test_every_settings_field_is_in_the_table() -> None:
    # A new setting needs its one entry in KNOWN_SETTINGS (TOML key, env name, field):
    # without it, its TOML key would be refused and check-config would not show it.
    frontend = {f.name for f in dataclasses.fields(Frontend)} - {"name"}
    process = {f.name for f in dataclasses.fields(Settings)} - {"frontends", "sources"}
    assert frontend - {k.attr for k in KNOWN_SETTINGS if k.frontend} == set()
    assert process - {k.attr for k in KNOWN_SETTINGS if not k.frontend} == set()


def test_every_table_entry_names_a_field_of_its_holder() -> None:
    # `frontend` says where the value lives; admin_token is listed before it is read.
    frontend = {f.name for f in dataclasses.fields(Frontend)}
    process = {f.name for f in dataclasses.fields(Settings)}
    misplaced = [
        k.key
        for k in KNOWN_SETTINGS
        if k.attr not in (frontend if k.frontend else process) and k.key != "admin_token"
    ]
    assert misplaced == []
