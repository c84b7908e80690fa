"""What a proxied request is sent with: the CSRF check first (THREATS.md invariant 7:
before any token is looked up or anything leaves for an upstream), then the session its
cookie names (one store round trip in the steady state: `SessionService.load` reads and
slides the idle expiry) and the access token for it under the route's `token` setting
(`TokenManager.for_route`: the session's, the route's own, or the client's; every one
of them needs a live session). A refusal is an answer from the
table (`bff.proxy.replies`), logged with its reason."""

from __future__ import annotations

import logging
from collections.abc import MutableMapping
from dataclasses import dataclass, field
from typing import Any

from bff.answers import TABLE, Answer, Kind
from bff.config.model import RouteConfig
from bff.errors import StoreUnavailable
from bff.proxy.replies import BY_KIND, CSRF, NOT_AUTHENTICATED, STORE_DOWN
from bff.proxy.request_checks import csrf_ok, csrf_refusal
from bff.proxy.request_headers import Inbound
from bff.session.cookies import find_cookie
from bff.session.records import Session, short_hash
from bff.session.service import SessionRef, SessionService
from bff.telemetry.refusals import log_refusal, no_session_reason
from bff.tokens.manager import TokenManager
from bff.tokens.results import Bearer, TokenFailure

__all__ = ["ANONYMOUS", "Credentials", "credentials"]

_log = logging.getLogger("bff.proxy")
_UNAUTHENTICATED = TABLE[Kind.NOT_AUTHENTICATED].status  # 401s are logged with a reason


@dataclass(frozen=True, slots=True)
class Credentials:
    """The session a request runs under (None: none) and the bearer it carries upstream
    (with the session's DPoP key when the token is bound to it)."""

    ref: SessionRef | None = None
    session: Session | None = None
    bearer: str | None = field(default=None, repr=False)
    dpop_key: str | None = field(default=None, repr=False)  # the bearer is DPoP-bound


ANONYMOUS = Credentials()


async def credentials(
    scope: MutableMapping[str, Any],
    config: RouteConfig,
    inbound: Inbound,
    *,
    sessions: SessionService,
    tokens: TokenManager,
    cookie_name: str,
) -> Credentials | Answer:
    """The request's credentials under its route's `csrf` and `token` settings, or the
    answer that refuses it."""
    raw_headers = scope["headers"]
    if config.csrf and not csrf_ok(raw_headers):
        log_refusal(scope, CSRF[0], TABLE[Kind.CSRF].code, csrf_refusal(raw_headers))
        return CSRF
    if config.token == "none":
        return ANONYMOUS
    state = scope.get("state")
    try:
        ref = sessions.ref_from_cookie(find_cookie(inbound.cookies, cookie_name))
        if ref is not None and state is not None:
            state["session"] = short_hash(ref.hash)  # for the access log
        session = await sessions.load(ref) if ref is not None else None
        result = await tokens.for_route(ref, session, config) if ref and session else None
    except StoreUnavailable:
        _log.warning("%s: session store unavailable", config.prefix)
        return STORE_DOWN
    if isinstance(result, Bearer):
        return Credentials(ref, session, result.token, result.dpop_key)
    if isinstance(result, TokenFailure) or config.token != "optional":
        answer = BY_KIND[result.kind] if result else NOT_AUTHENTICATED
        if answer[0] == _UNAUTHENTICATED:
            cookie = find_cookie(inbound.cookies, cookie_name)
            code = result.code if result else TABLE[Kind.NOT_AUTHENTICATED].code
            reason = code if result else no_session_reason(cookie, ref)
            log_refusal(scope, answer[0], code, reason)
        return answer
    # token = "optional" without a usable session: forwarded without a bearer
    return Credentials(ref, session)
