"""THE table of settings as a user writes them (TOML key, `BFF_*` name, the field that
holds the value, and whether it belongs to a frontend or to the process), and the typo
checks it makes possible: unknown TOML keys and `BFF_*` variables, with a "did you mean".
Pure."""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

__all__ = ["KNOWN_SETTINGS", "OTHER_ENV", "Known", "unknown_env_warnings", "unknown_keys"]


@dataclass(frozen=True, slots=True)
class Known:
    """One setting as a user writes it: the TOML key (`BFF_<KEY>` in the environment,
    `--key` on the command line) and the field that holds its value: a `Frontend`'s when
    `frontend` is set, the `Settings`' otherwise."""

    key: str
    field: str = ""  # the attribute; "" means the same as `key`
    secret: bool = False  # masked by check-config; also read from `BFF_<KEY>_FILE`
    from_file: bool = False  # not masked whole, but may come from `BFF_<KEY>_FILE` too
    frontend: bool = False  # per frontend (Frontend), not per process (Settings)

    @property
    def env(self) -> str:
        return f"BFF_{self.key.upper()}"

    @property
    def attr(self) -> str:
        return self.field or self.key


# A new setting needs one entry here: TOML keys not in it are errors ("did you mean"),
# `BFF_*` variables not in it are warnings, and check-config prints every entry whose
# field exists, in this order, under the key and env name.
KNOWN_SETTINGS: tuple[Known, ...] = (
    Known("issuer", frontend=True),
    Known("client_id", frontend=True),
    Known("client_secret", secret=True, frontend=True),
    Known("client_auth", frontend=True),
    Known("client_key_file", frontend=True),
    Known("dpop", frontend=True),
    Known("secret_key", "secret_keys", secret=True),
    Known("scopes", frontend=True),
    Known("resource", frontend=True),
    Known("prompt", frontend=True),
    Known("public_url", frontend=True),
    Known("session_store", from_file=True),  # its URL may carry the Redis password
    Known("store_prefix"),
    Known("routes", frontend=True),
    Known("cookie_name", frontend=True),
    Known("cookie_samesite", frontend=True),
    Known("session_idle_timeout", "idle_timeout", frontend=True),
    Known("session_max_lifetime", "max_lifetime", frontend=True),
    Known("refresh_skew", frontend=True),
    Known("session_expiring_window", frontend=True),
    Known("session_record_format", frontend=True),
    Known("upstream_timeout"),
    Known("upstream_max_connections"),
    Known("upstream_max_connections_per_session"),
    Known("upstream_queue_timeout"),
    Known("upstream_transport"),
    Known("post_logout_redirect", frontend=True),
    Known("logout_id_token_hint", frontend=True),
    Known("static_dir", frontend=True),
    Known("trusted_proxies"),
    Known("access_log"),
    Known("host"),
    Known("port"),
    Known("workers"),
    Known("login_pending_max"),
    Known("login_pending_total"),
    Known("max_header_bytes"),
    Known("header_read_timeout"),
    Known("body_read_timeout"),
    Known("admin_listen"),
    Known("log_format"),
    Known("tracing"),
    Known("shutdown_drain_delay"),
    Known("shutdown_timeout"),
    # The admin API's bearer token is read from this file at start (never from the TOML or
    # an environment variable); the path is shown, the token never.
    Known("admin_token_file"),
    # `[[frontends]]` tables (bff.config.load_frontends); check-config lists every frontend.
    Known("frontends"),
)
# `BFF_*` variables that are not settings but are still ours.
OTHER_ENV = frozenset({"BFF_CONFIG", "BFF_CLI_OVERRIDES", "BFF_TEST_REDIS_URL"})
OTHER_ENV_PREFIXES = ("BFF_FRONTEND_", "BFF_TEST_")  # per-frontend secrets; test harness


def _suggest(name: str, known: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def unknown_keys(toml: Mapping[str, Any]) -> list[str]:
    """One problem per top-level TOML key that names no setting."""
    known = [k.key for k in KNOWN_SETTINGS]
    return [
        f"{key}: unknown setting{_suggest(key, known)}" for key in sorted(set(toml) - set(known))
    ]


def unknown_env_warnings(environ: Mapping[str, str]) -> list[str]:
    """One warning per `BFF_*` variable that names no setting: a typo there is ignored,
    so it is worth a line at start-up."""
    known = {k.env for k in KNOWN_SETTINGS} | OTHER_ENV
    known |= {f"{k.env}_FILE" for k in KNOWN_SETTINGS if k.secret or k.from_file}
    return [
        f"{name} is not a bff setting and is ignored{_suggest(name, sorted(known))}"
        for name in sorted(environ)
        if name.startswith("BFF_") and name not in known and not name.startswith(OTHER_ENV_PREFIXES)
    ]
