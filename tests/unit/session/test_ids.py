"""bff.session.ids: session ids are 256 random bits, and the store key is their hash."""

from __future__ import annotations

from bff.session.ids import new_session_id
from bff.session.records import session_hash


def test_session_ids_are_random_base64url_and_hash_to_a_store_key() -> None:
    ids = {new_session_id() for _ in range(100)}
    assert len(ids) == 100
    assert all(len(i) == 43 and i.isascii() and "=" not in i for i in ids)
    hashes = {session_hash(i) for i in ids}
    assert len(hashes) == 100
    assert all(len(h) == 32 and h not in ids for h in hashes)
