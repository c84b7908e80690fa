"""PKCE (RFC 7636 S256), state, nonce and browser-binding values. Pure apart from the OS
random source: the randomness is ours (`secrets`), the S256 transform is authlib's."""

from __future__ import annotations

import secrets

from authlib.oauth2.rfc7636 import create_s256_code_challenge

__all__ = ["code_challenge", "new_binding", "new_code_verifier", "new_nonce", "new_state"]


def new_code_verifier() -> str:
    """43 characters of base64url: 256 bits of entropy (RFC 7636 §4.1)."""
    return secrets.token_urlsafe(32)


def code_challenge(verifier: str) -> str:
    """S256: BASE64URL(SHA256(ASCII(verifier))) without padding (RFC 7636 §4.2)."""
    challenge: str = create_s256_code_challenge(verifier)
    return challenge


def new_state() -> str:
    return secrets.token_urlsafe(32)


def new_nonce() -> str:
    return secrets.token_urlsafe(32)


def new_binding() -> str:
    """The login-binding cookie's value: one per browser, shared by its parallel logins."""
    return secrets.token_urlsafe(32)
