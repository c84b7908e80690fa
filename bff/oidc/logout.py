"""`/bff/logout`: end the session through the session service (delete, revoke: bounded,
best effort; audit), then send the browser to the provider's end-session endpoint
(RP-Initiated Logout 1.0) or, without one, to the frontend's post-logout page.
"""

from __future__ import annotations

from bff.config.model import Frontend
from bff.oidc.client import OidcClient
from bff.session.records import Session
from bff.session.service import SessionService

__all__ = ["logout"]


async def logout(
    session_hash: str,
    session: Session,
    *,
    frontend: Frontend,
    oidc: OidcClient,
    sessions: SessionService,
    client_ip: str | None = None,
    user_agent: str | None = None,
) -> str:
    """End the session, then where to send the browser."""
    await sessions.end(
        session_hash, session, "logout", revoke=True, client_ip=client_ip, user_agent=user_agent
    )
    fallback = frontend.post_logout_redirect
    metadata = oidc.metadata_or_none
    if metadata is None:
        return fallback
    # The ID token crosses the browser as id_token_hint (it names the user and the
    # provider session; it grants no API access). BFF_LOGOUT_ID_TOKEN_HINT=false sends
    # client_id + logout_hint=<sub> instead, for providers that accept them.
    hint = frontend.logout_id_token_hint
    url = oidc.end_session_url(
        metadata,
        id_token_hint=session.tokens.id_token if hint else None,
        logout_hint=None if hint else session.sub,
        post_logout_redirect_uri=frontend.post_logout_redirect_uri,
    )
    return url or fallback
