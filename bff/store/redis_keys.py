"""The Redis store's key names (the layout drawn in `bff.store`) and the index's members.

Provider strings (`sub`, `sid`), login `state` values and replay keys are SHA-256 digested
before they become key names, so no input can break the key syntax or a SCAN pattern.
Every key one command touches lies in one hash slot: a new key keeps its hash tag ({…})
shared with the keys it is written or read together with.
"""

from __future__ import annotations

import hashlib
import re

__all__ = [
    "HASH_RE",
    "INDEX_BUCKETS",
    "LEGACY_BUCKETS",
    "IndexSlot",
    "KeyLayout",
    "check_hash",
    "check_ttl",
    "digest",
]

HASH_RE = re.compile(r"[0-9A-Za-z_-]{1,128}")
_HEX_RE = re.compile(r"[0-9a-f]+")
# The index's bucket count is part of the key layout: a store with another count would
# look for existing entries in the wrong buckets. 32,768 buckets keep about 2,000,000
# sessions (two entries each, ~61 a bucket at 1,000,000) in listpack-encoded sets of
# ~32 B an entry; past zset-max-listpack-entries (128 by default) a bucket converts to a
# skiplist of ~120 B an entry (raise that setting for more sessions). Releases before
# this one used 2,048 buckets (a skiplist each from ~130,000 sessions on, 238 B a session
# at 1,000,000): their entries stay where they are, so lookups and removals also visit
# the `legacy_bucket` until those sessions have expired (BFF_SESSION_MAX_LIFETIME).
INDEX_BUCKETS = 32768
LEGACY_BUCKETS = 2048
_TAG_LEN = 8


def check_hash(session_hash: str) -> str:
    if not HASH_RE.fullmatch(session_hash):
        raise ValueError("session hash must be 1-128 characters of [0-9A-Za-z_-]")
    return session_hash


def check_ttl(ttl: int, what: str = "ttl") -> None:
    if ttl <= 0:
        raise ValueError(f"{what} must be positive")


def digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def _glob_escape(text: str) -> str:
    """Escape Redis glob metacharacters (braces are literal in Redis globs)."""
    return re.sub(r"([\\*?\[\]])", r"\\\1", text)


class IndexSlot:
    """Where one `sub` or `sid` value lives in the index: its bucket and its member tag.

    The index is `INDEX_BUCKETS` sorted sets (Redis keeps each a compact listpack while it
    holds at most `zset-max-listpack-entries`, 128 by default, members of at most 64 bytes).
    A member is the value's 8-byte tag followed by a session hash, 24 bytes for the usual
    32-hex hash; its score is the session's absolute expiry. Tag and bucket come from
    different bits of SHA-256(kind, value): 74 bits tell two values apart (an accidental
    match is about as likely as guessing a 74-bit key; finding one on purpose takes ~2^74
    hashes, and provider-assigned `sub` / `sid` values are not the attacker's to choose).
    """

    __slots__ = ("bucket", "legacy_bucket", "tag")

    def __init__(self, kind: str, value: str) -> None:
        raw = hashlib.sha256(f"{kind}\0{value}".encode("utf-8", "surrogatepass")).digest()
        self.bucket = int.from_bytes(raw[8:10], "big") % INDEX_BUCKETS
        self.legacy_bucket = self.bucket % LEGACY_BUCKETS  # the same bits, fewer of them
        self.tag = raw[:7] + bytes((raw[7] & 0xFE,))  # the low bit tells the hash form

    def member(self, session_hash: str) -> bytes:
        if len(session_hash) % 2 == 0 and _HEX_RE.fullmatch(session_hash):
            return self.tag + bytes.fromhex(session_hash)  # half the size
        return self.tag[:7] + bytes((self.tag[7] | 1,)) + session_hash.encode("ascii")

    def session_hash(self, member: bytes) -> str | None:
        """The session hash in one of this value's members; None for another value's."""
        if len(member) <= _TAG_LEN or member[:7] != self.tag[:7]:
            return None
        flag = member[7] ^ self.tag[7]
        if flag == 0:
            return member[_TAG_LEN:].hex()
        if flag == 1:
            session_hash = member[_TAG_LEN:].decode("ascii", "replace")
            return session_hash if HASH_RE.fullmatch(session_hash) else None
        return None


class KeyLayout:
    """The key names under one prefix."""

    __slots__ = ("_head", "prefix")

    def __init__(self, prefix: str) -> None:
        if not prefix:
            raise ValueError("prefix must not be empty")
        self.prefix = prefix
        self._head = f"{prefix}:{{".encode()

    def session(self, session_hash: str) -> str:
        return f"{self.prefix}:{{{check_hash(session_hash)}}}:s"

    def lock(self, session_hash: str) -> str:
        return f"{self.prefix}:{{{check_hash(session_hash)}}}:lock"

    def bucket(self, slot: IndexSlot) -> str:
        return f"{self.prefix}:ix:{{{slot.bucket:04x}}}"

    def legacy_bucket(self, slot: IndexSlot) -> str:
        """Where releases with 2,048 buckets put the entry (3 hex digits: never a new name)."""
        return f"{self.prefix}:ix:{{{slot.legacy_bucket:03x}}}"

    def login(self, state: str) -> str:
        return f"{self.prefix}:login:{{{digest(state)}}}"

    def once(self, key: str) -> str:
        return f"{self.prefix}:once:{{{digest(key)}}}"

    def pending(self, group: str) -> str:
        return f"{self.prefix}:pend:{{{digest(group)}}}"

    def session_pattern(self) -> str:
        """The SCAN pattern of every session key."""
        return f"{_glob_escape(self.prefix)}:{{*}}:s"

    def session_hash_of(self, key: bytes) -> str | None:
        """The session hash a key SCAN found names; None for any other key."""
        if not (key.startswith(self._head) and key.endswith(b"}:s")):
            return None
        session_hash = key[len(self._head) : -3].decode("utf-8", "replace")
        return session_hash if HASH_RE.fullmatch(session_hash) else None
