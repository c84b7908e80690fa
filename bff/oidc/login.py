"""The login and callback flows (`/bff/login`, `/bff/callback`), independent of the web
framework; `logout` hands over to `bff.oidc.logout`.

The login is bounded before anything is stored or sent (`login_bounds`), asks the
provider first (PAR or the authorization URL, with PKCE, state and nonce), then seals its
state into the store through the session service. The callback's order (THREATS.md
invariant 5) and its pure checks are in `bff.oidc.login_checks`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from bff.config.model import Frontend
from bff.errors import BadRequest, BlobError, IdpRejected, IdpUnavailable, TokenValidationError
from bff.oidc.client import OidcClient
from bff.oidc.dpop import key_from_text, key_to_text
from bff.oidc.dpop_keys import new_dpop_key
from bff.oidc.login_bounds import PendingLogins, client_group
from bff.oidc.login_checks import (
    LOGIN_STATE_TTL,
    binding_hash,
    check_callback_params,
    check_issuer,
    check_taken_login,
    provider_error,
    state_aad,
)
from bff.oidc.logout import logout
from bff.oidc.pkce import code_challenge, new_binding, new_code_verifier, new_nonce, new_state
from bff.oidc.redirects import MAX_RETURN_URL, is_local_path
from bff.oidc.step_up import StepUp, check_acr_values, check_max_age, check_step_up_claims
from bff.session.cookies import CookieSigner
from bff.session.crypto import KeyRing
from bff.session.login_record import LoginState, decode_login_state, encode_login_state
from bff.session.records import Session, shown_claims
from bff.session.service import SessionRef, SessionService

__all__ = ["CallbackResult", "LoginFlow", "LoginStart"]

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


class LoginFlow:
    """One frontend's logins: start, callback, logout."""

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
            sessions, per_client=pending_per_client, total=pending_total, ttl=LOGIN_STATE_TTL
        )

    # ---- /bff/login ------------------------------------------------------------------
    async def start(
        self,
        *,
        return_url: str | None,
        binding_cookie: str | None,
        previous: SessionRef | None = None,
        client: str | None = None,
        acr_values: str | None = None,
        max_age: str | None = None,
    ) -> LoginStart:
        # Local paths are host-absolute: the default is the frontend's own root.
        return_url = f"{self._frontend.path_base}/" if return_url is None else return_url
        step = _step_up(acr_values, max_age)
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
            binding = new_binding()
        state, nonce, verifier = new_state(), new_nonce(), new_code_verifier()
        group = client_group(client)
        # Bounded before anything is stored or sent to the provider (THREATS.md 14).
        await self._pending.admit(group, state)
        try:
            return await self._start(
                state, nonce, verifier, return_url, binding, group, previous, step
            )
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
        step: StepUp | None,
    ) -> LoginStart:
        # DPoP: the session's key is made now, so that its thumbprint binds the code.
        dpop = new_dpop_key() if self._frontend.uses_dpop else None
        login = LoginState(
            code_verifier=verifier,
            nonce=nonce,
            return_url=return_url,
            binding=binding_hash(binding),
            issuer=self._frontend.issuer,
            created_at=int(self._clock()),
            previous=previous.hash if previous is not None else None,
            client_group=group,
            acr_values=step.acr_values if step else None,
            max_age=step.max_age if step else None,
            dpop_key=key_to_text(dpop) if dpop is not None else None,
        )
        # Ask the provider first: if it is down, nothing is stored.
        url = await self._oidc.authorization_url(
            state=state,
            nonce=nonce,
            code_challenge=code_challenge(verifier),
            acr_values=login.acr_values,
            max_age=login.max_age,
            dpop=dpop,
        )
        blob = self._keys.seal(encode_login_state(login), aad=state_aad(state))
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
        client_ip: str = "",
    ) -> CallbackResult:
        check_callback_params(params)
        check_issuer(params.get("iss"), await self._oidc.metadata())
        login = await self._take_state(params.get("state"), binding_cookie)
        refused = provider_error(params)
        if refused is not None:
            raise refused
        code_value = params.get("code")
        if not code_value:
            raise BadRequest("the callback carries no authorization code")
        try:
            tokens = await self._oidc.exchange_code(
                code=code_value,
                code_verifier=login.code_verifier,
                dpop=key_from_text(login.dpop_key) if login.dpop_key else None,
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
        if login.acr_values is not None or login.max_age is not None:
            step = StepUp(acr_values=login.acr_values, max_age=login.max_age)
            try:
                check_step_up_claims(claims, step, now=self._clock())
            except ValueError as exc:  # the provider did not give what was asked
                raise BadRequest(
                    f"the ID token is not valid: {exc}", code="invalid_id_token"
                ) from None
        shown = shown_claims(claims)  # what /bff/user shows; the record derives it again
        # Drop whatever session this browser had: one browser, one fresh session.
        replaced = {login.previous} if login.previous else set()
        if previous is not None:
            replaced.add(previous.hash)
        for old_hash in replaced:
            await self._sessions.delete(old_hash, await self._sessions.load_by_hash(old_hash))
        ref, session = await self._sessions.create(
            tokens=tokens,
            claims=shown,
            user_agent=user_agent,
            dpop_key=login.dpop_key,
            client_ip=client_ip,
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
            login = decode_login_state(self._keys.open(blob, aad=state_aad(state)))
        except (BlobError, ValueError):
            raise BadRequest(
                "unreadable login state", code="invalid_state", reason="state_unreadable"
            ) from None
        if login.client_group is not None:  # taken: no longer pending, whatever follows
            await self._pending.release(login.client_group, state)
        check_taken_login(
            login,
            now=self._clock(),
            binding=self._signer.unsign_binding(binding_cookie) if binding_cookie else None,
            public_url=self._frontend.public_url,
            issuer=self._frontend.issuer,
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
        """End the session (through `SessionService.end`), then where to send the browser."""
        return await logout(
            ref.hash,
            session,
            frontend=self._frontend,
            oidc=self._oidc,
            sessions=self._sessions,
            client_ip=client_ip,
            user_agent=user_agent,
        )


def _step_up(acr_values: str | None, max_age: str | None) -> StepUp | None:
    """The step-up a login asks for (`/bff/login?acr_values=...&max_age=...`), bounded;
    BadRequest when malformed."""
    if acr_values is None and max_age is None:
        return None
    try:
        return StepUp(
            acr_values=check_acr_values(acr_values) if acr_values is not None else None,
            max_age=check_max_age(max_age) if max_age is not None else None,
        )
    except ValueError as exc:
        raise BadRequest(str(exc), code="invalid_request") from None
