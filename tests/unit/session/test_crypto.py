"""bff.session.crypto: sealing at rest, bound to the store key, with key rotation."""

from __future__ import annotations

import pytest

from bff.errors import BlobError
from bff.session.crypto import KeyRing

OLD, NEW = "o" * 32, "n" * 32


def test_encryption_round_trip_binding_and_rotation() -> None:
    old, rotated = KeyRing([OLD]), KeyRing([NEW, OLD])
    blob = old.seal(b"tokens", aad=b"h1")
    assert b"tokens" not in blob
    assert rotated.open(blob, aad=b"h1") == b"tokens"
    with pytest.raises(BlobError):
        rotated.open(blob, aad=b"h2")  # moved to another session's key
    with pytest.raises(BlobError):
        KeyRing([NEW]).open(blob, aad=b"h1")  # the old key was retired
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(BlobError):
        old.open(tampered, aad=b"h1")
    with pytest.raises(BlobError):
        old.open(rotated.seal(b"x", aad=b"h"), aad=b"h")  # new blobs use the new key
    assert "o" * 32 not in repr(old)
