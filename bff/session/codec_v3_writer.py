"""The writing half of record format 3 (`bff.session.codec_v3` describes the stream): a
`Writer3` keeps each compact JWS segment as its JSON text split in two, the skeleton (the
member names, punctuation, a slot per value) and the values, takes random-looking values
and signatures out as raw bytes, and marks what it took. Pure; deflating the body with
the preset dictionary is `bff.session.codec_v3.finish3`."""

from __future__ import annotations

import hashlib
import re
from typing import Any

from bff.session.codec_primitives import (
    B64,
    b64url,
    b64url_decode,
    dumps,
    raw_form,
    utf8,
    varint,
    zigzag,
)

__all__ = [
    "ABSENT3",
    "AT_HASH_MARK",
    "B64_MARK",
    "CONTROL",
    "END",
    "HEX_MARK",
    "JWS3",
    "NUMBER_MARK",
    "MARKED",
    "RAW_B64",
    "RAW_HEX",
    "REPEAT_MARK",
    "SEPARATOR",
    "SLOT",
    "TEXT3",
    "TIME_BASE",
    "UUID_MARK",
    "VERBATIM",
    "VALUE_BASE",
    "Writer3",
    "at_hash256",
]

ABSENT3, TEXT3, JWS3, RAW_B64, RAW_HEX = range(5)  # token kinds
VERBATIM, MARKED = 0, 1  # segment kinds
# Bytes no JSON text holds unescaped, so every one of them in a skeleton or values is ours:
SLOT, SEPARATOR, END = b"\x10", b"\x00", b"\x11"  # a value's place; between values; segment end
AT_HASH_MARK = b"\x01"  # the at_hash of the first token
UUID_MARK = b"\x02"  # a UUID: 16 raw bytes
REPEAT_MARK = b"\x03"  # + one byte, VALUE_BASE + n: the n-th value taken out
B64_MARK, HEX_MARK = b"\x05", b"\x06"  # + one byte, VALUE_BASE + length: raw bytes
# + zigzag(number - the previous marked number), 6 bits a byte, least significant first:
# 0x80 | bits while more follow, then 0x40 | bits (never a marker nor the separator)
NUMBER_MARK = b"\x07"
TIME_BASE = 1_700_000_000  # what the first number is a difference to
VALUE_BASE, _MAX_TAKEN, _MAX_RAW = 0x20, 64, 0xFF - 0x20  # that byte is never a marker
_MIN_TAKEN = 16  # shorter values stay text (`raw_form` takes none either)
CONTROL = re.compile(rb"[\x00-\x1f]")
# A value in JSON text: a string's content (group 1: the quotes stay in the skeleton) or a
# number (group 2), each followed by what ends a value (a member name is followed by ":").
_VALUE = re.compile(
    rb'(?<=")([^"\\]*+(?:\\.[^"\\]*+)*+)(?="[,\]}])|(?<=[:\[,])(-?[0-9][0-9.eE+-]*+)(?=[,\]}])',
    re.S,
)
_INT = re.compile(rb"0|-?[1-9][0-9]{0,15}")  # canonical ("-0" is not), within 63 bits
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def at_hash256(token: str) -> bytes:
    """OIDC's at_hash of `token` for SHA-256 (RS256, PS256, ES256: nearly every provider)."""
    return b64url(hashlib.sha256(utf8(token)).digest()[:16]).encode("ascii")


class Writer3:
    """Builds one format-3 stream: `token` calls, then `values`, in the order a `Reader3`
    reads them."""

    __slots__ = (
        "_at_hash",
        "_first",
        "_kinds",
        "_last_int",
        "_skeletons",
        "_taken",
        "_taken_raw",
        "_texts",
        "_token_raw",
        "_values",
    )

    def __init__(self) -> None:
        self._kinds = bytearray()  # token and segment kinds, signature lengths
        self._skeletons = bytearray()  # every marked segment's skeleton, each then END
        self._values: list[bytes] = []  # their values, in order
        self._texts = bytearray()  # verbatim segments and tokens, the rest (length first)
        self._taken_raw = bytearray()  # values taken out as raw bytes, in order
        self._token_raw = bytearray()  # signatures and raw tokens, in token order
        self._taken: dict[bytes, int] = {}  # values taken out so far: a repeat is a reference
        self._first: str | None = None  # the first token: what an at_hash is a hash of
        self._at_hash: bytes | None = None
        self._last_int = TIME_BASE  # token times sit close together: a number is its difference

    def token(self, token: str | None) -> bytes | None:
        """Add a token; its payload bytes when it is a compact JWS kept in parts."""
        first = self._first is None
        if first:
            self._first = token or ""
        if token is None:
            self._kinds.append(ABSENT3)
            return None
        parts = token.split(".")
        decoded = [b64url_decode(part) for part in parts] if len(parts) == 3 else []
        if len(decoded) != 3 or None in decoded or not parts[0] or not parts[1]:
            raw = raw_form(token)
            if raw is not None and len(raw[1]) <= _MAX_RAW:  # an opaque random token
                self._kinds += bytes((RAW_B64 if raw[0] == B64 else RAW_HEX, len(raw[1])))
                self._token_raw += raw[1]
            else:
                self._kinds.append(TEXT3)
                self._text(utf8(token))
            return None
        header, payload, signature = (d for d in decoded if d is not None)
        self._kinds.append(JWS3)
        if not first and self._first and self._at_hash is None:
            self._at_hash = at_hash256(self._first)
        self._segment(header, derive=not first)
        self._segment(payload, derive=not first)
        self._kinds += varint(len(signature))
        self._token_raw += signature
        return payload

    def values(self, values: list[Any]) -> None:
        """The rest of the record, after the tokens: a list of JSON values (they come back
        equal), kept as its JSON text the way a token's segment is (its times then go on
        as differences from the tokens')."""
        self._segment(utf8(dumps(values, ascii_only=False)), derive=False)

    def body(self) -> bytes:
        """What gets deflated: the shape (kinds, then skeletons), the values, the texts
        (the preset dictionary is made of such bodies too)."""
        shape = bytes(self._kinds) + bytes(self._skeletons)
        values = SEPARATOR.join(self._values)
        return varint(len(shape)) + shape + varint(len(values)) + values + bytes(self._texts)

    def raw(self) -> bytes:
        """What follows the deflate stream as it is: the values taken out, then the
        signatures and raw tokens."""
        return bytes(self._taken_raw) + bytes(self._token_raw)

    def _text(self, data: bytes) -> None:
        self._texts += varint(len(data)) + data

    def _segment(self, segment: bytes, *, derive: bool) -> None:
        if CONTROL.search(segment):
            self._kinds.append(VERBATIM)
            self._text(segment)
            return
        self._kinds.append(MARKED)
        parts = _VALUE.split(segment)
        self._skeletons += SLOT.join(parts[0::3]) + END
        self._values += [
            self._number(number) if text is None else self._taken_out(text, derive)
            for text, number in zip(parts[1::3], parts[2::3], strict=True)
        ]

    def _number(self, value: bytes) -> bytes:
        if not _INT.fullmatch(value):
            return value
        number = int(value)
        n, self._last_int = zigzag(number - self._last_int), number
        out = bytearray(NUMBER_MARK)
        while n >= 0x40:
            out.append(0x80 | n & 0x3F)
            n >>= 6
        out.append(0x40 | n)
        return bytes(out)

    def _taken_out(self, value: bytes, derive: bool) -> bytes:
        """The value with what deflate cannot shrink taken out and marked."""
        if derive and self._at_hash is not None and self._at_hash in value:
            value = value.replace(self._at_hash, AT_HASH_MARK)
        seen = self._taken.get(value)
        if seen is not None:
            return REPEAT_MARK + bytes((VALUE_BASE + seen,))
        if len(value) < _MIN_TAKEN or len(self._taken) >= _MAX_TAKEN or not value.isascii():
            return value
        if _UUID.fullmatch(value):
            self._take(value, bytes.fromhex(value.replace(b"-", b"").decode("ascii")))
            return UUID_MARK
        raw = raw_form(value.decode("ascii"))
        if raw is not None and len(raw[1]) <= _MAX_RAW:
            self._take(value, raw[1])
            return (B64_MARK if raw[0] == B64 else HEX_MARK) + bytes((VALUE_BASE + len(raw[1]),))
        return value

    def _take(self, value: bytes, raw: bytes) -> None:
        self._taken[value] = len(self._taken)
        self._taken_raw += raw
