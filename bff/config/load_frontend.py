"""One `Frontend` from the keys a collector reads: the flat `BFF_*` variables and
top-level TOML keys for the default frontend today; any other mapping of the same keys
(a `[[frontends]]` table, later) through a collector of its own. Problems are filed in
the collector, under the collector's names."""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from bff.config.checks import resource_problem, url_problems
from bff.config.collector import Collector
from bff.config.model import (
    CLIENT_AUTH_METHODS,
    DEFAULT_FRONTEND,
    DEFAULT_SCOPES,
    Frontend,
    RouteConfig,
)
from bff.config.routes import parse_routes
from bff.oidc.client_assertion import parse_client_key
from bff.oidc.redirects import is_local_path

__all__ = ["PROMPTS", "load_frontend"]

PROMPTS = frozenset({"none", "login", "consent", "select_account"})
# A public URL's path base: plain segments, none of them "." or "..".
_PATH_BASE = re.compile(r"(?:/(?!\.\.?(?:/|$))[A-Za-z0-9._~-]+)+")


def load_frontend(
    c: Collector, name: str = DEFAULT_FRONTEND, *, path_base: bool = False
) -> Frontend:
    """The frontend the collector's keys describe; its values are placeholders when
    `c.problems` is not empty afterwards (the caller raises then). With `path_base`
    (a `[[frontends]]` table) the public URL may end in a path base such as `/app`."""
    issuer = c.required("issuer").rstrip("/")
    if issuer:
        c.problems.extend(url_problems(issuer, c.label("issuer"), https_unless_loopback=True))
    client_id = c.required("client_id")
    client_auth, client_secret, client_key_file = _client_auth(c)
    scopes = c.text("scopes", DEFAULT_SCOPES) or DEFAULT_SCOPES
    if "openid" not in scopes.split():
        c.problems.append(f"{c.label('scopes')}: must include 'openid'")
    resource = c.text("resource") or None
    problem = resource_problem(resource) if resource else None
    if problem:
        c.problems.append(f"{c.label('resource')}: {problem}")
    prompt = _prompt(c)
    public_url = (c.text("public_url", "http://localhost:8000") or "").rstrip("/")
    c.problems.extend(
        url_problems(
            public_url, c.label("public_url"), allow_path=path_base, https_unless_loopback=True
        )
    )
    base = urlsplit(public_url).path
    if base and not _PATH_BASE.fullmatch(base):
        c.problems.append(
            f"{c.label('public_url')}: the path base {base!r} must be /segment[/segment…] "
            "of letters, digits and -._~ (no '.' or '..' segment, no trailing /)"
        )
    secure = public_url.startswith("https://")

    default_cookie = "__Host-bff-session" if secure else "bff-session"
    cookie_name = c.text("cookie_name", default_cookie) or default_cookie
    if not cookie_name.replace("-", "").replace("_", "").isalnum():
        c.problems.append(
            f"{c.label('cookie_name')}: only letters, digits, '-' and '_' are allowed"
        )
    if not secure and cookie_name.startswith(("__Host-", "__Secure-")):
        c.problems.append(
            f"{c.label('cookie_name')}: __Host- / __Secure- names need an https "
            f"{c.label('public_url')}"
        )
    samesite = (c.text("cookie_samesite", "strict") or "strict").lower()
    if samesite not in ("strict", "lax"):
        c.problems.append(f"{c.label('cookie_samesite')}: must be strict or lax")
        samesite = "strict"

    idle = c.number("session_idle_timeout", 1800, minimum=1)
    lifetime = c.number("session_max_lifetime", 86400, minimum=1)
    skew = c.number("refresh_skew", 30, minimum=0)
    expiring_window = c.number("session_expiring_window", 60, minimum=1)
    record_format = c.number("session_record_format", 3, minimum=2)
    if record_format not in (2, 3):
        c.problems.append(f"{c.label('session_record_format')}: must be 2 or 3")
        record_format = 3
    post_logout = c.text("post_logout_redirect", f"{base}/") or f"{base}/"
    if not is_local_path(post_logout):
        c.problems.append(f"{c.label('post_logout_redirect')}: must be a local path such as /")
    static_dir = c.text("static_dir") or None
    if static_dir and not Path(static_dir).is_dir():
        c.problems.append(f"{c.label('static_dir')}: {static_dir!r} is not a directory")
    routes = parse_routes(c)
    dpop = c.optional_flag("dpop", False)
    c.problems.extend(_dpop_problems(c, routes, dpop))
    # Off: logout sends client_id + logout_hint instead of the ID token through the browser.
    id_token_hint = c.optional_flag("logout_id_token_hint", True)
    return Frontend(
        name=name,
        public_url=public_url,
        issuer=issuer,
        client_id=client_id,
        client_secret=client_secret,
        client_auth=client_auth,
        client_key_file=client_key_file,
        dpop=dpop,
        scopes=scopes,
        resource=resource,
        prompt=prompt,
        routes=routes,
        cookie_name=cookie_name,
        cookie_samesite="lax" if samesite == "lax" else "strict",
        idle_timeout=idle,
        max_lifetime=lifetime,
        refresh_skew=skew,
        session_expiring_window=expiring_window,
        session_record_format=2 if record_format == 2 else 3,
        post_logout_redirect=post_logout,
        logout_id_token_hint=id_token_hint,
        static_dir=static_dir,
    )


def _dpop_problems(c: Collector, routes: tuple[RouteConfig, ...], dpop: bool) -> list[str]:
    """DPoP is not combined with routes' own tokens nor with WebSockets yet: refused, so
    that no token leaves without the proof its binding needs (a narrowed, exchanged or
    client token would go without one, and so would a WebSocket handshake)."""
    if not dpop and not any(route.dpop for route in routes):
        return []
    why = f"{c.label('dpop')}" if dpop else "a route's dpop"
    out = []
    for route in routes:
        where = f"route {route.prefix!r}"
        if route.token in ("client", "exchange") or route.resource or route.scopes:
            out.append(
                f"{where}: per-route tokens (resource, scopes, token = client or exchange) "
                f"are not supported with DPoP ({why} is on); remove one of them"
            )
        if route.websocket and route.token != "none":
            out.append(
                f"{where}: websocket = true is not supported with DPoP ({why} is on: the "
                'upstream handshake would need a proof); remove one of them, or token = "none"'
            )
    return out


def _client_auth(c: Collector) -> tuple[str, str, str | None]:
    """(client_auth, client_secret, client_key_file): a secret, or with private_key_jwt
    a readable private key that names its `kid`, never both."""
    method = (c.text("client_auth", "") or "").lower()
    if method and method not in CLIENT_AUTH_METHODS:
        c.problems.append(
            f"{c.label('client_auth')}: must be one of {', '.join(CLIENT_AUTH_METHODS)}"
        )
        method = ""
    key_file = c.text("client_key_file") or None
    if method != "private_key_jwt":
        if key_file:
            c.problems.append(
                f"{c.label('client_key_file')}: used only with "
                f'{c.label("client_auth")}="private_key_jwt"'
            )
        return method, c.required("client_secret", secret=True), None
    if c.text("client_secret", secret=True):
        c.problems.append(
            f"{c.label('client_secret')}: not used with private_key_jwt (the key "
            "authenticates the client); remove it"
        )
    if not key_file:
        c.problems.append(f"{c.label('client_key_file')}: required with private_key_jwt")
        return method, "", None
    try:
        parse_client_key(Path(key_file).read_text(encoding="utf-8"))
    except OSError as exc:
        c.problems.append(f"{c.label('client_key_file')}: cannot read {key_file} ({exc.strerror})")
    except (ValueError, UnicodeDecodeError) as exc:
        c.problems.append(f"{c.label('client_key_file')}: {key_file}: {exc}")
    return method, "", key_file


def _prompt(c: Collector) -> str | None:
    # Some providers grant offline_access (a refresh token) only with prompt=consent
    # (OIDC Core §11); a fixed, validated value, never free-form parameters.
    prompt = c.text("prompt") or None
    if prompt and not set(prompt.split()) <= PROMPTS:
        c.problems.append(
            f"{c.label('prompt')}: {prompt!r} is not one of {', '.join(sorted(PROMPTS))} "
            "(space separated)"
        )
    if prompt and "none" in prompt.split() and len(prompt.split()) > 1:
        c.problems.append(f"{c.label('prompt')}: none cannot be combined with other values")
    return prompt
