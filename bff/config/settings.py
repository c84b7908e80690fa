"""Settings: parsed once from TOML plus `BFF_*` environment variables, frozen, and
validated all at once (every problem named by its setting, reported together).

Environment wins over the file. Secrets come from the environment, or from a file
named by `<NAME>_FILE` (e.g. BFF_CLIENT_SECRET_FILE), and may be left out of TOML.
Only the CLI reads `os.environ`; this module takes the environment as a parameter.
"""

from __future__ import annotations

import difflib
import ipaddress
import math
import re
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from bff.errors import ConfigError
from bff.oidc.redirects import is_local_path
from bff.store.redis_url import HA_SCHEMES, mask_store_url, parse_ha_url

__all__ = [
    "DEFAULT_SCOPES",
    "KNOWN_SETTINGS",
    "Known",
    "RouteConfig",
    "Settings",
    "bind_warnings",
    "cookie_warnings",
    "effective_config",
    "is_loopback_host",
    "load_settings",
    "read_toml",
    "resource_problem",
    "split_host_port",
    "unknown_env_warnings",
]

DEFAULT_SCOPES = "openid profile email offline_access"
STORE_SCHEMES = ("memory", "redis", "rediss", "unix", *HA_SCHEMES)
RESERVED_PREFIXES = ("/bff", "/healthz", "/readyz", "/metrics")
TokenMode = Literal["user", "optional", "none"]
PROMPTS = frozenset({"none", "login", "consent", "select_account"})
HTTP_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
# RFC 3986 §3.1 scheme, then ':' and a non-empty rest of printable ASCII without spaces.
_ABSOLUTE_URI = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:[\x21-\x7e]+")
LOG_FORMATS = ("text", "json")
TRACING_MODES = ("off", "otlp")


@dataclass(frozen=True, slots=True)
class Known:
    """One setting as a user writes it: the TOML key (`BFF_<KEY>` in the environment,
    `--key` on the command line) and the `Settings` field that holds its value."""

    key: str
    field: str = ""  # the Settings attribute; "" means the same as `key`
    secret: bool = False  # masked by check-config; also read from `BFF_<KEY>_FILE`
    from_file: bool = False  # not masked whole, but may come from `BFF_<KEY>_FILE` too

    @property
    def env(self) -> str:
        return f"BFF_{self.key.upper()}"

    @property
    def attr(self) -> str:
        return self.field or self.key


# THE table of top-level settings. A new setting needs one entry here: TOML keys not in
# it are errors ("did you mean"), `BFF_*` variables not in it are warnings, and
# check-config prints every entry whose field `Settings` has, under the key and env name.
KNOWN_SETTINGS: tuple[Known, ...] = (
    Known("issuer"),
    Known("client_id"),
    Known("client_secret", secret=True),
    Known("secret_key", "secret_keys", secret=True),
    Known("scopes"),
    Known("resource"),
    Known("prompt"),
    Known("public_url"),
    Known("session_store", from_file=True),  # its URL may carry the Redis password
    Known("store_prefix"),
    Known("routes"),
    Known("cookie_name"),
    Known("cookie_samesite"),
    Known("session_idle_timeout", "idle_timeout"),
    Known("session_max_lifetime", "max_lifetime"),
    Known("refresh_skew"),
    Known("upstream_timeout"),
    Known("upstream_max_connections"),
    Known("upstream_max_connections_per_session"),
    Known("upstream_queue_timeout"),
    Known("upstream_transport"),
    Known("post_logout_redirect"),
    Known("logout_id_token_hint"),
    Known("static_dir"),
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
    # Named by SPEC.md (BFF_ADMIN_TOKEN_FILE, the admin API) and not read yet; listed so
    # that it is not reported as a typo meanwhile.
    Known("admin_token", secret=True),
)
# `BFF_*` variables that are not settings but are still ours.
OTHER_ENV = frozenset({"BFF_CONFIG", "BFF_CLI_OVERRIDES", "BFF_TEST_REDIS_URL"})
OTHER_ENV_PREFIXES = ("BFF_FRONTEND_", "BFF_TEST_")  # per-frontend secrets; test harness


def _suggest(name: str, known: Iterable[str]) -> str:
    match = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {match[0]}?)" if match else ""


def _unknown_keys(toml: Mapping[str, Any]) -> list[str]:
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


@dataclass(frozen=True, slots=True)
class RouteConfig:
    prefix: str
    upstream: str
    token: TokenMode = "user"
    csrf: bool = True
    methods: frozenset[str] | None = None
    retry_on_401: bool = False
    scopes: str | None = None
    resource: str | None = None
    path_params: bool = False  # `;` path parameters pass (an upstream that uses them)


@dataclass(frozen=True, slots=True)
class Settings:
    issuer: str
    client_id: str
    client_secret: str = field(repr=False)
    secret_keys: tuple[str, ...] = field(repr=False)
    scopes: str = DEFAULT_SCOPES
    resource: str | None = None
    prompt: str | None = None
    public_url: str = "http://localhost:8000"
    session_store: str = "memory://"
    store_prefix: str = "bff"
    routes: tuple[RouteConfig, ...] = ()
    cookie_name: str = "bff-session"
    cookie_samesite: Literal["strict", "lax"] = "strict"
    idle_timeout: int = 1800
    max_lifetime: int = 86400
    refresh_skew: int = 30
    upstream_timeout: float = 30.0
    # Per worker: connections to one upstream origin; requests of one session in flight
    # upstream; seconds a request waits for either before 503 upstream_busy.
    upstream_max_connections: int = 256
    upstream_max_connections_per_session: int = 32
    upstream_queue_timeout: float = 1.0
    # The upstream client: the lean HTTP/1.1 client, or aiohttp's (the `aiohttp` extra).
    upstream_transport: Literal["lean", "aiohttp"] = "lean"
    post_logout_redirect: str = "/"
    logout_id_token_hint: bool = True
    static_dir: str | None = None
    trusted_proxies: tuple[str, ...] = ()
    host: str = "127.0.0.1"
    port: int = 8000
    workers: int = 1
    access_log: bool = True
    # Bounds for the unauthenticated (THREATS.md invariant 14; issue 11 defects 3 and 4).
    login_pending_max: int = 100  # pending logins per client address
    login_pending_total: int = 10000  # pending logins in all, protecting the store
    max_header_bytes: int = 32768  # request line + headers, per request
    header_read_timeout: float = 10.0  # seconds from a request's first byte to its headers' end
    body_read_timeout: float = 30.0  # seconds a request body may pause between two reads
    admin_listen: str = ""  # HOST:PORT of the admin listener; empty: none

    @property
    def admin_address(self) -> tuple[str, int] | None:
        """(host, port) of the admin listener, or None when it is off."""
        return split_host_port(self.admin_listen) if self.admin_listen else None

    log_format: Literal["text", "json"] = "text"
    tracing: Literal["off", "otlp"] = "off"
    shutdown_drain_delay: float = 5.0  # SIGTERM: seconds /readyz is 503 before refusing
    shutdown_timeout: float = 30.0  # then: bound on in-flight requests (streams included)
    # where each value came from (TOML key -> env name, --flag, "config file"), for
    # check-config; not a setting
    sources: tuple[tuple[str, str], ...] = field(default=(), repr=False, compare=False)

    @property
    def secure(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url}/bff/callback"

    @property
    def post_logout_redirect_uri(self) -> str:
        return f"{self.public_url}{self.post_logout_redirect}"

    @property
    def login_cookie_name(self) -> str:
        return f"{self.cookie_name}-login"

    def masked(self) -> dict[str, Any]:
        """The effective configuration under the TOML keys a user writes, every secret
        replaced by a mask (the shape of `check-config --format json`)."""
        out: dict[str, Any] = {}
        for known in KNOWN_SETTINGS:
            if known.key in out or not hasattr(self, known.attr):
                continue  # a setting of a later release, or listed twice after a merge
            value = getattr(self, known.attr)
            if known.secret:
                count = len(value) if isinstance(value, tuple) else 1
                value = "****" if count == 1 else f"**** ({count} keys)"
            elif known.key == "routes":
                value = [_route_dict(r) for r in value]
            elif isinstance(value, tuple):
                value = list(value)
            out[known.key] = value
        out["session_store"] = mask_store_url(self.session_store)
        return out


def _route_dict(route: RouteConfig) -> dict[str, Any]:
    d: dict[str, Any] = {
        "prefix": route.prefix,
        "upstream": _mask_url_password(route.upstream),
        "token": route.token,
        "csrf": route.csrf,
        "retry_on_401": route.retry_on_401,
        "path_params": route.path_params,
    }
    if route.methods is not None:
        d["methods"] = sorted(route.methods)
    if route.scopes:
        d["scopes"] = route.scopes
    if route.resource:
        d["resource"] = route.resource
    return d


def _mask_url_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":****@", 1)
    return url


def is_loopback_host(host: str | None) -> bool:
    if not host:
        return False
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def split_host_port(value: str) -> tuple[str, int]:
    """`HOST:PORT` or `[V6]:PORT` -> (host, port); ValueError when malformed."""
    host, sep, port_text = value.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 < int(port_text) <= 65535:
        raise ValueError(f"{value!r} is not HOST:PORT")
    if host.startswith("["):
        if not host.endswith("]"):
            raise ValueError(f"{value!r} is not HOST:PORT")
        host = host[1:-1]
    if not host or any(ch.isspace() or ch in "/[]" for ch in host):
        raise ValueError(f"{value!r} is not HOST:PORT")
    return host, int(port_text)


def read_toml(path: str) -> dict[str, Any]:
    """Read a TOML config file; ConfigError naming the file when unreadable."""
    try:
        with open(path, "rb") as fh:
            return tomllib.load(fh)
    except OSError as exc:
        raise ConfigError([f"config file {path}: cannot be read ({exc.strerror})"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"config file {path}: invalid TOML ({exc})"]) from None


class _Collector:
    """Reads settings from env (wins) and TOML, converting and collecting problems."""

    def __init__(
        self,
        environ: Mapping[str, str],
        toml: Mapping[str, Any],
        overrides: Mapping[str, Any],
    ) -> None:
        self.environ = environ
        self.toml = toml
        self.overrides = overrides
        self.problems: list[str] = []
        self.sources: dict[str, str] = {}

    def raw(self, name: str, *, secret: bool = False) -> tuple[Any, str] | None:
        got = self._raw(name, secret=secret)
        if got is not None:
            self.sources[name] = "config file" if got[1] == name else got[1]
        return got

    def _raw(self, name: str, *, secret: bool) -> tuple[Any, str] | None:
        env = f"BFF_{name.upper()}"
        if name in self.overrides:  # command-line flags beat environment and file
            return self.overrides[name], f"--{name.replace('_', '-')}"
        if env in self.environ:
            return self.environ[env], env
        if secret and f"{env}_FILE" in self.environ:
            path = self.environ[f"{env}_FILE"]
            try:
                return Path(path).read_text(encoding="utf-8").strip(), f"{env}_FILE"
            except OSError as exc:
                self.problems.append(f"{env}_FILE: cannot read {path} ({exc.strerror})")
                return None
        if name in self.toml:
            return self.toml[name], name
        return None

    def text(self, name: str, default: str | None = None, *, secret: bool = False) -> str | None:
        got = self.raw(name, secret=secret)
        if got is None:
            return default
        value, source = got
        if not isinstance(value, str):
            self.problems.append(f"{source}: must be a string")
            return default
        return value.strip()

    def required(self, name: str, *, secret: bool = False) -> str:
        value = self.text(name, secret=secret)
        if not value:
            env = f"BFF_{name.upper()}"
            hint = f" (or {env}_FILE)" if secret else ""
            self.problems.append(f"{env}: required{hint}")
            return ""
        return value

    def seconds(self, name: str, default: int) -> float:
        """A duration that must be greater than 0."""
        value = self.number(name, default, minimum=0, as_float=True)
        if value == 0:
            self.problems.append(f"BFF_{name.upper()}: must be greater than 0")
        return float(value)

    def number(self, name: str, default: int, *, minimum: int, as_float: bool = False) -> Any:
        got = self.raw(name)
        if got is None:
            return default
        value, source = got
        convert: Callable[[Any], Any] = float if as_float else int
        try:
            if isinstance(value, bool):
                raise ValueError
            number = convert(value)
        except (TypeError, ValueError, OverflowError):  # int(inf) from TOML overflows
            self.problems.append(f"{source}: must be a number, got {value!r}")
            return default
        if not math.isfinite(number):  # float("inf"), float("nan"): no bound at all
            self.problems.append(f"{source}: must be a finite number, got {value!r}")
            return default
        if number < minimum:
            self.problems.append(f"{source}: must be at least {minimum}, got {number}")
            return default
        return number

    def flag(self, value: Any, source: str, default: bool) -> bool:
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.lower() in ("true", "1", "yes", "false", "0", "no"):
            return value.lower() in ("true", "1", "yes")
        self.problems.append(f"{source}: must be true or false")
        return default


def _check_url(
    c: _Collector,
    value: str,
    source: str,
    *,
    allow_path: bool = True,
    https_unless_loopback: bool = False,
) -> None:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        c.problems.append(f"{source}: not an http(s) URL: {value!r}")
        return
    if parts.username or parts.password:
        c.problems.append(f"{source}: must not carry credentials")
    if parts.query or parts.fragment:
        c.problems.append(f"{source}: must not have a query or fragment")
    if not allow_path and parts.path not in ("", "/"):
        c.problems.append(f"{source}: must be an origin without a path, got {value!r}")
    if https_unless_loopback and parts.scheme == "http" and not is_loopback_host(parts.hostname):
        c.problems.append(
            f"{source}: plain http is allowed only for localhost and loopback addresses"
        )


def resource_problem(value: str) -> str | None:
    """Why `value` is not an RFC 8707 §2 resource indicator (an absolute URI without a
    fragment: `https://api.example.com`, `urn:example:api`, `api://orders`), or None."""
    if not _ABSOLUTE_URI.fullmatch(value):
        return (
            f"{value!r} is not an absolute URI (RFC 8707 resource indicator), "
            "e.g. https://api.example.com, urn:example:api or api://orders"
        )
    if "#" in value:
        return f"{value!r} must not have a fragment (RFC 8707)"
    parts = urlsplit(value)
    if parts.scheme.lower() in ("http", "https") and not parts.hostname:
        return f"{value!r} has no host"
    return None


def _parse_routes(c: _Collector) -> tuple[RouteConfig, ...]:
    entries: list[tuple[dict[str, Any], str]] = []
    if "BFF_ROUTES" in c.environ:
        c.sources["routes"] = "BFF_ROUTES"
        for i, item in enumerate(filter(None, c.environ["BFF_ROUTES"].split(","))):
            prefix, sep, upstream = item.strip().partition("=")
            if not sep:
                c.problems.append(f"BFF_ROUTES: entry {i + 1} is not PREFIX=UPSTREAM_URL")
                continue
            entries.append(({"prefix": prefix.strip(), "upstream": upstream.strip()}, "BFF_ROUTES"))
    else:
        if "routes" in c.toml:
            c.sources["routes"] = "config file"
        toml_routes = c.toml.get("routes", [])
        if not isinstance(toml_routes, list):
            c.problems.append("routes: must be an array of tables ([[routes]])")
            toml_routes = []
        for i, table in enumerate(toml_routes):
            if not isinstance(table, dict):
                c.problems.append(f"routes[{i}]: must be a table")
                continue
            entries.append((table, f"routes[{i}]"))

    routes: list[RouteConfig] = []
    seen: set[str] = set()
    for entry, where in entries:
        route = _parse_route(c, entry, where)
        if route is None:
            continue
        if route.prefix in seen:
            c.problems.append(f"{where}: duplicate prefix {route.prefix!r}")
        seen.add(route.prefix)
        routes.append(route)
    return tuple(routes)


def _parse_route(c: _Collector, item: dict[str, Any], where: str) -> RouteConfig | None:
    known = {
        "prefix",
        "upstream",
        "token",
        "csrf",
        "methods",
        "retry_on_401",
        "scopes",
        "resource",
        "path_params",
    }
    for key in sorted(set(item) - known):
        c.problems.append(f"{where}.{key}: unknown route setting")
    prefix, upstream = item.get("prefix"), item.get("upstream")
    before = len(c.problems)
    if not isinstance(prefix, str) or not prefix.startswith("/"):
        c.problems.append(f"{where}.prefix: must start with '/', got {prefix!r}")
    elif prefix != "/" and (
        prefix.endswith("/")
        or any(seg in ("", ".", "..") for seg in prefix[1:].split("/"))
        or any(ch in prefix for ch in "%\\?#;")
        or any(ord(ch) <= 0x20 or ord(ch) >= 0x7F for ch in prefix)
    ):
        c.problems.append(f"{where}.prefix: must be a plain path like /api, got {prefix!r}")
    elif any(
        prefix == r or prefix.startswith(r + "/") or r.startswith(prefix + "/") or prefix == "/"
        for r in RESERVED_PREFIXES
    ):
        c.problems.append(f"{where}.prefix: {prefix!r} would shadow bff's own endpoints")
    if not isinstance(upstream, str):
        c.problems.append(f"{where}.upstream: required URL")
    else:
        _check_url(c, upstream, f"{where}.upstream")
    token = item.get("token", "user")
    if token not in ("user", "optional", "none"):
        c.problems.append(f"{where}.token: must be user, optional or none")
    csrf = c.flag(item.get("csrf", True), f"{where}.csrf", True)
    retry = c.flag(item.get("retry_on_401", False), f"{where}.retry_on_401", False)
    path_params = c.flag(item.get("path_params", False), f"{where}.path_params", False)
    methods = item.get("methods")
    method_set: frozenset[str] | None = None
    if methods is not None:
        if not isinstance(methods, list) or not all(isinstance(m, str) for m in methods):
            c.problems.append(f"{where}.methods: must be a list of HTTP method names")
        else:
            method_set = frozenset(m.upper() for m in methods)
            for bad in sorted(method_set - HTTP_METHODS):
                c.problems.append(f"{where}.methods: unknown method {bad!r}")
    resource = item.get("resource")
    if "resource" in item and not (
        isinstance(resource, str) and resource_problem(resource) is None
    ):
        why = resource_problem(resource) if isinstance(resource, str) else "must be a string"
        c.problems.append(f"{where}.resource: {why}")
    for key in ("scopes", "resource"):
        if key in item:
            # Refused rather than ignored: an operator must never believe a route gets a
            # narrower token than the one it is actually sent.
            c.problems.append(
                f"{where}.{key}: per-route tokens are not supported yet; "
                "remove it (the route gets the session's access token)"
            )
    if len(c.problems) > before:
        return None
    assert isinstance(prefix, str)
    assert isinstance(upstream, str)
    return RouteConfig(
        prefix=prefix,
        upstream=upstream.rstrip("/") if urlsplit(upstream).path == "/" else upstream,
        token=token,
        csrf=csrf,
        methods=method_set,
        retry_on_401=retry,
        path_params=path_params,
        scopes=item.get("scopes"),
        resource=item.get("resource"),
    )


def load_settings(
    environ: Mapping[str, str],
    toml: Mapping[str, Any] | None = None,
    *,
    overrides: Mapping[str, Any] | None = None,
) -> Settings:
    """Build Settings from env + TOML (+ CLI `overrides`); ConfigError lists ALL problems."""
    c = _Collector(environ, toml or {}, overrides or {})
    c.problems.extend(_unknown_keys(c.toml))

    issuer = c.required("issuer").rstrip("/")
    if issuer:
        _check_url(c, issuer, "BFF_ISSUER", https_unless_loopback=True)
    client_id = c.required("client_id")
    client_secret = c.required("client_secret", secret=True)
    keys_text = c.required("secret_key", secret=True)
    secret_keys = tuple(k.strip() for k in keys_text.split(",") if k.strip())
    for i, key in enumerate(secret_keys):
        if len(key) < 32:
            c.problems.append(
                f"BFF_SECRET_KEY: key {i + 1} is {len(key)} characters; at least 32 required"
            )
    scopes = c.text("scopes", DEFAULT_SCOPES) or DEFAULT_SCOPES
    if "openid" not in scopes.split():
        c.problems.append("BFF_SCOPES: must include 'openid'")
    resource = c.text("resource") or None
    problem = resource_problem(resource) if resource else None
    if problem:
        c.problems.append(f"BFF_RESOURCE: {problem}")
    # Some providers grant offline_access (a refresh token) only with prompt=consent
    # (OIDC Core §11); a fixed, validated value, never free-form parameters.
    prompt = c.text("prompt") or None
    if prompt and not set(prompt.split()) <= PROMPTS:
        c.problems.append(
            f"BFF_PROMPT: {prompt!r} is not one of {', '.join(sorted(PROMPTS))} (space separated)"
        )
    if prompt and "none" in prompt.split() and len(prompt.split()) > 1:
        c.problems.append("BFF_PROMPT: none cannot be combined with other values")
    public_url = (c.text("public_url", "http://localhost:8000") or "").rstrip("/")
    _check_url(c, public_url, "BFF_PUBLIC_URL", allow_path=False, https_unless_loopback=True)
    secure = public_url.startswith("https://")

    # BFF_SESSION_STORE_FILE too: a Redis URL with a password belongs in a secret file.
    store = c.text("session_store", "memory://", secret=True) or "memory://"
    scheme = store.split("://", 1)[0] if "://" in store else ""
    if scheme not in STORE_SCHEMES:
        c.problems.append(
            f"BFF_SESSION_STORE: unsupported URL {mask_store_url(store)!r}; "
            f"use one of {', '.join(s + '://' for s in STORE_SCHEMES)}"
        )
    elif scheme in HA_SCHEMES:
        try:
            parse_ha_url(store)
        except ValueError as exc:
            c.problems.append(f"BFF_SESSION_STORE: {mask_store_url(store)!r}: {exc}")
    store_prefix = c.text("store_prefix", "bff") or "bff"
    if any(ch in store_prefix for ch in "{}*?[] ") or not store_prefix:
        c.problems.append("BFF_STORE_PREFIX: must not contain braces, glob characters or spaces")

    default_cookie = "__Host-bff-session" if secure else "bff-session"
    cookie_name = c.text("cookie_name", default_cookie) or default_cookie
    if not cookie_name.replace("-", "").replace("_", "").isalnum():
        c.problems.append("BFF_COOKIE_NAME: only letters, digits, '-' and '_' are allowed")
    if not secure and cookie_name.startswith(("__Host-", "__Secure-")):
        c.problems.append("BFF_COOKIE_NAME: __Host- / __Secure- names need an https BFF_PUBLIC_URL")
    samesite = (c.text("cookie_samesite", "strict") or "strict").lower()
    if samesite not in ("strict", "lax"):
        c.problems.append("BFF_COOKIE_SAMESITE: must be strict or lax")
        samesite = "strict"

    idle = c.number("session_idle_timeout", 1800, minimum=1)
    lifetime = c.number("session_max_lifetime", 86400, minimum=1)
    skew = c.number("refresh_skew", 30, minimum=0)
    upstream_timeout = c.seconds("upstream_timeout", 30)
    max_connections = c.number("upstream_max_connections", 256, minimum=1)
    per_session = c.number("upstream_max_connections_per_session", 32, minimum=1)
    queue_timeout = c.number("upstream_queue_timeout", 1, minimum=0, as_float=True)
    transport = (c.text("upstream_transport", "lean") or "lean").lower()
    if transport not in ("lean", "aiohttp"):
        c.problems.append("BFF_UPSTREAM_TRANSPORT: must be lean or aiohttp")
        transport = "lean"
    post_logout = c.text("post_logout_redirect", "/") or "/"
    if not is_local_path(post_logout):
        c.problems.append("BFF_POST_LOGOUT_REDIRECT: must be a local path such as /")
    static_dir = c.text("static_dir") or None
    if static_dir and not Path(static_dir).is_dir():
        c.problems.append(f"BFF_STATIC_DIR: {static_dir!r} is not a directory")

    proxies_raw = c.raw("trusted_proxies")
    proxies: list[str] = []
    if proxies_raw is not None:
        value, source = proxies_raw
        items = value.split(",") if isinstance(value, str) else value
        if not isinstance(items, list):
            c.problems.append(f"{source}: must be a comma-separated list of CIDRs")
            items = []
        for item in items:
            text = str(item).strip()
            if not text:
                continue
            try:
                proxies.append(str(ipaddress.ip_network(text, strict=False)))
            except ValueError:
                c.problems.append(f"{source}: {text!r} is not an IP address or CIDR")

    host = c.text("host", "127.0.0.1") or "127.0.0.1"
    port = c.number("port", 8000, minimum=0)
    if port > 65535:
        c.problems.append(f"BFF_PORT: {port} is not a port number")
    workers = c.number("workers", 1, minimum=1)
    if scheme == "memory" and workers > 1:
        c.problems.append(
            "BFF_SESSION_STORE: memory:// cannot be shared by several workers; "
            "use redis:// with --workers > 1"
        )
    routes = _parse_routes(c)
    # Off where the ingress already logs every request (as nginx's `access_log off`):
    # one log line per request is a measurable share of the proxy hop.
    access = c.raw("access_log")
    access_log = True if access is None else c.flag(access[0], access[1], True)
    login_pending_max = c.number("login_pending_max", 100, minimum=1)
    login_pending_total = c.number("login_pending_total", 10000, minimum=1)
    max_header_bytes = c.number("max_header_bytes", 32768, minimum=1024)
    header_read_timeout = c.seconds("header_read_timeout", 10)
    body_read_timeout = c.seconds("body_read_timeout", 30)
    admin_listen = c.text("admin_listen", "") or ""
    if admin_listen:
        try:
            admin_host, admin_port = split_host_port(admin_listen)
        except ValueError as exc:
            c.problems.append(f"BFF_ADMIN_LISTEN: {exc} (e.g. 127.0.0.1:9091; empty: off)")
        else:
            wildcard = {admin_host, host} & {"0.0.0.0", "::", ""}  # noqa: S104 - a comparison
            if admin_port == port and (admin_host == host or wildcard):
                c.problems.append(f"BFF_ADMIN_LISTEN: port {admin_port} is the main listener's")
    log_format = (c.text("log_format", "text") or "text").lower()
    if log_format not in LOG_FORMATS:
        c.problems.append("BFF_LOG_FORMAT: must be text or json")
    tracing = (c.text("tracing", "off") or "off").lower()
    if tracing not in TRACING_MODES:
        c.problems.append("BFF_TRACING: must be off or otlp")
    drain_delay = c.number("shutdown_drain_delay", 5, minimum=0, as_float=True)
    shutdown_timeout = c.number("shutdown_timeout", 30, minimum=0, as_float=True)
    # Off: logout sends client_id + logout_hint instead of the ID token through the browser.
    hint = c.raw("logout_id_token_hint")
    id_token_hint = True if hint is None else c.flag(hint[0], hint[1], True)

    if c.problems:
        raise ConfigError(c.problems)
    return Settings(
        issuer=issuer,
        client_id=client_id,
        client_secret=client_secret,
        secret_keys=secret_keys,
        scopes=scopes,
        resource=resource,
        prompt=prompt,
        public_url=public_url,
        session_store=store,
        store_prefix=store_prefix,
        routes=routes,
        cookie_name=cookie_name,
        cookie_samesite="lax" if samesite == "lax" else "strict",
        idle_timeout=idle,
        max_lifetime=lifetime,
        refresh_skew=skew,
        upstream_timeout=upstream_timeout,
        upstream_max_connections=max_connections,
        upstream_max_connections_per_session=per_session,
        upstream_queue_timeout=float(queue_timeout),
        upstream_transport="aiohttp" if transport == "aiohttp" else "lean",
        post_logout_redirect=post_logout,
        static_dir=static_dir,
        trusted_proxies=tuple(proxies),
        host=host,
        port=port,
        workers=workers,
        access_log=access_log,
        login_pending_max=login_pending_max,
        login_pending_total=login_pending_total,
        max_header_bytes=max_header_bytes,
        header_read_timeout=header_read_timeout,
        body_read_timeout=body_read_timeout,
        admin_listen=admin_listen,
        log_format="json" if log_format == "json" else "text",
        tracing="otlp" if tracing == "otlp" else "off",
        shutdown_drain_delay=float(drain_delay),
        shutdown_timeout=float(shutdown_timeout),
        logout_id_token_hint=id_token_hint,
        sources=tuple(sorted(c.sources.items())),
    )


def effective_config(settings: Settings) -> list[tuple[str, str, Any, str]]:
    """(TOML key, env name, masked value, where it came from) per setting, for the text
    form of check-config."""
    sources = dict(settings.sources)
    by_key = {k.key: k for k in KNOWN_SETTINGS}
    return [
        (key, by_key[key].env, value, sources.get(key, "default"))
        for key, value in settings.masked().items()
    ]


def _port_of(url: str) -> int | None:
    parts = urlsplit(url)
    try:
        return parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        return None


def bind_warnings(settings: Settings) -> list[str]:
    """Where the listening address cannot be what BFF_PUBLIC_URL names, so that the
    provider would send browsers back to an address nobody answers (or another one).
    Only for a plain-http public URL (development, loopback): an https one is served
    through a TLS-terminating proxy, which may map any port."""
    public = urlsplit(settings.public_url)
    if public.scheme != "http" or settings.trusted_proxies or settings.port == 0:
        return []
    warnings = []
    port = _port_of(settings.public_url)
    if port is not None and port != settings.port:
        warnings.append(
            f"bff listens on port {settings.port} but BFF_PUBLIC_URL {settings.public_url} "
            f"names port {port}: after login the provider sends the browser to port {port}. "
            f"Set BFF_PUBLIC_URL to http://{public.hostname}:{settings.port}, or --port {port}, "
            "or list the proxy that forwards to bff in BFF_TRUSTED_PROXIES"
        )
    try:
        wildcard = ipaddress.ip_address(settings.host.strip("[]")).is_unspecified
    except ValueError:
        wildcard = False  # a host name
    if is_loopback_host(public.hostname) and not wildcard and not is_loopback_host(settings.host):
        warnings.append(
            f"bff listens on {settings.host}, which is not loopback, but BFF_PUBLIC_URL "
            f"{settings.public_url} names a loopback host: browsers cannot reach it there. "
            "Listen on 127.0.0.1 (--host) or set BFF_PUBLIC_URL to the address browsers use"
        )
    return warnings


def cookie_warnings(settings: Settings) -> list[str]:
    """An https session cookie without the `__Host-` prefix can be set or shadowed by a
    sibling subdomain (cookie tossing, THREATS.md): allowed, but worth a line."""
    if settings.secure and not settings.cookie_name.startswith("__Host-"):
        return [
            f"BFF_COOKIE_NAME {settings.cookie_name!r} has no __Host- prefix: on https a "
            "sibling subdomain can then toss a cookie of that name at bff (keep the "
            "default __Host-bff-session unless a subdomain must share it)"
        ]
    return []
