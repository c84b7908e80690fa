"""Record format 3's stream: tokens kept as the JSON text of their segments, deflated with
a preset dictionary (`codec_v3_zdict`), and read back with a few C calls per record. Pure;
the writing half is `codec_v3_writer`.

Format 2 (`bff.session.codec`) turns every claim into a tagged value: small, but reading
it back walks each member in Python (~110 µs for Keycloak's three tokens), and a session
is read that way whenever it is not in the process's memo: with many sessions, on most
requests. Format 3 keeps a compact JWS segment as its decoded JSON text, split into a
skeleton (member names and punctuation, a slot byte per value) and its values, so that a
known provider's layout matches the dictionary's templates as one run and the values
deflate among themselves. Only what deflate cannot shrink leaves the text, as raw bytes
after the deflate stream, a marker byte in its place:
    signatures                    (random: they do not compress)
    UUIDs                         (Keycloak's jti, sub, sid...) 16 bytes
    base64url and hex values      (ids, nonces, key ids) their bytes, as format 2 did
    a repeat of such a value      a reference
    at_hash                       of the first token (the access token): derived
Reading back joins every skeleton with every value at once (bytes.split and join), so the
cost hardly grows with the number of claims. A segment is split only when it holds no
control byte (compact JSON never does), so every marker is ours and the text comes back
byte for byte; other segments, and tokens that are no compact JWS, are kept as they are.

    stream    := deflate_raw(body, ZDICT3) taken-raw token-raw
    body      := len shape  len values  texts
    shape     := kind... skeleton END skeleton END ...
    kind      := 0 (absent) | 1 (text) | 2 seg seg siglen (JWS) | 3/4 len (base64url/hex raw)
    seg       := 0 (verbatim: in texts) | 1 (marked: the next skeleton)
    values    := value SEPARATOR value ...   (in skeleton order)
    texts     := len bytes ...   (verbatim segments and text tokens in order, then the rest
                                  of the record as a JSON list)
"""

from __future__ import annotations

import binascii
import json
import re
import zlib
from typing import Any

from bff.session.codec_primitives import Cursor
from bff.session.codec_v3_writer import (
    ABSENT3,
    AT_HASH_MARK,
    B64_MARK,
    END,
    JWS3,
    MARKED,
    NUMBER_MARK,
    RAW_B64,
    RAW_HEX,
    REPEAT_MARK,
    SEPARATOR,
    SLOT,
    TEXT3,
    TIME_BASE,
    UUID_MARK,
    VALUE_BASE,
    VERBATIM,
    Writer3,
    at_hash256,
)
from bff.session.codec_v3_zdict import ZDICT3

__all__ = ["MAX_INFLATED3", "Reader3", "finish3"]

MAX_INFLATED3 = 256 * 1024  # the body never inflates past this (the record is sealed, but still)
_TAKEN = re.compile(rb"([\x02\x03\x05\x06\x07])")
_URLSAFE = bytes.maketrans(b"+/", b"-_")
_Segment = bytes | None  # None: the next marked segment


# A compressor with the dictionary loaded, copied for each record: loading it anew costs
# ~5x the compression of a record itself (copying is read-only: safe to share).
_PRIMED = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, ZDICT3)


def finish3(writer: Writer3) -> bytes:
    """The stream of what `writer` was given: its body deflated, then its raw bytes."""
    deflate = _PRIMED.copy()
    return deflate.compress(writer.body()) + deflate.flush() + writer.raw()


def _b64(raw: bytes) -> bytes:
    """Unpadded base64url, in three C calls."""
    return binascii.b2a_base64(raw, newline=False).rstrip(b"=").translate(_URLSAFE)


def _uuid_text(raw: bytes) -> bytes:
    h = binascii.hexlify(raw)
    return b"-".join((h[:8], h[8:12], h[12:16], h[16:20], h[20:]))


class Reader3:
    """Reads a whole `Writer3` stream back at once; ValueError on anything malformed.
    `tokens` (three of them, each with its payload bytes when it is a compact JWS) and
    `values` (the rest of the record)."""

    __slots__ = ("_at_hash", "tokens", "values")

    def __init__(self, stream: bytes, count: int = 3) -> None:
        self._at_hash: bytes | None = None
        inflater = zlib.decompressobj(-15, zdict=ZDICT3)
        body = Cursor(inflater.decompress(stream, MAX_INFLATED3))
        if not inflater.eof:
            raise ValueError("record too large or truncated")
        shape = Cursor(body.take(body.varint()))
        values = body.take(body.varint())
        raw = Cursor(inflater.unused_data)
        # The kinds: what each token is, and where its parts come from.
        layout: list[tuple[int, Any]] = []
        for _ in range(count):
            kind = shape.byte()
            if kind == JWS3:
                segments = tuple(_segment(shape.byte(), body) for _ in range(2))
                layout.append((kind, (*segments, shape.varint())))
            elif kind in (RAW_B64, RAW_HEX):
                layout.append((kind, shape.byte()))
            elif kind == TEXT3:
                layout.append((kind, body.take(body.varint())))
            elif kind == ABSENT3:
                layout.append((kind, None))
            else:
                raise ValueError("unknown token kind")
        rest = _segment(shape.byte(), body)  # the rest of the record: a segment of its own
        values = _expand(values, raw)
        marked = iter(_marked(shape.rest(), values))
        self.tokens: list[tuple[str | None, bytes | None]] = []
        for kind, parts in layout:
            token: str | None = None
            payload: bytes | None = None
            if kind == JWS3:
                header, payload, length = parts
                if header is None:
                    header = self._filled(next(marked, None))
                if payload is None:
                    payload = self._filled(next(marked, None))
                signature = raw.take(length)
                token = b".".join((_b64(header), _b64(payload), _b64(signature))).decode()
            elif kind == RAW_B64:
                token = _b64(raw.take(parts)).decode("ascii")
            elif kind == RAW_HEX:
                token = raw.take(parts).hex()
            elif kind == TEXT3:
                token = parts.decode("utf-8", "surrogatepass")
            self.tokens.append((token, payload))
        text = rest if rest is not None else next(marked, None)
        if text is None or next(marked, None) is not None:
            raise ValueError("segments do not match the shape")
        values_list = json.loads(text.decode("utf-8", "surrogatepass"))
        if not isinstance(values_list, list):
            raise ValueError("record values must be a list")
        self.values: list[Any] = values_list
        if not (body.done() and raw.done()):
            raise ValueError("trailing bytes in record")

    def _filled(self, segment: bytes | None) -> bytes:
        """A marked segment, its at_hash marker (if any) replaced."""
        if segment is None:
            raise ValueError("fewer segments than the shape names")
        if AT_HASH_MARK in segment:
            if self._at_hash is None:
                self._at_hash = _first_hash(self.tokens)
            segment = segment.replace(AT_HASH_MARK, self._at_hash)
        return segment


def _segment(kind: int, body: Cursor) -> _Segment:
    if kind == VERBATIM:
        return body.take(body.varint())
    if kind != MARKED:
        raise ValueError("unknown segment kind")
    return None


def _first_hash(tokens: list[tuple[str | None, bytes | None]]) -> bytes:
    if not tokens or not tokens[0][0]:
        raise ValueError("at_hash without a token")
    return at_hash256(tokens[0][0])


def _expand(values: bytes, raw: Cursor) -> bytes:
    """The values with what was taken out put back (the at_hash marker stays)."""
    chunks = _TAKEN.split(values)
    last = TIME_BASE
    if len(chunks) == 1:
        return values
    taken: list[bytes] = []
    out = [chunks[0]]
    for i in range(1, len(chunks), 2):
        marker, text = chunks[i], chunks[i + 1]
        if marker == UUID_MARK:
            taken.append(_uuid_text(raw.take(16)))
            out += (taken[-1], text)
            continue
        if marker == NUMBER_MARK:
            n = shift = used = 0
            for byte in text:
                used += 1
                n |= (byte & 0x3F) << shift
                shift += 6
                if byte & 0xC0 != 0x80 or shift > 66:
                    break
            if not used or text[used - 1] & 0xC0 != 0x40:
                raise ValueError("malformed number")
            last += n // 2 if n % 2 == 0 else -(n + 1) // 2
            out += (b"%d" % last, text[used:])
            continue
        if not text:
            raise ValueError("marker without its byte")
        n = text[0] - VALUE_BASE
        if marker == REPEAT_MARK:
            if not 0 <= n < len(taken):
                raise ValueError("reference to an unknown value")
            out += (taken[n], text[1:])
            continue
        if n < 0:
            raise ValueError("negative length")
        data = raw.take(n)
        taken.append(_b64(data) if marker == B64_MARK else data.hex().encode("ascii"))
        out += (taken[-1], text[1:])
    return b"".join(out)


def _marked(skeletons: bytes, values: bytes) -> list[bytes]:
    """Every marked segment: the skeletons with the values in their slots."""
    if not skeletons:
        if values:
            raise ValueError("values without a place")
        return []
    parts = skeletons.split(SLOT)
    if len(parts) == 1:
        if values:
            raise ValueError("values without a place")
        text = parts[0]
    else:
        pieces = values.split(SEPARATOR)
        if len(pieces) != len(parts) - 1:
            raise ValueError("values do not fit their skeletons")
        joined = [b""] * (2 * len(parts) - 1)
        joined[0::2] = parts
        joined[1::2] = pieces
        text = b"".join(joined)
    segments = text.split(END)
    if segments.pop() != b"":
        raise ValueError("a segment without its end")
    return segments
