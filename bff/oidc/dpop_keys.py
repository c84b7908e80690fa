"""The per-session DPoP key pair (RFC 9449): a fresh EC P-256 key from the OS random
source, made at login. The proof rules are `bff.oidc.dpop`."""

from __future__ import annotations

from joserfc.jwk import ECKey

__all__ = ["new_dpop_key"]


def new_dpop_key() -> ECKey:
    """A new private P-256 key; it never leaves the session record (sealed) unsigned."""
    return ECKey.generate_key("P-256", private=True)
