"""The building blocks of record format 2 (`bff.session.codec`): the kinds and tags of the
stream, varints, canonical base64url, the raw form of random-looking values, the `at_hash`
a value may stand for, compact JSON, and a bounds-checked byte cursor. Pure."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from bff.session.codec_tables import KEYS

__all__ = [
    "ABSENT",
    "AT_HASHES",
    "AT_HASH",
    "B64",
    "FALSE",
    "HEX",
    "INT",
    "JSON",
    "JWS",
    "KEY_CODES",
    "NULL",
    "REPEAT",
    "SEG_ASCII",
    "SEG_BYTES",
    "SEG_UTF8",
    "STR",
    "TRUE",
    "VALUE",
    "Cursor",
    "at_hash",
    "b64url",
    "b64url_decode",
    "dumps",
    "first_token_hash",
    "raw_form",
    "utf8",
    "varint",
    "zigzag",
]

ABSENT, VALUE, JWS = 0, 1, 2  # token kinds
SEG_BYTES, SEG_UTF8, SEG_ASCII = 0, 1, 2  # segment kinds
# value tags
NULL, FALSE, TRUE, INT, STR, B64, HEX, REPEAT, AT_HASH, JSON = range(10)
_MIN_RANDOM = 16  # shorter strings stay text: words and short codes, not random values
KEY_CODES: Mapping[str, int] = MappingProxyType({name: i + 1 for i, name in enumerate(KEYS)})
# by length: the left half of which hash, base64url
AT_HASHES: Mapping[int, str] = MappingProxyType({22: "sha256", 32: "sha384", 43: "sha512"})
# indexed by `ascii_only` (False, True)
_COMPACT_JSON = tuple(
    json.JSONEncoder(separators=(",", ":"), ensure_ascii=flag) for flag in (False, True)
)


def varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def zigzag(n: int) -> int:
    return n * 2 if n >= 0 else -n * 2 - 1


def b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def b64url_decode(text: str) -> bytes | None:
    """The bytes of canonical unpadded base64url `text`; None for anything else (padding,
    stray characters, non-zero spare bits: none of it would encode back the same)."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, UnicodeEncodeError):  # binascii.Error is a ValueError
        return None
    return raw if b64url(raw) == text else None


def raw_form(text: str) -> tuple[int, bytes] | None:
    """(tag, bytes) for a random-looking value that its raw bytes give back exactly."""
    if len(text) < _MIN_RANDOM:
        return None
    if len(text) % 2 == 0 and all(c in "0123456789abcdef" for c in text):
        return HEX, bytes.fromhex(text)
    # Mixed case: an id, a nonce or a hash rather than a word or a name (a random value of
    # 16 or more base64url characters lacks a case about once in 3,000).
    if any(c.islower() for c in text) and any(c.isupper() for c in text):
        raw = b64url_decode(text)
        if raw is not None:
            return B64, raw
    return None


def at_hash(token: str, length: int) -> str | None:
    """OIDC's at_hash / c_hash of `token` with the hash its `length` implies."""
    name = AT_HASHES.get(length)
    if name is None:
        return None
    digest = hashlib.new(name, token.encode("utf-8", "surrogatepass")).digest()
    return b64url(digest[: len(digest) // 2])


def first_token_hash(hashes: dict[int, str | None], first: str | None, length: int) -> str | None:
    """`at_hash` of the record's first token, once per length and record (Writer and
    Reader alike: a record full of at_hash values must not hash a large token each time)."""
    if length not in hashes:
        hashes[length] = at_hash(first, length) if first else None
    return hashes[length]


def dumps(value: Any, *, ascii_only: bool) -> str:
    return _COMPACT_JSON[ascii_only].encode(value)


def utf8(text: str) -> bytes:
    # surrogatepass: a lone surrogate is a valid JSON string character; keep it too
    return text.encode("utf-8", "surrogatepass")


class Cursor:
    """Sequential reads from bytes; ValueError when they run out."""

    __slots__ = ("_buf", "_pos")

    def __init__(self, buf: bytes) -> None:
        self._buf = buf
        self._pos = 0

    def byte(self) -> int:
        try:
            value = self._buf[self._pos]
        except IndexError:
            raise ValueError("record truncated") from None
        self._pos += 1
        return value

    def varint(self) -> int:
        n = shift = 0
        while True:
            b = self.byte()
            n |= (b & 0x7F) << shift
            if b < 0x80:
                return n
            shift += 7
            if shift > 63:
                raise ValueError("varint too long")

    def take(self, n: int) -> bytes:
        end = self._pos + n
        if end > len(self._buf):
            raise ValueError("record truncated")
        chunk = self._buf[self._pos : end]
        self._pos = end
        return chunk

    def rest(self) -> bytes:
        """Everything not read yet (and nothing left to read)."""
        chunk = self._buf[self._pos :]
        self._pos = len(self._buf)
        return chunk

    def done(self) -> bool:
        return self._pos == len(self._buf)
