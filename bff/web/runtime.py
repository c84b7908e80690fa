"""The composed services the handlers of one frontend reach (`request.app.state.bff`), and
the one question they all ask: which session does this request's cookie name?"""

from __future__ import annotations

from collections.abc import Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

from bff.config.model import Frontend, Settings
from bff.oidc.client import OidcClient
from bff.oidc.login import LoginFlow
from bff.proxy.request_checks import header_values
from bff.session.cookies import find_cookie
from bff.session.records import Session, short_hash
from bff.session.service import SessionRef, SessionService
from bff.web.lifecycle import Lifecycle

__all__ = ["Runtime"]


@dataclass(slots=True)
class Runtime:
    """The composed parts, reachable from handlers as `request.app.state.bff`."""

    settings: Settings
    frontend: Frontend  # the one these handlers serve
    oidc: OidcClient
    sessions: SessionService
    flow: LoginFlow
    clock: Callable[[], float]
    lifecycle: Lifecycle = field(default_factory=Lifecycle)  # draining: /readyz is 503

    def cookie(self, scope: MutableMapping[str, Any], name: str) -> str | None:
        """The value of the request's cookie `name`, if it sent one."""
        return find_cookie(header_values(scope["headers"], b"cookie"), name)

    def session_ref(self, scope: MutableMapping[str, Any]) -> SessionRef | None:
        """The session the request's (signed) session cookie names, unchecked."""
        return self.sessions.ref_from_cookie(self.cookie(scope, self.frontend.cookie_name))

    async def current(
        self, scope: MutableMapping[str, Any]
    ) -> tuple[SessionRef | None, Session | None]:
        """The request's session, loaded (its idle expiry slid); its short hash goes to
        the access log."""
        ref = self.session_ref(scope)
        if ref is None:
            return None, None
        scope.setdefault("state", {})["session"] = short_hash(ref.hash)  # access log
        return ref, await self.sessions.load(ref)
