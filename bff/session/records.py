"""Session records: the store key of a session id, the claims a session keeps, and the
versioned (de)serialisation of a session. Pure (the id itself comes from `bff.session.ids`)."""

from __future__ import annotations

import hashlib
import json
import zlib
from dataclasses import dataclass, field
from typing import Any, Literal

from bff.session.codec import Reader, finish
from bff.session.codec_v3 import Reader3, finish3
from bff.session.codec_v3_writer import Writer3
from bff.session.codec_writer import Writer
from bff.tokens.records import TokenSet

__all__ = [
    "HIDDEN_CLAIMS",
    "MAX_ROUTE_TOKENS",
    "RecordFormat",
    "Session",
    "decode_session",
    "encode_session",
    "session_hash",
    "short_hash",
    "shown_claims",
]


def session_hash(session_id: str, namespace: str = "") -> str:
    """The store key of a session: a dump of the store yields no usable cookie.
    `namespace` (a frontend's, see `bff.session.service`) puts the same id under another
    key; the empty one is the default frontend's (the key sessions always had)."""
    material = f"{namespace}\0{session_id}" if namespace else session_id
    return hashlib.sha256(material.encode("ascii")).hexdigest()[:32]


def short_hash(session_hash_value: str) -> str:
    """What logs show of a session."""
    return session_hash_value[:12]


@dataclass(frozen=True, slots=True)
class Session:
    sub: str
    idp_sid: str | None
    claims: dict[str, Any]  # ID token claims, shown on /bff/user
    tokens: TokenSet
    created_at: int
    expires_at: int  # absolute end; never extended
    user_agent: str = ""
    client_ip: str = ""  # the address it signed in from (after BFF_TRUSTED_PROXIES)
    # Each route's own access token (`bff.tokens.audience`), by audience key.
    route_tokens: dict[str, TokenSet] = field(default_factory=dict)
    # DPoP (RFC 9449): the session's private key (`bff.oidc.dpop.key_to_text`), sealed
    # with the rest of the record; None when the frontend does not use DPoP.
    dpop_key: str | None = field(default=None, repr=False)

    def ttl(self, *, now: float, idle_timeout: int) -> int:
        """Store TTL: min(idle timeout, remaining absolute lifetime); 0 when over."""
        return max(0, min(idle_timeout, int(self.expires_at - now)))


# --- session records --------------------------------------------------------------------
# Claims that describe the token rather than the user: never shown on /bff/user, so never
# part of `Session.claims` (which is the ID token's validated claims without these).
HIDDEN_CLAIMS = frozenset({"nonce", "at_hash", "c_hash", "s_hash", "jti"})


def shown_claims(claims: dict[str, Any]) -> dict[str, Any]:
    """What a session keeps of the ID token's validated claims."""
    return {k: v for k, v in claims.items() if k not in HIDDEN_CLAIMS}


# The record format, told by the first byte:
#   b"\x02"  v2, a `bff.session.codec` stream: three tokens (access, ID, refresh), then the rest
#            as a list of values (7; 10 with sub, sid and claims); routes' own tokens, when
#            there are any, after the 10 (they need them): a list of [key, access token,
#            expires_at, scope]; the DPoP key, a string, when there is one (8, 11 or 12
#            values); then the client address, marked with "@", when known. Its tables
#            (preset dictionary, claim names) belong to version 2: changing them needs a
#            new first byte.
# Format 1 (JSON, b"{", or zlib'd JSON, b"z") is no longer read: no release wrote it.
_V2, _V3 = b"\x02", b"\x03"
# The client address is marked: a DPoP key (base64url), the other optional trailing
# string, never starts with it.
_IP_MARK = "@"
MAX_ROUTE_TOKENS = 16  # a session keeps at most this many routes' own tokens


def _derived(id_payload: bytes | None) -> tuple[str, str | None, dict[str, Any]] | None:
    """(sub, idp_sid, claims) as a login derives them from the ID token's payload."""
    if id_payload is None:
        return None
    try:
        claims = json.loads(id_payload)
    except (ValueError, RecursionError):  # JSONDecodeError and UnicodeDecodeError included
        return None
    if not isinstance(claims, dict) or "sub" not in claims:
        return None
    shown = shown_claims(claims)
    sid = shown.get("sid")
    return str(shown["sub"]), sid if isinstance(sid, str) and sid else None, shown


def _same_json(a: Any, b: Any) -> bool:
    # Textual: also the claims' order and number types (1 vs 1.0) must survive.
    try:
        return json.dumps(a) == json.dumps(b)
    except (ValueError, TypeError, RecursionError):
        return False


def _rest(s: Session, id_payload: bytes | None) -> list[Any]:
    """The values after the three tokens (formats 2 and 3 alike, see the table above)."""
    t = s.tokens
    rest: list[Any] = [
        s.created_at,
        s.expires_at,
        t.expires_at,
        t.refresh_expires_at,
        t.token_type,
        t.scope,
        s.user_agent,
    ]
    # Session.claims, sub and sid were taken from the ID token at login: not stored twice
    # while the stored ID token still yields exactly them.
    derived = _derived(id_payload)
    if derived is None or not _same_json(derived, (s.sub, s.idp_sid, s.claims)) or s.route_tokens:
        rest += [s.sub, s.idp_sid, s.claims]
    if s.route_tokens:
        rest.append([[k, t.access_token, t.expires_at, t.scope] for k, t in s.route_tokens.items()])
    if s.dpop_key is not None:
        rest.append(s.dpop_key)
    if s.client_ip:
        # Last, marked, and only when known: a record without it keeps the seven values of
        # the dictionary's templates (bff.session.codec), where one more costs 8 bytes.
        rest.append(_IP_MARK + s.client_ip)
    return rest


def _written(s: Session, out: Writer | Writer3) -> None:
    """The record into `out`, as both formats lay it out."""
    t = s.tokens
    out.token(t.access_token)
    id_payload = out.token(t.id_token)
    out.token(t.refresh_token)
    out.values(_rest(s, id_payload))


def _encode_v2(s: Session) -> bytes:
    _written(s, out := Writer())
    return _V2 + finish(out)


def _encode_v3(s: Session) -> bytes:
    _written(s, out := Writer3())
    return _V3 + finish3(out)


def _decode_v2(data: bytes) -> Session:
    source = Reader(data)
    return _decoded(source.token(), source.token(), source.token(), source.values(), source.end)


def _decode_v3(data: bytes) -> Session:
    source = Reader3(data)
    access, id_token, refresh = source.tokens
    return _decoded(access, id_token, refresh, source.values, lambda: None)


Token = tuple[str | None, bytes | None]


def _decoded(
    access_token: Token, id_token: Token, refresh_token: Token, rest: list[Any], end: Any
) -> Session:
    end()
    access, _ = access_token
    id_jwt, id_payload = id_token
    refresh, _ = refresh_token
    # The optional values, last first: the client address (marked), the DPoP key (a
    # string), the route tokens (a list), then sub, sid and claims (when not derived).
    client_ip = ""
    if len(rest) > 7 and isinstance(rest[-1], str) and rest[-1].startswith(_IP_MARK):
        client_ip = rest.pop()[len(_IP_MARK) :]
    dpop_key = None
    if len(rest) in (8, 12) or (len(rest) == 11 and isinstance(rest[-1], str)):
        dpop_key = rest.pop()  # a string: route tokens are a list
    route_tokens: dict[str, TokenSet] = {}
    if len(rest) == 11:
        route_tokens = _route_tokens(rest.pop())
    if len(rest) == 10:
        sub, sid, claims = rest[7:]
    elif len(rest) == 7 and (derived := _derived(id_payload)) is not None:
        sub, sid, claims = derived
    else:
        raise ValueError("malformed session record")
    created_at, expires_at, at_expires, refresh_expires, token_type, scope, user_agent = rest[:7]
    return Session(
        sub=sub,
        idp_sid=sid,
        claims=claims,
        tokens=TokenSet(
            access_token=access,  # type: ignore[arg-type]  # _checked looks at every type
            expires_at=at_expires,
            refresh_token=refresh,
            id_token=id_jwt,
            token_type=token_type,
            scope=scope,
            refresh_expires_at=refresh_expires,
        ),
        created_at=created_at,
        expires_at=expires_at,
        user_agent=user_agent,
        client_ip=client_ip,
        route_tokens=route_tokens,
        dpop_key=dpop_key,
    )


def _route_tokens(entries: Any) -> dict[str, TokenSet]:
    if not isinstance(entries, list) or len(entries) > MAX_ROUTE_TOKENS:
        raise ValueError("malformed route tokens")
    found: dict[str, TokenSet] = {}
    for key, access, expires_at, scope in entries:
        ok = (
            isinstance(key, str)
            and isinstance(access, str)
            and (expires_at is None or _is_int(expires_at))
            and (scope is None or isinstance(scope, str))
        )
        if not ok:
            raise ValueError("malformed route tokens")
        found[key] = TokenSet(access_token=access, expires_at=expires_at, scope=scope)
    return found


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _checked(s: Session) -> Session:
    """The decoded record has the shape a Session promises; ValueError otherwise."""
    t = s.tokens
    ok = (
        isinstance(s.sub, str)
        and (s.idp_sid is None or isinstance(s.idp_sid, str))
        and isinstance(s.claims, dict)
        and isinstance(t.access_token, str)
        and (t.refresh_token is None or isinstance(t.refresh_token, str))
        and (t.id_token is None or isinstance(t.id_token, str))
        and (t.scope is None or isinstance(t.scope, str))
        and isinstance(t.token_type, str)
        and (t.expires_at is None or _is_int(t.expires_at))
        and (t.refresh_expires_at is None or _is_int(t.refresh_expires_at))
        and _is_int(s.created_at)
        and _is_int(s.expires_at)
        and isinstance(s.user_agent, str)
        and (s.dpop_key is None or isinstance(s.dpop_key, str))
        and isinstance(s.client_ip, str)
    )
    if not ok:
        raise ValueError("malformed session record")
    return s


RecordFormat = Literal[2, 3]


def encode_session(s: Session, record_format: RecordFormat = 3) -> bytes:
    """Record format 3 (format 2 on request: what releases before format 3 read). Sizes
    sealed (the 33 bytes of AES-GCM included), formats 2 -> 3: Keycloak's tokens (access,
    ID and HS512 refresh token) 1,085 -> 891 B; the development provider's 742 -> 745 B
    (short, mostly random values: nothing for the dictionary to match)."""
    return _encode_v2(s) if record_format == 2 else _encode_v3(s)


def decode_session(data: bytes) -> Session:
    """Inverse of encode_session; ValueError for anything malformed or of another
    format."""
    version = data[:1]
    if version not in (_V2, _V3):
        raise ValueError("unknown session record format")
    try:
        return _checked((_decode_v3 if version == _V3 else _decode_v2)(data[1:]))
    except (
        KeyError,
        TypeError,
        AttributeError,
        IndexError,
        RecursionError,
        ValueError,  # JSONDecodeError, UnicodeDecodeError, binascii.Error
        zlib.error,
    ) as exc:
        raise ValueError("malformed session record") from exc
