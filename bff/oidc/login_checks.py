"""The rules of a login's round trip that need no I/O: the login-binding hash, the AAD a
sealed login state is bound to, and the callback's checks of the authorization response
(`iss`, the provider's `error=`) and of the login state it took back (age, browser
binding, provider). Pure: the time and the metadata are parameters.

Callback order (THREATS.md invariant 5): `iss` (RFC 9207), then state and its browser
binding, then the provider's error answer, then the code exchange with the PKCE
verifier, then ID-token validation, and only then a brand-new session.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Mapping

from bff.errors import BadRequest, ProviderErrorAnswer
from bff.oidc.metadata import ProviderMetadata
from bff.session.login_record import LoginState

__all__ = [
    "LOGIN_STATE_TTL",
    "binding_hash",
    "check_callback_params",
    "check_issuer",
    "check_taken_login",
    "provider_error",
    "state_aad",
]

LOGIN_STATE_TTL = 600  # seconds a login may take, and the binding cookie's Max-Age
_ERROR_CODE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_MAX_PARAM = 4096


def binding_hash(binding: str) -> str:
    """What a login state keeps of the browser's binding cookie value."""
    return hashlib.sha256(b"bff/login-binding\0" + binding.encode()).hexdigest()


def state_aad(state: str) -> bytes:
    """The AAD a login state is sealed with: the blob opens only under its own `state`."""
    return b"bff/login\0" + hashlib.sha256(state.encode()).digest()


def check_callback_params(params: Mapping[str, str]) -> None:
    for name, value in params.items():
        if len(value) > _MAX_PARAM:
            raise BadRequest(f"callback parameter {name[:32]!r} is too long")


def check_issuer(iss: str | None, metadata: ProviderMetadata) -> None:
    """RFC 9207: a missing (when advertised) or foreign `iss` is a mix-up attempt."""
    # Compared as UTF-8 bytes: compare_digest refuses non-ASCII str (a 500 otherwise).
    if (metadata.iss_parameter_supported or iss is not None) and (
        iss is None
        or not hmac.compare_digest(
            iss.encode("utf-8", "replace"), metadata.issuer.encode("utf-8", "replace")
        )
    ):
        raise BadRequest("the authorization response names another issuer", code="invalid_issuer")


def provider_error(params: Mapping[str, str]) -> ProviderErrorAnswer | None:
    """The provider's `error=` answer (e.g. the user cancelled), its code and text made
    safe to show; None when the response carries none."""
    error = params.get("error")
    if error is None:
        return None
    code = error if _ERROR_CODE.fullmatch(error) else "invalid_request"
    description = params.get("error_description", "")[:200]
    return ProviderErrorAnswer(code, "".join(ch for ch in description if ch.isprintable()))


def _invalid_state(description: str, reason: str) -> BadRequest:
    return BadRequest(description, code="invalid_state", reason=reason)


def check_taken_login(
    login: LoginState,
    *,
    now: float,
    binding: str | None,
    public_url: str,
    issuer: str,
) -> None:
    """The login state taken back is young enough, was started in this browser (its
    `binding` cookie value, None when absent or forged) and for this provider."""
    if now - login.created_at > LOGIN_STATE_TTL:
        raise _invalid_state("the login took too long; start again", "state_expired")
    if binding is None:
        # Most often the login began at another address than BFF_PUBLIC_URL (the
        # binding cookie is host-only), less often in another browser.
        raise _invalid_state(
            "this browser sent no login cookie: the login was started at another "
            f"address than {public_url} or in another browser; "
            f"open the app at {public_url} and log in again",
            "binding_missing",
        )
    if not hmac.compare_digest(binding_hash(binding), login.binding):
        raise _invalid_state("this login was started in another browser", "binding_mismatch")
    if login.issuer != issuer:
        raise _invalid_state("this login was started for another provider", "issuer_changed")
