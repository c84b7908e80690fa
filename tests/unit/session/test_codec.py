"""Record format 2's stream (`bff.session.codec`): its tables are pinned, and it is strict:
anything malformed is a ValueError and nothing else. Releases before format 3 wrote it:
such records must still read (format 3: tests/unit/session/test_codec_v3.py)."""

from __future__ import annotations

import contextlib
import hashlib
import random
import zlib

import pytest
from joserfc.jwk import RSAKey

from bff.session import codec_primitives
from bff.session.codec_tables import KEYS
from bff.session.codec_zdict import ZDICT
from bff.session.records import decode_session, encode_session
from tests.unit.session.test_records import b64, dev_tokens, jws, login_session, with_tokens


@pytest.fixture(scope="module")
def rsa() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"kid": "9aeed9c97ef3874a"})


def test_format_2_tables_are_pinned() -> None:
    """The preset dictionary and the name table are part of format 2: a record written
    with other tables would not read back. Changing them needs a new record version."""
    assert hashlib.sha256(ZDICT).hexdigest()[:16] == "0c0531091fa5987c"
    assert hashlib.sha256("\n".join(KEYS).encode()).hexdigest()[:16] == "547378071baf73e8"


# --- strict -------------------------------------------------------------------------------
def stream(shape: bytes, data: bytes = b"", raw: bytes = b"") -> bytes:
    body = bytes([len(shape)]) + shape + data
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, ZDICT)
    return b"\x02" + deflate.compress(body) + deflate.flush() + raw


# shape of a valid minimal record: token "a" (value, str), no ID token, no refresh
# token, then 7 values: int, int, null, null, str, null, str
GOOD_SHAPE = bytes([1, 4, 0, 0, 7, 3, 3, 0, 0, 4, 0, 4])
GOOD_DATA = b"\x01a" + b"\x02\x00" + b"\x06Bearer" + b"\x00"


def test_a_minimal_crafted_record_reads() -> None:
    # the explicit sub/sid/claims are needed: there is no ID token to derive them from
    shape = GOOD_SHAPE[:4] + bytes([10]) + GOOD_SHAPE[5:] + bytes([4, 0, 9])
    s = decode_session(stream(shape, GOOD_DATA + b"\x01u" + b"\x02{}"))
    assert (s.sub, s.idp_sid, s.claims, s.tokens.access_token) == ("u", None, {}, "a")
    with pytest.raises(ValueError):  # 7 values and no ID token: nothing to derive from
        decode_session(stream(GOOD_SHAPE, GOOD_DATA))


@pytest.mark.parametrize(
    "record",
    [
        b"",
        b"\x02",
        b"\x09" + b"x" * 40,  # unknown version
        b"\x02" + zlib.compress(b"x"),  # zlib framing, not raw deflate
        stream(b"\x09"),  # unknown token kind
        stream(bytes([1, 99])),  # unknown value tag
        stream(bytes([1, 7])),  # a repeat of nothing
        stream(bytes([1, 8])),  # an at_hash before any token
        stream(bytes([2, 1, 1, 200, 0])),  # an unknown member name
        stream(bytes([2, 3])),  # unknown segment kind
        stream(bytes([2, 0, 0, 5]), b"\x01{\x01{", b"sig"),  # signature longer than raw
        stream(bytes([1, 4]), b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),  # long varint
        stream(bytes([1, 4]), b"\x05ab"),  # text longer than the data
        stream(bytes([1, 5]), b"\x10", b"short"),  # raw value longer than the raw part
        stream(bytes([1, 9]), b"\x05[[[[["),  # broken JSON value
        stream(bytes([1, 9]), b"\x02\xff\xfe"),  # not UTF-8
        stream(bytes([1, 0]) + GOOD_SHAPE[1:], GOOD_DATA),  # a token must be a string
        # sub is not a string
        stream(
            GOOD_SHAPE[:4] + bytes([10]) + GOOD_SHAPE[5:] + bytes([2, 0, 9]), GOOD_DATA + b"\x02{}"
        ),
        stream(GOOD_SHAPE, GOOD_DATA + b"trailing"),
        stream(GOOD_SHAPE, GOOD_DATA, b"trailing raw bytes"),
        stream(bytes([1, 9]), b"\x80\x80\x10" + b"[" * 300_000),  # inflates past the cap
        stream(bytes([1, 9]), b"\x90\x4e" + b"[" * 10_000 + b"]" * 10_000),  # deep nesting
    ],
)
def test_malformed_records_are_value_errors(record: bytes) -> None:
    with pytest.raises(ValueError):
        decode_session(record)


@pytest.mark.parametrize("record_format", [2, 3])
def test_truncated_or_flipped_records_never_raise_anything_else(
    rsa: RSAKey, record_format: int
) -> None:
    record = encode_session(login_session(dev_tokens(rsa)), record_format)  # type: ignore[arg-type]
    for end in range(len(record)):
        with pytest.raises(ValueError):
            decode_session(record[:end])
    rng = random.Random(7)
    for _ in range(3000):
        broken = bytearray(record)
        broken[rng.randrange(len(broken))] ^= 1 << rng.randrange(8)
        with contextlib.suppress(ValueError):  # a flip in a signature still decodes
            decode_session(bytes(broken))


def test_a_format_2_record_full_of_at_hash_values_hashes_the_access_token_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A provider's ID token with thousands of claims equal to at_hash must not make every
    # decode hash a large access token thousands of times (the Writer caches; so must the
    # Reader).
    access = jws({"alg": "RS256"}, {"sub": "alice", "pad": "p" * 4000})
    at_hash = b64(hashlib.sha256(access.encode()).digest()[:16])
    id_token = jws({"alg": "RS256"}, {"sub": "alice", **{f"c{i}": at_hash for i in range(500)}})
    record = encode_session(with_tokens(access, id_token), 2)
    calls = []
    real = codec_primitives.at_hash
    monkeypatch.setattr(codec_primitives, "at_hash", lambda t, n: calls.append(n) or real(t, n))
    decoded = decode_session(record)
    assert decoded.tokens.id_token == id_token
    assert len(calls) <= 1
