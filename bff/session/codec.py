"""A compact, lossless byte encoding for session records (record format 2): the stream,
`finish` (deflate a `Writer` with the preset dictionary) and the `Reader`. Pure.

A session record is mostly tokens, and most tokens are compact JWS (`header.payload.
signature`, base64url). Such a token is kept as its decoded parts: the signature as raw
bytes (random: it does not compress), the header and the payload, when they are compact
JSON objects, as their members: a well-known name in one byte, an integer as the difference
to the previous one, a random-looking base64url or hex string as its raw bytes (or as a
reference to an earlier equal one, or to the first token's hash for `at_hash`).

The stream keeps three parts apart, because each compresses best on its own:
    shape  what the tokens are made of: kinds, member names, value tags (deflated)
    data   lengths, texts and integers (deflated right after the shape)
    raw    signatures and random values, after the deflate stream, uncompressed
A record of a known token layout has the very shape of one of the templates in the
preset dictionary, so its whole shape costs about one deflate match.

    stream  := deflate_raw(len(shape) shape data, zdict) raw
    token   := 0 (absent) | 1 value | 2 segment segment siglen    (siglen bytes of raw)
    segment := 0 (bytes: length, data) | 1 object | 2 object      (2: \\u-escaped JSON text)
    object  := count (name value)...          name: index in KEYS + 1, or 0 and a text
    value   := tag [data]   (null false true int str b64 hex repeat at_hash json)

Whatever fits no rule exactly is kept as it was: a segment is stored as members only when
rendering them back gives exactly its bytes, and a value as raw bytes only when they encode
back to exactly that string, so every token decodes byte for byte. The tables (`KEYS`,
the preset dictionary and the templates it is built from) are part of format 2: a change
needs a new record version, or older records would decode differently (a test pins them).

The parts: `codec_primitives` (tags, varints, base64url, the cursor), `codec_writer`
(`Writer`), `codec_tables` and `codec_zdict` (the preset dictionary), and this module.
"""

from __future__ import annotations

import json
import zlib
from typing import Any

from bff.session.codec_primitives import (
    ABSENT,
    AT_HASH,
    B64,
    FALSE,
    HEX,
    INT,
    JSON,
    JWS,
    NULL,
    REPEAT,
    SEG_ASCII,
    SEG_BYTES,
    SEG_UTF8,
    STR,
    TRUE,
    VALUE,
    Cursor,
    b64url,
    dumps,
    first_token_hash,
    utf8,
)
from bff.session.codec_tables import KEYS
from bff.session.codec_writer import Writer
from bff.session.codec_zdict import ZDICT

__all__ = ["MAX_INFLATED", "Reader", "finish"]

MAX_INFLATED = 256 * 1024  # the body never inflates past this (the record is sealed, but still)


def finish(writer: Writer) -> bytes:
    """The stream of what `writer` was given: its body deflated, then its raw bytes."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, ZDICT)
    return deflate.compress(writer.body()) + deflate.flush() + writer.raw()


class Reader:
    """Reads a `Writer` stream back; ValueError on anything malformed."""

    __slots__ = ("_data", "_first", "_hashes", "_last_int", "_raw", "_seen", "_shape")

    def __init__(self, stream: bytes) -> None:
        self._hashes: dict[int, str | None] = {}  # at_hash values of the first token
        inflater = zlib.decompressobj(-15, zdict=ZDICT)
        body = Cursor(inflater.decompress(stream, MAX_INFLATED))
        if not inflater.eof:
            raise ValueError("record too large or truncated")
        self._shape = Cursor(body.take(body.varint()))
        self._data = body
        self._raw = Cursor(inflater.unused_data)
        self._last_int = 0
        self._seen: list[str] = []
        self._first: str | None = None

    def token(self) -> tuple[str | None, bytes | None]:
        """The next token and, for a compact JWS, its payload bytes."""
        kind = self._shape.byte()
        token: str | None
        payload = None
        if kind == ABSENT:
            token = None
        elif kind == VALUE:
            value = self._value()
            if not isinstance(value, str):
                raise ValueError("a token must be a string")
            token = value
        elif kind == JWS:
            header = self._segment()
            payload = self._segment()
            signature = self._raw.take(self._shape.varint())
            token = f"{b64url(header)}.{b64url(payload)}.{b64url(signature)}"
        else:
            raise ValueError("unknown token kind")
        if self._first is None:
            self._first = token or ""
        return token, payload

    def values(self) -> list[Any]:
        return [self._value() for _ in range(self._shape.varint())]

    def end(self) -> None:
        """Every byte was read: nothing trails the record."""
        if not (self._shape.done() and self._data.done() and self._raw.done()):
            raise ValueError("trailing bytes in record")

    def _text(self) -> str:
        return self._data.take(self._data.varint()).decode("utf-8", "surrogatepass")

    def _segment(self) -> bytes:
        kind = self._shape.byte()
        if kind == SEG_BYTES:
            return self._data.take(self._data.varint())
        if kind not in (SEG_UTF8, SEG_ASCII):
            raise ValueError("unknown segment kind")
        obj: dict[str, Any] = {}
        for _ in range(self._shape.varint()):
            code = self._shape.byte()
            if code > len(KEYS):
                raise ValueError("unknown member name")
            key = self._text() if code == 0 else KEYS[code - 1]
            obj[key] = self._value()
        return utf8(dumps(obj, ascii_only=kind == SEG_ASCII))

    def _value(self) -> Any:
        tag = self._shape.byte()
        if tag == NULL:
            return None
        if tag in (FALSE, TRUE):
            return tag == TRUE
        if tag == INT:
            n = self._data.varint()
            self._last_int += n // 2 if n % 2 == 0 else -(n + 1) // 2
            return self._last_int
        if tag == STR:
            return self._text()
        if tag in (B64, HEX):
            raw = self._raw.take(self._data.varint())
            text = raw.hex() if tag == HEX else b64url(raw)
            self._seen.append(text)
            return text
        if tag == REPEAT:
            ref = self._data.varint()
            if ref >= len(self._seen):
                raise ValueError("reference to an unknown value")
            return self._seen[ref]
        if tag == AT_HASH:
            hashed = first_token_hash(self._hashes, self._first, self._data.varint())
            if hashed is None:
                raise ValueError("at_hash without a token")
            return hashed
        if tag == JSON:
            return json.loads(self._text())
        raise ValueError("unknown value tag")
