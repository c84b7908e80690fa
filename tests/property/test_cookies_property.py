"""Properties of the cookie rules (THREATS.md invariant 6): a session cookie verifies only
as issued (any single-character change is refused); a Cookie header yields our cookie
only when it is unambiguous, whatever the order of its parts, and a duplicate or a
Unicode-whitespace look-alike of the name anywhere makes it yield nothing."""

from __future__ import annotations

import secrets

from hypothesis import given
from hypothesis import strategies as st

from bff.session.cookies import CookieSigner, find_cookie
from bff.session.crypto import KeyRing

NAME = "bff-session"
SIGNER = CookieSigner(KeyRing(["property-test-secret-key-0123456789abcdef"]).signing_keys)
SESSION_ID = secrets.token_urlsafe(32)

token_chars = st.characters(min_codepoint=0x21, max_codepoint=0x7E, exclude_characters=';=" ')
cookie_value = st.text(token_chars, min_size=1, max_size=20)
other_name = st.sampled_from(["theme", "lang", "bff", "session", "bff-session-x", "_ga"])
pairs = st.lists(st.tuples(other_name, cookie_value), max_size=6)
invisible = st.sampled_from(["\u00a0", "\u2002", "\u3000", "\u200b", "\ufeff", "\u2060", "\u1680"])


def header(parts: list[tuple[str, str]]) -> str:
    """As a server hands it over: UTF-8 bytes read as latin-1."""
    return "; ".join(f"{k}={v}" for k, v in parts).encode("utf-8").decode("latin-1")


@given(pairs, cookie_value, st.randoms())
def test_our_cookie_among_others_is_found_in_any_order(
    others: list[tuple[str, str]], ours: str, rnd: object
) -> None:
    parts = [*others, (NAME, ours)]
    rnd.shuffle(parts)  # type: ignore[attr-defined]
    assert find_cookie([header(parts)], NAME) == ours
    # split over several Cookie headers: the same answer
    assert find_cookie([header([p]) for p in parts], NAME) == ours


@given(pairs, cookie_value, cookie_value, st.randoms())
def test_a_duplicate_name_anywhere_yields_nothing(
    others: list[tuple[str, str]], ours: str, tossed: str, rnd: object
) -> None:
    parts = [*others, (NAME, ours), (NAME, tossed)]
    rnd.shuffle(parts)  # type: ignore[attr-defined]
    assert find_cookie([header(parts)], NAME) is None


@given(pairs, cookie_value, cookie_value, invisible, st.sampled_from(["pre", "post", "both"]))
def test_a_unicode_whitespace_lookalike_yields_nothing(
    others: list[tuple[str, str]], ours: str, tossed: str, ws: str, where: str
) -> None:
    lookalike = (ws if where != "post" else "") + NAME + (ws if where != "pre" else "")
    parts = [*others, (lookalike, tossed), (NAME, ours)]
    assert find_cookie([header(parts)], NAME) is None


@given(st.integers(1_700_000_000, 4_000_000_000), st.data())
def test_a_signed_session_cookie_verifies_only_unchanged(expires: int, data: st.DataObject) -> None:
    value = SIGNER.sign_session(SESSION_ID, expires)
    assert SIGNER.unsign_session(value) == (SESSION_ID, expires)
    i = data.draw(st.integers(0, len(value) - 1))
    ch = data.draw(st.characters(min_codepoint=0x21, max_codepoint=0x7E))
    forged = value[:i] + ch + value[i + 1 :]
    if forged != value:
        assert SIGNER.unsign_session(forged) is None
    assert SIGNER.unsign_session(value[:i]) is None
    assert SIGNER.unsign_binding(value) is None  # another salt: not interchangeable
