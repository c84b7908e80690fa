"""The session service of one frontend: its cookies signed and its store keys, records and
index namespaced by its name, with its own timeouts. The one construction the app, the
admin API and `bff sessions` share, so that none of them can bind a frontend differently."""

from __future__ import annotations

from collections.abc import Callable

from bff.config.model import Frontend
from bff.session.cookies import CookieSigner
from bff.session.crypto import KeyRing
from bff.session.events import EndPublisher
from bff.session.service import REVOKE_TIMEOUT, Revoke, SessionService
from bff.store import SessionStore

__all__ = ["frontend_sessions", "frontend_signer"]


def frontend_signer(keys: KeyRing, frontend: Frontend) -> CookieSigner:
    """The frontend's cookie signer: its name is in the signatures' salt."""
    return CookieSigner(keys.signing_keys, namespace=frontend.session_namespace)


def frontend_sessions(
    frontend: Frontend,
    *,
    store: SessionStore,
    keys: KeyRing,
    clock: Callable[[], float],
    signer: CookieSigner | None = None,
    revoke: Revoke | None = None,
    revoke_timeout: float = REVOKE_TIMEOUT,
    events: EndPublisher | None = None,
) -> SessionService:
    """`signer`: the frontend's own (`frontend_signer`), when the caller shares it."""
    return SessionService(
        store=store,
        keys=keys,
        signer=signer or frontend_signer(keys, frontend),
        idle_timeout=frontend.idle_timeout,
        max_lifetime=frontend.max_lifetime,
        clock=clock,
        revoke=revoke,
        revoke_timeout=revoke_timeout,
        events=events,
        namespace=frontend.session_namespace,
        record_format=frontend.session_record_format,
        keep_id_token=frontend.logout_id_token_hint,
    )
