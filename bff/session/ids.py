"""Session ids: the one place a session's credential is drawn from the OS random source
(the pure records only hash it)."""

from __future__ import annotations

import secrets

__all__ = ["new_session_id"]


def new_session_id() -> str:
    """256 random bits, base64url (43 characters)."""
    return secrets.token_urlsafe(32)
