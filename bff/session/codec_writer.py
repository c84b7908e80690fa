"""The writing half of record format 2 (`bff.session.codec` describes the stream): a
`Writer` splits tokens and values into shape, data and raw bytes. Pure; deflating the body
with the preset dictionary is `bff.session.codec.finish`."""

from __future__ import annotations

import json
from typing import Any

from bff.session.codec_primitives import (
    ABSENT,
    AT_HASH,
    AT_HASHES,
    FALSE,
    INT,
    JSON,
    JWS,
    KEY_CODES,
    NULL,
    REPEAT,
    SEG_ASCII,
    SEG_BYTES,
    SEG_UTF8,
    STR,
    TRUE,
    VALUE,
    b64url_decode,
    dumps,
    first_token_hash,
    raw_form,
    utf8,
    varint,
    zigzag,
)

__all__ = ["Writer"]


class Writer:
    """Builds one stream: `token` and `values` calls in the order a `Reader` reads them."""

    __slots__ = ("_data", "_first", "_hashes", "_last_int", "_raw", "_seen", "_shape")

    def __init__(self) -> None:
        self._hashes: dict[int, str | None] = {}  # at_hash candidates of the first token
        self._shape = bytearray()
        self._data = bytearray()
        self._raw = bytearray()
        self._last_int = 0
        self._seen: dict[str, int] = {}  # raw-form values so far: a repeat is a reference
        self._first: str | None = None  # the first token: what an `at_hash` is a hash of

    def token(self, token: str | None) -> bytes | None:
        """Add a token; its payload bytes when it is a compact JWS kept in parts."""
        if self._first is None:
            self._first = token or ""
        if token is None:
            self._shape.append(ABSENT)
            return None
        parts = token.split(".")
        decoded = [b64url_decode(part) for part in parts] if len(parts) == 3 else []
        if len(decoded) != 3 or None in decoded or not parts[0] or not parts[1]:
            self._shape.append(VALUE)
            self._value(token, ascii_only=False)
            return None
        header, payload, signature = (d for d in decoded if d is not None)
        self._shape.append(JWS)
        self._segment(header)
        self._segment(payload)
        self._shape += varint(len(signature))
        self._raw += signature
        return payload

    def values(self, values: list[Any]) -> None:
        """Add a list of JSON values (they come back equal, not necessarily identical)."""
        self._shape += varint(len(values))
        for value in values:
            self._value(value, ascii_only=False)

    def body(self) -> bytes:
        """What gets deflated: the shape, then the data."""
        return varint(len(self._shape)) + bytes(self._shape) + bytes(self._data)

    def raw(self) -> bytes:
        """What follows the deflate stream as it is: signatures and random values."""
        return bytes(self._raw)

    def _text(self, text: str) -> None:
        data = utf8(text)
        self._data += varint(len(data)) + data

    def _segment(self, segment: bytes) -> None:
        try:
            obj = json.loads(segment)
        except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError
            obj = None
        if isinstance(obj, dict):
            for kind, ascii_only in ((SEG_UTF8, False), (SEG_ASCII, True)):
                try:
                    rendered = utf8(dumps(obj, ascii_only=ascii_only))
                except (ValueError, RecursionError):  # e.g. an integer too long to print
                    break
                # Members only when rendering them back gives exactly these bytes (order,
                # spacing, escapes, number forms and no duplicate names all included).
                if rendered == segment:
                    self._members(kind, obj, ascii_only=ascii_only)
                    return
        self._shape.append(SEG_BYTES)
        self._data += varint(len(segment)) + segment

    def _members(self, kind: int, obj: dict[str, Any], *, ascii_only: bool) -> None:
        self._shape.append(kind)
        self._shape += varint(len(obj))
        for key, value in obj.items():
            code = KEY_CODES.get(key)
            if code is None:
                self._shape.append(0)
                self._text(key)
            else:
                self._shape.append(code)
            self._value(value, ascii_only=ascii_only)

    def _value(self, value: Any, *, ascii_only: bool) -> None:
        shape = self._shape
        if value is None:
            shape.append(NULL)
        elif value is True or value is False:
            shape.append(TRUE if value else FALSE)
        elif type(value) is int and value.bit_length() < 63:
            # Token times sit close together: the difference to the previous is small.
            shape.append(INT)
            self._data += varint(zigzag(value - self._last_int))
            self._last_int = value
        elif type(value) is str:
            self._string(value)
        else:
            shape.append(JSON)
            self._text(dumps(value, ascii_only=ascii_only))

    def _string(self, value: str) -> None:
        ref = self._seen.get(value)
        if ref is not None:
            self._shape.append(REPEAT)
            self._data += varint(ref)
            return
        if len(value) in AT_HASHES and value == first_token_hash(
            self._hashes, self._first, len(value)
        ):
            self._shape.append(AT_HASH)
            self._data += varint(len(value))
            return
        raw = raw_form(value)
        if raw is None:
            self._shape.append(STR)
            self._text(value)
            return
        tag, data = raw
        self._seen[value] = len(self._seen)
        self._shape.append(tag)
        self._data += varint(len(data))
        self._raw += data
