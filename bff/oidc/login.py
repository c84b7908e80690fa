"""The login, callback and logout flows, independent of the web framework.

Callback order (THREATS.md invariant 5): `iss` (RFC 9207), then state and its browser
binding, then the provider's error answer, then the code exchange with the PKCE
verifier, then ID-token validation, and only then a brand-new session.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bff.config.model import Frontend
from bff.errors import BadRequest, IdpRejected, IdpUnavailable, TokenValidationError
from bff.oidc.client import OidcClient
from bff.oidc.login_bounds import PendingLogins, client_group
from bff.oidc.pkce import code_challenge, new_code_verifier, new_nonce, new_state
from bff.oidc.redirects import MAX_RETURN_URL, is_local_path
from bff.session.cookies import CookieSigner
from bff.session.crypto import BlobError, KeyRing
from bff.session.records import (
    LoginState,
    Session,
    decode_login_state,
    encode_login_state,
    shown_claims,
)
from bff.session.service import SessionRef, SessionService

__all__ = [
    "LOGIN_STATE_TTL",
    "CallbackResult",
    "LoginFlow",
    "LoginStart",
    "ProviderErrorAnswer",
]

LOGIN_STATE_TTL = 600  # seconds a login may take, and the binding cookie's Max-Age
_ERROR_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_MAX_PARAM = 4096
_log = logging.getLogger("bff.auth")


@dataclass(frozen=True, slots=True)
class LoginStart:
    redirect_to: str
    binding_cookie: str  # signed value for the login-binding cookie


@dataclass(frozen=True, slots=True)
class CallbackResult:
    ref: SessionRef
    session: Session
    return_url: str


class ProviderErrorAnswer(BadRequest):
    """The provider sent the browser back with `error=` (e.g. the user cancelled)."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(description or f"the provider refused the login ({error})", code=error)


def _binding_hash(binding: str) -> str:
    return hashlib.sha256(b"bff/login-binding\0" + binding.encode()).hexdigest()


def _state_aad(state: str) -> bytes:
    return b"bff/login\0" + hashlib.sha256(state.encode()).digest()


class LoginFlow:
    def __init__(
        self,
        *,
        frontend: Frontend,
        pending_per_client: int,
        pending_total: int,
        oidc: OidcClient,
        sessions: SessionService,
        keys: KeyRing,
        signer: CookieSigner,
        clock: Callable[[], float],
    ) -> None:
        self._frontend = frontend
        self._oidc = oidc
        self._sessions = sessions
        self._keys = keys
        self._signer = signer
        self._clock = clock
        self._pending = PendingLogins(
            sessions.store,
            per_client=pending_per_client,
            total=pending_total,
            ttl=LOGIN_STATE_TTL,
        )

    # ---- /bff/login ------------------------------------------------------------------
    async def start(
        self,
        *,
        return_url: str | None,
        binding_cookie: str | None,
        previous: SessionRef | None = None,
        client: str | None = None,
    ) -> LoginStart:
        return_url = "/" if return_url is None else return_url
        if not is_local_path(return_url):
            raise BadRequest(
                f"returnUrl must be a local path such as /app, of at most {MAX_RETURN_URL}"
                " characters",
                code="invalid_return_url",
            )
        # One binding value per browser, reused by parallel logins in several tabs,
        # so logins never pile up cookies (oauth2-proxy #2163).
        binding = self._signer.unsign_binding(binding_cookie) if binding_cookie else None
        if binding is None:
            binding = secrets.token_urlsafe(32)
        state, nonce, verifier = new_state(), new_nonce(), new_code_verifier()
        group = client_group(client)
        # Bounded before anything is stored or sent to the provider (THREATS.md 14).
        await self._pending.admit(group, state)
        try:
            return await self._start(state, nonce, verifier, return_url, binding, group, previous)
        except BaseException:
            await self._pending.release(group, state, quietly=True)
            raise

    async def _start(
        self,
        state: str,
        nonce: str,
        verifier: str,
        return_url: str,
        binding: str,
        group: str,
        previous: SessionRef | None,
    ) -> LoginStart:
        login = LoginState(
            code_verifier=verifier,
            nonce=nonce,
            return_url=return_url,
            binding=_binding_hash(binding),
            issuer=self._frontend.issuer,
            created_at=int(self._clock()),
            previous=previous.hash if previous is not None else None,
            client_group=group,
        )
        # Ask the provider first: if it is down, nothing is stored.
        url = await self._oidc.authorization_url(
            state=state, nonce=nonce, code_challenge=code_challenge(verifier)
        )
        blob = self._keys.seal(encode_login_state(login), aad=_state_aad(state))
        await self._pending.track_browser(login.binding, state)
        await self._sessions.put_login_state(state, blob, ttl=LOGIN_STATE_TTL)
        return LoginStart(redirect_to=url, binding_cookie=self._signer.sign_binding(binding))

    # ---- /bff/callback ---------------------------------------------------------------
    async def finish(
        self,
        params: Mapping[str, str],
        *,
        binding_cookie: str | None,
        user_agent: str,
        previous: SessionRef | None,
    ) -> CallbackResult:
        for name, value in params.items():
            if len(value) > _MAX_PARAM:
                raise BadRequest(f"callback parameter {name[:32]!r} is too long")
        metadata = await self._oidc.metadata()
        iss = params.get("iss")
        # RFC 9207: a missing (when advertised) or foreign `iss` is a mix-up attempt.
        # Compared as UTF-8 bytes: compare_digest refuses non-ASCII str (a 500 otherwise).
        if (metadata.iss_parameter_supported or iss is not None) and (
            iss is None
            or not hmac.compare_digest(
                iss.encode("utf-8", "replace"), metadata.issuer.encode("utf-8", "replace")
            )
        ):
            raise BadRequest(
                "the authorization response names another issuer", code="invalid_issuer"
            )
        login = await self._take_state(params.get("state"), binding_cookie)
        error = params.get("error")
        if error is not None:
            code = error if _ERROR_CODE.fullmatch(error) else "invalid_request"
            description = params.get("error_description", "")[:200]
            raise ProviderErrorAnswer(code, "".join(ch for ch in description if ch.isprintable()))
        code_value = params.get("code")
        if not code_value:
            raise BadRequest("the callback carries no authorization code")
        try:
            tokens = await self._oidc.exchange_code(
                code=code_value, code_verifier=login.code_verifier
            )
        except IdpRejected as exc:
            raise BadRequest(
                "the provider refused the authorization code", code=exc.error
            ) from None
        if not tokens.id_token:
            raise IdpUnavailable("the token response has no id_token")
        if tokens.refresh_token is None and "offline_access" in self._frontend.scopes.split():
            # The session will end when this access token does (some providers grant
            # offline_access only with prompt=consent, OIDC Core §11).
            _log.warning("offline_access was requested but the provider issued no refresh token")
        try:
            claims = await self._oidc.validate_id_token(tokens.id_token, nonce=login.nonce)
        except TokenValidationError as exc:
            raise BadRequest(f"the ID token is not valid: {exc}", code="invalid_id_token") from None
        shown = shown_claims(claims)  # what /bff/user shows; the record derives it again
        # Drop whatever session this browser had: one browser, one fresh session.
        replaced = {login.previous} if login.previous else set()
        if previous is not None:
            replaced.add(previous.hash)
        for old_hash in replaced:
            await self._sessions.delete(old_hash, await self._sessions.load_by_hash(old_hash))
        ref, session = await self._sessions.create(
            tokens=tokens, claims=shown, user_agent=user_agent
        )
        return CallbackResult(ref=ref, session=session, return_url=login.return_url)

    async def _take_state(self, state: str | None, binding_cookie: str | None) -> LoginState:
        if not state:
            raise BadRequest(
                "the callback carries no state", code="invalid_state", reason="state_missing"
            )
        # Single use: taken (deleted) before anything else is checked.
        blob = await self._sessions.take_login_state(state)
        if blob is None:
            raise BadRequest(
                "unknown, expired or already used login state",
                code="invalid_state",
                reason="state_unknown",
            )
        try:
            login = decode_login_state(self._keys.open(blob, aad=_state_aad(state)))
        except (BlobError, ValueError):
            raise BadRequest(
                "unreadable login state", code="invalid_state", reason="state_unreadable"
            ) from None
        if login.client_group is not None:  # taken: no longer pending, whatever follows
            await self._pending.release(login.client_group, state)
        if self._clock() - login.created_at > LOGIN_STATE_TTL:
            raise BadRequest(
                "the login took too long; start again",
                code="invalid_state",
                reason="state_expired",
            )
        binding = self._signer.unsign_binding(binding_cookie) if binding_cookie else None
        if binding is None:
            # Most often the login began at another address than BFF_PUBLIC_URL (the
            # binding cookie is host-only), less often in another browser.
            raise BadRequest(
                "this browser sent no login cookie: the login was started at another "
                f"address than {self._frontend.public_url} or in another browser; "
                f"open the app at {self._frontend.public_url} and log in again",
                code="invalid_state",
                reason="binding_missing",
            )
        if not hmac.compare_digest(_binding_hash(binding), login.binding):
            raise BadRequest(
                "this login was started in another browser",
                code="invalid_state",
                reason="binding_mismatch",
            )
        if login.issuer != self._frontend.issuer:
            raise BadRequest(
                "this login was started for another provider",
                code="invalid_state",
                reason="issuer_changed",
            )
        if not await self._pending.still_tracked(login.binding, state):
            raise BadRequest(
                "this login was replaced by newer logins in this browser; start again",
                code="invalid_state",
                reason="login_replaced",
            )
        return login

    # ---- /bff/logout -----------------------------------------------------------------
    async def logout(
        self,
        ref: SessionRef,
        session: Session,
        *,
        client_ip: str | None = None,
        user_agent: str | None = None,
    ) -> str:
        """End the session (delete, revoke: bounded, best effort; audit), then where to
        send the browser."""
        await self._sessions.end(
            ref.hash, session, "logout", revoke=True, client_ip=client_ip, user_agent=user_agent
        )
        id_token = session.tokens.id_token
        fallback = self._frontend.post_logout_redirect
        metadata = self._oidc.metadata_or_none
        if metadata is None:
            return fallback
        # The ID token crosses the browser as id_token_hint (it names the user and the
        # provider session; it grants no API access). BFF_LOGOUT_ID_TOKEN_HINT=false sends
        # client_id + logout_hint=<sub> instead, for providers that accept them.
        hint = self._frontend.logout_id_token_hint
        url = self._oidc.end_session_url(
            metadata,
            id_token_hint=id_token if hint else None,
            logout_hint=None if hint else session.sub,
            post_logout_redirect_uri=self._frontend.post_logout_redirect_uri,
        )
        return url or fallback
