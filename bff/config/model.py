"""The configuration model: frozen dataclasses and nothing else. A `Frontend` is the
unit of configuration (one public URL, one OIDC client at one provider, its cookies,
routes and session timeouts); `Settings` holds one or more of them plus the settings
of the process (keys, store, upstream pool, listeners, logging). Pure.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from bff.config.checks import split_host_port

__all__ = [
    "CLIENT_AUTH_METHODS",
    "DEFAULT_FRONTEND",
    "DEFAULT_SCOPES",
    "Frontend",
    "RouteConfig",
    "Settings",
    "TokenMode",
]

DEFAULT_SCOPES = "openid profile email offline_access"
DEFAULT_FRONTEND = "default"  # the name of the frontend the flat BFF_* settings describe
TokenMode = Literal["user", "optional", "none", "client", "exchange"]
# `client_auth` values; "" lets the provider's metadata choose between the two secrets.
CLIENT_AUTH_METHODS = ("client_secret_basic", "client_secret_post", "private_key_jwt")


@dataclass(frozen=True, slots=True)
class RouteConfig:
    prefix: str
    upstream: str
    token: TokenMode = "user"
    csrf: bool = True
    methods: frozenset[str] | None = None
    retry_on_401: bool = False
    # A route's own token (`bff.tokens.audience`): `scope` is the space-joined `scopes`
    # list, `resource` an RFC 8707 resource indicator. Unset: the session's token.
    scopes: str | None = None
    resource: str | None = None
    path_params: bool = False  # `;` path parameters pass (an upstream that uses them)
    websocket: bool = False  # WebSocket upgrades pass (bff.proxy.websocket)
    origins: tuple[str, ...] = ()  # their Origin allow-list; empty: the public URL's origin
    dpop: bool = False  # DPoP-bound session tokens (RFC 9449), as the frontend's `dpop`


@dataclass(frozen=True, slots=True, kw_only=True)
class Frontend:
    """One browser application: where it is served, the client it logs in with, its
    cookies, session timeouts and API routes."""

    name: str = DEFAULT_FRONTEND
    public_url: str = "http://localhost:8000"
    issuer: str
    client_id: str
    client_secret: str = field(default="", repr=False)
    client_auth: str = ""  # one of CLIENT_AUTH_METHODS; "": a secret, as the provider prefers
    client_key_file: str | None = None  # private_key_jwt: the PEM or JWK private key
    dpop: bool = False  # DPoP-bound tokens (RFC 9449) and a proof on every upstream call
    scopes: str = DEFAULT_SCOPES
    resource: str | None = None
    prompt: str | None = None
    routes: tuple[RouteConfig, ...] = ()
    cookie_name: str = "bff-session"
    cookie_samesite: Literal["strict", "lax"] = "strict"
    idle_timeout: int = 1800
    max_lifetime: int = 86400
    refresh_skew: int = 30
    session_expiring_window: int = 60  # /bff/events says session_expiring this early
    # What session records are written as: 3, or 2 while instances of a release before
    # format 3 still run beside this one (both are read, whatever this says).
    session_record_format: Literal[2, 3] = 3
    post_logout_redirect: str = "/"
    logout_id_token_hint: bool = True
    static_dir: str | None = None

    @property
    def secure(self) -> bool:
        return self.public_url.startswith("https://")

    @property
    def redirect_uri(self) -> str:
        return f"{self.public_url}/bff/callback"

    @property
    def origin(self) -> str:
        """The public URL without its path base (scheme://host[:port])."""
        scheme, _, rest = self.public_url.partition("://")
        return f"{scheme}://{rest.split('/', 1)[0]}"

    @property
    def path_base(self) -> str:
        """The public URL's path ("" or "/app"): a frontend that shares its host with
        others is told apart by it, and sees request paths without it."""
        return self.public_url[len(self.origin) :]

    @property
    def post_logout_redirect_uri(self) -> str:
        # A local path is host-absolute (as the redirect after a local logout is).
        return f"{self.origin}{self.post_logout_redirect}"

    @property
    def session_namespace(self) -> str:
        """What binds a session to this frontend (cookie signature salt, store key,
        sealed record, index): "" for the default frontend, whose sessions keep the
        keys and salts they always had; the frontend's name otherwise."""
        return "" if self.name == DEFAULT_FRONTEND else self.name

    @property
    def login_cookie_name(self) -> str:
        return f"{self.cookie_name}-login"

    @property
    def uses_dpop(self) -> bool:
        """Sessions get a DPoP key when the frontend or any of its routes asks for it."""
        return self.dpop or any(route.dpop for route in self.routes)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """The process: its frontends (the first is the default) and what they share."""

    frontends: tuple[Frontend, ...]
    secret_keys: tuple[str, ...] = field(repr=False)
    session_store: str = "memory://"
    store_prefix: str = "bff"
    upstream_timeout: float = 30.0
    # Per worker: connections to one upstream origin; requests of one session in flight
    # upstream; seconds a request waits for either before 503 upstream_busy.
    upstream_max_connections: int = 256
    upstream_max_connections_per_session: int = 32
    upstream_queue_timeout: float = 1.0
    # The upstream client: the lean HTTP/1.1 client, or aiohttp's (the `aiohttp` extra).
    upstream_transport: Literal["lean", "aiohttp"] = "lean"
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
    admin_token_file: str | None = None  # the admin API's bearer token; none: no admin API
    log_format: Literal["text", "json"] = "text"
    tracing: Literal["off", "otlp"] = "off"
    shutdown_drain_delay: float = 5.0  # SIGTERM: seconds /readyz is 503 before refusing
    shutdown_timeout: float = 30.0  # then: bound on in-flight requests (streams included)
    # where each value came from (TOML key -> env name, --flag, "config file"), for
    # check-config; not a setting
    sources: tuple[tuple[str, str], ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        names = [f.name for f in self.frontends]
        if not names:
            raise ValueError("Settings needs at least one frontend")
        if len(set(names)) != len(names):
            raise ValueError(f"frontend names must be unique, got {names}")

    @property
    def frontend(self) -> Frontend:
        """The default frontend: the first, the one the flat BFF_* settings describe."""
        return self.frontends[0]

    @property
    def admin_address(self) -> tuple[str, int] | None:
        """(host, port) of the admin listener, or None when it is off."""
        return split_host_port(self.admin_listen) if self.admin_listen else None
