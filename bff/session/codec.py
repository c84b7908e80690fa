"""A compact, lossless byte encoding for session records (record format 2). Pure.

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
"""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from typing import Any

from bff.session.codec_tables import AT, KEYS, RND, RND32, SCOPE, SID, TEMPLATES, ZDICT_TEXT, T

__all__ = ["MAX_INFLATED", "Reader", "Writer"]

MAX_INFLATED = 256 * 1024  # the body never inflates past this (the record is sealed, but still)

_ABSENT, _VALUE, _JWS = 0, 1, 2  # token kinds
_SEG_BYTES, _SEG_UTF8, _SEG_ASCII = 0, 1, 2  # segment kinds
# value tags
_NULL, _FALSE, _TRUE, _INT, _STR, _B64, _HEX, _REPEAT, _AT_HASH, _JSON = range(10)
_MIN_RANDOM = 16  # shorter strings stay text: words and short codes, not random values
_KEY_CODES = {name: i + 1 for i, name in enumerate(KEYS)}
_AT_HASHES = {22: "sha256", 32: "sha384", 43: "sha512"}  # by length: left half, base64url


def _varint(n: int) -> bytes:
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _zigzag(n: int) -> int:
    return n * 2 if n >= 0 else -n * 2 - 1


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_decode(text: str) -> bytes | None:
    """The bytes of canonical unpadded base64url `text`; None for anything else (padding,
    stray characters, non-zero spare bits: none of it would encode back the same)."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, UnicodeEncodeError):  # binascii.Error is a ValueError
        return None
    return raw if _b64url(raw) == text else None


def _raw_form(text: str) -> tuple[int, bytes] | None:
    """(tag, bytes) for a random-looking value that its raw bytes give back exactly."""
    if len(text) < _MIN_RANDOM:
        return None
    if len(text) % 2 == 0 and all(c in "0123456789abcdef" for c in text):
        return _HEX, bytes.fromhex(text)
    # Mixed case: an id, a nonce or a hash rather than a word or a name (a random value of
    # 16 or more base64url characters lacks a case about once in 3,000).
    if any(c.islower() for c in text) and any(c.isupper() for c in text):
        raw = _b64url_decode(text)
        if raw is not None:
            return _B64, raw
    return None


def _at_hash(token: str, length: int) -> str | None:
    """OIDC's at_hash / c_hash of `token` with the hash its `length` implies."""
    name = _AT_HASHES.get(length)
    if name is None:
        return None
    digest = hashlib.new(name, token.encode("utf-8", "surrogatepass")).digest()
    return _b64url(digest[: len(digest) // 2])


def _first_token_hash(hashes: dict[int, str | None], first: str | None, length: int) -> str | None:
    """`_at_hash` of the record's first token, once per length and record (Writer and
    Reader alike: a record full of at_hash values must not hash a large token each time)."""
    if length not in hashes:
        hashes[length] = _at_hash(first, length) if first else None
    return hashes[length]


_COMPACT_JSON = {
    flag: json.JSONEncoder(separators=(",", ":"), ensure_ascii=flag) for flag in (False, True)
}


def _dumps(value: Any, *, ascii_only: bool) -> str:
    return _COMPACT_JSON[ascii_only].encode(value)


def _utf8(text: str) -> bytes:
    # surrogatepass: a lone surrogate is a valid JSON string character; keep it too
    return text.encode("utf-8", "surrogatepass")


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
            self._shape.append(_ABSENT)
            return None
        parts = token.split(".")
        decoded = [_b64url_decode(part) for part in parts] if len(parts) == 3 else []
        if len(decoded) != 3 or None in decoded or not parts[0] or not parts[1]:
            self._shape.append(_VALUE)
            self._value(token, ascii_only=False)
            return None
        header, payload, signature = (d for d in decoded if d is not None)
        self._shape.append(_JWS)
        self._segment(header)
        self._segment(payload)
        self._shape += _varint(len(signature))
        self._raw += signature
        return payload

    def values(self, values: list[Any]) -> None:
        """Add a list of JSON values (they come back equal, not necessarily identical)."""
        self._shape += _varint(len(values))
        for value in values:
            self._value(value, ascii_only=False)

    def body(self) -> bytes:
        """What gets deflated: the shape, then the data."""
        return _varint(len(self._shape)) + bytes(self._shape) + bytes(self._data)

    def finish(self) -> bytes:
        deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, _ZDICT)
        return deflate.compress(self.body()) + deflate.flush() + bytes(self._raw)

    def _text(self, text: str) -> None:
        data = _utf8(text)
        self._data += _varint(len(data)) + data

    def _segment(self, segment: bytes) -> None:
        try:
            obj = json.loads(segment)
        except (ValueError, RecursionError):  # JSONDecodeError, UnicodeDecodeError
            obj = None
        if isinstance(obj, dict):
            for kind, ascii_only in ((_SEG_UTF8, False), (_SEG_ASCII, True)):
                try:
                    rendered = _utf8(_dumps(obj, ascii_only=ascii_only))
                except (ValueError, RecursionError):  # e.g. an integer too long to print
                    break
                # Members only when rendering them back gives exactly these bytes (order,
                # spacing, escapes, number forms and no duplicate names all included).
                if rendered == segment:
                    self._shape.append(kind)
                    self._shape += _varint(len(obj))
                    for key, value in obj.items():
                        code = _KEY_CODES.get(key)
                        if code is None:
                            self._shape.append(0)
                            self._text(key)
                        else:
                            self._shape.append(code)
                        self._value(value, ascii_only=ascii_only)
                    return
        self._shape.append(_SEG_BYTES)
        self._data += _varint(len(segment)) + segment

    def _value(self, value: Any, *, ascii_only: bool) -> None:
        shape = self._shape
        if value is None:
            shape.append(_NULL)
        elif value is True or value is False:
            shape.append(_TRUE if value else _FALSE)
        elif type(value) is int and value.bit_length() < 63:
            # Token times sit close together: the difference to the previous is small.
            shape.append(_INT)
            self._data += _varint(_zigzag(value - self._last_int))
            self._last_int = value
        elif type(value) is str:
            self._string(value)
        else:
            shape.append(_JSON)
            self._text(_dumps(value, ascii_only=ascii_only))

    def _at_hash(self, length: int) -> str | None:
        return _first_token_hash(self._hashes, self._first, length)

    def _string(self, value: str) -> None:
        ref = self._seen.get(value)
        if ref is not None:
            self._shape.append(_REPEAT)
            self._data += _varint(ref)
            return
        if len(value) in _AT_HASHES and value == self._at_hash(len(value)):
            self._shape.append(_AT_HASH)
            self._data += _varint(len(value))
            return
        raw = _raw_form(value)
        if raw is None:
            self._shape.append(_STR)
            self._text(value)
            return
        tag, data = raw
        self._seen[value] = len(self._seen)
        self._shape.append(tag)
        self._data += _varint(len(data))
        self._raw += data


class _Cursor:
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

    def done(self) -> bool:
        return self._pos == len(self._buf)


class Reader:
    """Reads a `Writer` stream back; ValueError on anything malformed."""

    __slots__ = ("_data", "_first", "_hashes", "_last_int", "_raw", "_seen", "_shape")

    def __init__(self, stream: bytes) -> None:
        self._hashes: dict[int, str | None] = {}  # at_hash values of the first token
        inflater = zlib.decompressobj(-15, zdict=_ZDICT)
        body = _Cursor(inflater.decompress(stream, MAX_INFLATED))
        if not inflater.eof:
            raise ValueError("record too large or truncated")
        self._shape = _Cursor(body.take(body.varint()))
        self._data = body
        self._raw = _Cursor(inflater.unused_data)
        self._last_int = 0
        self._seen: list[str] = []
        self._first: str | None = None

    def token(self) -> tuple[str | None, bytes | None]:
        """The next token and, for a compact JWS, its payload bytes."""
        kind = self._shape.byte()
        token: str | None
        payload = None
        if kind == _ABSENT:
            token = None
        elif kind == _VALUE:
            value = self._value()
            if not isinstance(value, str):
                raise ValueError("a token must be a string")
            token = value
        elif kind == _JWS:
            header = self._segment()
            payload = self._segment()
            signature = self._raw.take(self._shape.varint())
            token = f"{_b64url(header)}.{_b64url(payload)}.{_b64url(signature)}"
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
        if kind == _SEG_BYTES:
            return self._data.take(self._data.varint())
        if kind not in (_SEG_UTF8, _SEG_ASCII):
            raise ValueError("unknown segment kind")
        obj: dict[str, Any] = {}
        for _ in range(self._shape.varint()):
            code = self._shape.byte()
            if code > len(KEYS):
                raise ValueError("unknown member name")
            key = self._text() if code == 0 else KEYS[code - 1]
            obj[key] = self._value()
        return _utf8(_dumps(obj, ascii_only=kind == _SEG_ASCII))

    def _value(self) -> Any:
        tag = self._shape.byte()
        if tag == _NULL:
            return None
        if tag in (_FALSE, _TRUE):
            return tag == _TRUE
        if tag == _INT:
            n = self._data.varint()
            self._last_int += n // 2 if n % 2 == 0 else -(n + 1) // 2
            return self._last_int
        if tag == _STR:
            return self._text()
        if tag in (_B64, _HEX):
            raw = self._raw.take(self._data.varint())
            text = raw.hex() if tag == _HEX else _b64url(raw)
            self._seen.append(text)
            return text
        if tag == _REPEAT:
            ref = self._data.varint()
            if ref >= len(self._seen):
                raise ValueError("reference to an unknown value")
            return self._seen[ref]
        if tag == _AT_HASH:
            hashed = _first_token_hash(self._hashes, self._first, self._data.varint())
            if hashed is None:
                raise ValueError("at_hash without a token")
            return hashed
        if tag == _JSON:
            return json.loads(self._text())
        raise ValueError("unknown value tag")


# The preset dictionary: deflate matches what a record shares with it, so besides common
# strings it holds whole record bodies (`Writer` output) of the token layouts common
# providers issue, with made-up values (compact_tables.TEMPLATES): a record of the same
# layout then costs little more than its own values. Pinned by a test.
def _template_body(tokens: tuple[tuple[dict[str, Any], dict[str, Any]], ...]) -> bytes:
    """A record body as `bff.session` writes it: tokens, refresh token, the rest."""
    made = 0

    def fresh(size: int) -> str:
        nonlocal made
        made += 1  # deterministic: the dictionary must never change
        return _b64url(hashlib.sha256(b"bff/zdict\0%d" % made).digest()[:size])

    sid = fresh(16)
    out = Writer()
    first = ""
    for header, payload in tokens:
        filled = {}
        for name, value in payload.items():
            if value == AT:
                value = _at_hash(first, 22)
            elif value in (RND, RND32):
                value = fresh(16 if value == RND else 32)
            filled[name] = sid if value == SID else value
        parts = (_dumps(header, ascii_only=True), _dumps(filled, ascii_only=True))
        token = ".".join(_b64url(p.encode()) for p in parts) + "." + _b64url(bytes(256))
        first = first or token
        out.token(token)
    out.token(fresh(32))  # an opaque refresh token
    out.values([T, T + 86400, T + 3600, None, "Bearer", SCOPE, "Mozilla/5.0"])
    return out.body()


_ZDICT = ZDICT_TEXT + b"".join(_template_body(t) for t in TEMPLATES)
