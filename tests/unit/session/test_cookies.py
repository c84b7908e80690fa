"""bff.session.cookies: signed cookie values, unambiguous Cookie parsing, Set-Cookie."""

from __future__ import annotations

from bff.session.cookies import (
    CookieSigner,
    build_set_cookie,
    expire_cookie,
    find_cookie,
    strip_cookies,
)
from bff.session.crypto import KeyRing
from bff.session.ids import new_session_id

OLD, NEW = "o" * 32, "n" * 32


def test_session_cookie_round_trip_and_tamper() -> None:
    signer = CookieSigner(KeyRing([NEW]).signing_keys)
    sid = new_session_id()
    value = signer.sign_session(sid, 1_900_000_000)
    assert sid in value  # signed, not encrypted: the id itself is the random credential
    assert signer.unsign_session(value) == (sid, 1_900_000_000)
    # (flip a character inside the signature: the last base64 character carries
    # bits a decoder ignores)
    middle = len(value) - 10
    flipped = "A" if value[middle] != "A" else "B"
    assert signer.unsign_session(value[:middle] + flipped + value[middle + 1 :]) is None
    assert signer.unsign_session(sid) is None
    # extend the lifetime by editing the cookie: the signature no longer matches
    forged = value.replace("1900000000", "1999999999")
    assert signer.unsign_session(forged) is None
    other = CookieSigner(KeyRing(["x" * 32]).signing_keys)
    assert other.unsign_session(value) is None


def test_binding_and_session_signatures_are_not_interchangeable() -> None:
    signer = CookieSigner(KeyRing([NEW]).signing_keys)
    binding = signer.sign_binding("a" * 43 + ".1900000000")
    assert signer.unsign_session(binding) is None


def test_signing_key_rotation() -> None:
    old = CookieSigner(KeyRing([OLD]).signing_keys)
    rotated = CookieSigner(KeyRing([NEW, OLD]).signing_keys)
    sid = new_session_id()
    assert rotated.unsign_session(old.sign_session(sid, 2_000_000_000)) == (sid, 2_000_000_000)
    assert old.unsign_session(rotated.sign_session(sid, 2_000_000_000)) is None


def test_find_cookie_refuses_ambiguity() -> None:
    assert find_cookie(["a=1; bff-session=v; b=2"], "bff-session") == "v"
    assert find_cookie(["a=1", "bff-session=v"], "bff-session") == "v"
    assert find_cookie(["bff-session=v; bff-session=w"], "bff-session") is None
    assert find_cookie(["bff-session=v", "bff-session=w"], "bff-session") is None
    assert find_cookie(["\u00a0bff-session=w; bff-session=v"], "bff-session") is None
    assert find_cookie(["bff-session\u200b=w; bff-session=v"], "bff-session") is None
    assert find_cookie(["other=1"], "bff-session") is None
    assert find_cookie([], "bff-session") is None


def test_strip_cookies() -> None:
    names = frozenset({"bff-session", "bff-session-login"})
    assert strip_cookies("a=1; bff-session=x; b=2", names) == "a=1; b=2"
    assert strip_cookies("bff-session=x;bff-session-login=y", names) is None


def test_set_cookie_attributes() -> None:
    value = build_set_cookie("__Host-bff-session", "v", max_age=60, secure=True, samesite="strict")
    assert value == "__Host-bff-session=v; Path=/; Max-Age=60; HttpOnly; Secure; SameSite=Strict"
    assert "Domain" not in value
    gone = expire_cookie("bff-session", secure=False, samesite="lax")
    assert "Max-Age=0" in gone
    assert "Secure" not in gone


def test_find_cookie_refuses_utf8_lookalikes() -> None:
    # what a server hands us: UTF-8 bytes decoded as latin-1
    em_space = "\u2003".encode().decode("latin-1")
    zero_width = "\u200b".encode().decode("latin-1")
    for prefix in (em_space, zero_width):
        header = f"__Host-bff-session=V; {prefix}__Host-bff-session=W"
        assert find_cookie([header], "__Host-bff-session") is None
