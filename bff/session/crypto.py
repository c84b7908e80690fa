"""Keys derived from BFF_SECRET_KEY (HKDF) and token encryption at rest (AES-256-GCM).

Every configured key decrypts; the first one encrypts (rotation: prepend a new key,
keep the old ones until their sessions have expired). The secret strings are input
key material only: signing and encryption keys are derived, never decoded, from them.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from bff.errors import BlobError

__all__ = ["KeyRing"]

_FORMAT = b"\x01"  # blob format version: 1 = AES-256-GCM, 4-byte key id, 12-byte nonce
_KID_LEN = 4
_NONCE_LEN = 12


def _derive(secret: str, purpose: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose).derive(
        secret.encode("utf-8")
    )


@dataclass(frozen=True, slots=True)
class _AeadKey:
    kid: bytes
    aead: AESGCM = field(repr=False)


class KeyRing:
    """Derived keys: AEAD keys for tokens at rest, signing keys for cookies, the HMAC
    key of session handles."""

    __slots__ = ("_by_kid", "_keys", "handle_key", "signing_keys")

    def __init__(self, secrets: Sequence[str]) -> None:
        if not secrets:
            raise ValueError("at least one secret key is required")
        self._keys: list[_AeadKey] = []
        for secret in secrets:
            raw = _derive(secret, b"bff/v1/token-encryption")
            kid = hashlib.sha256(b"bff/v1/kid" + raw).digest()[:_KID_LEN]
            self._keys.append(_AeadKey(kid=kid, aead=AESGCM(raw)))
        self._by_kid = {k.kid: k for k in self._keys}
        # itsdangerous wants the newest key last.
        self.signing_keys: list[bytes] = [
            _derive(secret, b"bff/v1/cookie-signing") for secret in reversed(secrets)
        ]
        # HMAC key of the session handles users see (`bff.session.inventory`): from the
        # active key only, so a rotation gives every session a new handle.
        self.handle_key: bytes = _derive(secrets[0], b"bff/v1/session-handle")

    def __repr__(self) -> str:
        return f"KeyRing(<{len(self._keys)} keys>)"

    def seal(self, plaintext: bytes, *, aad: bytes) -> bytes:
        """Encrypt with the first key; `aad` binds the blob to its store key."""
        key = self._keys[0]
        nonce = os.urandom(_NONCE_LEN)
        return _FORMAT + key.kid + nonce + key.aead.encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, *, aad: bytes) -> bytes:
        """Decrypt a blob sealed by any configured key; BlobError otherwise."""
        header = 1 + _KID_LEN + _NONCE_LEN
        if len(blob) <= header or blob[:1] != _FORMAT:
            raise BlobError("unknown blob format")
        key = self._by_kid.get(blob[1 : 1 + _KID_LEN])
        if key is None:
            raise BlobError("blob was sealed with a key that is no longer configured")
        nonce = blob[1 + _KID_LEN : header]
        try:
            return key.aead.decrypt(nonce, blob[header:], aad)
        except InvalidTag:
            raise BlobError("blob failed authentication") from None
