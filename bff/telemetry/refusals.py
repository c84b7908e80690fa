"""The refusal log (`bff.refused`): one line per refused callback, CSRF refusal and 401,
with its machine-readable reason; never a query string, a token, a code, a cookie value
or a secret."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from bff.answers import TABLE, Kind

__all__ = ["log_refusal", "no_session_reason"]

_refusals = logging.getLogger("bff.refused")
# A 401 is the everyday refusal (an expired session): INFO; the others are WARNING.
_UNAUTHENTICATED = TABLE[Kind.NOT_AUTHENTICATED].status


def log_refusal(scope: Mapping[str, Any], status: int, code: str, reason: str) -> None:
    """One line per refused callback, CSRF refusal and 401 with its machine-readable
    reason: never a query string, a token, a code, a cookie value or a secret."""
    state = scope.get("state")
    _refusals.log(
        logging.INFO if status == _UNAUTHENTICATED else logging.WARNING,
        "%s %s: %s %s reason=%s rid=%s",
        scope.get("method", "WEBSOCKET"),  # an upgrade's scope has no method
        scope["path"][:256].encode("unicode_escape").decode("ascii"),
        status,
        code,
        reason,
        (state.get("request_id") if state else None) or "-",
    )


def no_session_reason(cookie: str | None, ref: object | None) -> str:
    """Why a request has no live session, for the log line of its 401 (`ref`: the
    session reference its cookie named, None when it named none)."""
    if not cookie:
        return "no_cookie"
    return "cookie_invalid" if ref is None else "session_not_found"
