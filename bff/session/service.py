"""Sessions through the store: cookie -> hash -> blob -> decrypt -> Session, and back.

The store sees only hashed keys and sealed blobs. The cookie carries the session id
and its absolute expiry (signed), so one `GETEX` can both read the session and slide
its idle expiry to min(idle timeout, remaining lifetime) without a second command.

The service owns the store: the rest of bff uses its operations (`service_ops`: login
state, pending logins, the refresh lock, find by `sub`/`sid`, replay memory, ping). Every
way a session ends goes through `end`: delete (which unindexes), announce it (`events`:
its WebSockets and streams close everywhere), revoke the refresh token when asked
(bounded, best effort), one audit line (which also counts `bff_events_total`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Literal

from bff.errors import BlobError, IdpError
from bff.session.cookies import CookieSigner
from bff.session.crypto import KeyRing
from bff.session.events import EndPublisher, SessionEnded
from bff.session.ids import new_session_id
from bff.session.records import (
    RecordFormat,
    Session,
    decode_session,
    encode_session,
    session_hash,
    short_hash,
)
from bff.session.service_ops import StoreOps
from bff.store import IndexEntry, SessionStore
from bff.telemetry.audit import AuditEvent, audit
from bff.tokens.records import TokenSet

__all__ = ["REVOKE_TIMEOUT", "EndReason", "Revoke", "SessionRef", "SessionService"]

_log = logging.getLogger("bff.sessions")

REVOKE_TIMEOUT = 3.0  # seconds a revocation may hold up the end of a session
# RFC 7009 revocation of a refresh token (`OidcClient.revoke`); IdpError on failure.
Revoke = Callable[[str], Awaitable[None]]
# Why a session ends: the audit event (and outcome) `end` writes for it.
EndReason = Literal["logout", "backchannel_logout", "revoke", "invalid_grant", "no_refresh_token"]
_EVENTS: Mapping[EndReason, tuple[AuditEvent, str]] = MappingProxyType(
    {
        "logout": ("logout", "success"),
        "backchannel_logout": ("backchannel_logout", "success"),
        "revoke": ("revoke", "deleted"),
        "invalid_grant": ("refresh_failed", "invalid_grant"),
        "no_refresh_token": ("refresh_failed", "no_refresh_token"),
    }
)

# Bounded memo tables (evicting in insertion order): only verified results go in.
_REF_CACHE = 8192  # cookie value -> SessionRef: the HMAC check and the store-key hash
_OPEN_CACHE = 1024  # (store key hash, sealed blob) -> Session: the decrypt and the decode


@dataclass(frozen=True, slots=True)
class SessionRef:
    """What a valid session cookie names: never logged (the id is the credential)."""

    session_id: str = field(repr=False)
    hash: str
    expires_at: int

    @property
    def logout_sid(self) -> str:
        """The `sid` of `/bff/logout?sid=…`: only a same-origin reader of /bff/user knows it."""
        return hashlib.sha256(b"bff/logout-sid\0" + self.session_id.encode()).hexdigest()[:32]


class SessionService(StoreOps):
    """Cookie -> session and back; create, save and end sessions (see the module doc)."""

    def __init__(
        self,
        *,
        store: SessionStore,
        keys: KeyRing,
        signer: CookieSigner,
        idle_timeout: int,
        max_lifetime: int,
        clock: Callable[[], float],
        revoke: Revoke | None = None,
        revoke_timeout: float = REVOKE_TIMEOUT,
        events: EndPublisher | None = None,
        namespace: str = "",
        record_format: RecordFormat = 3,
        keep_id_token: bool = True,
    ) -> None:
        # `namespace`: the frontend's (`Frontend.session_namespace`): in the store key, the
        # sealed record's associated data and the index, so that one frontend never finds,
        # opens or ends another's session, even in a shared store.
        super().__init__(store, namespace=namespace, events=events)
        self._revoke, self._revoke_timeout = revoke, revoke_timeout
        self._keys, self._signer, self._clock = keys, signer, clock
        self.handle_key = keys.handle_key  # of the handles users see (bff.session.inventory)
        self._idle, self._lifetime = idle_timeout, max_lifetime
        self._record_format: RecordFormat = record_format  # written; both are read
        self._keep_id_token = keep_id_token  # False: no id_token_hint, nothing reads it
        self._refs: dict[str, SessionRef] = {}
        self._opened: dict[tuple[str, bytes], Session] = {}

    def now(self) -> float:
        """The injected clock's time (seconds since the epoch)."""
        return self._clock()

    def ref_from_cookie(self, value: str | None) -> SessionRef | None:
        """Verify the signature before any I/O; None for anything not ours or expired."""
        if not value:
            return None
        ref = self._refs.get(value)
        if ref is None:
            unsigned = self._signer.unsign_session(value)
            if unsigned is None:
                return None
            session_id, expires_at = unsigned
            ref = SessionRef(session_id, session_hash(session_id, self.namespace), expires_at)
            if len(self._refs) >= _REF_CACHE:
                del self._refs[next(iter(self._refs))]
            self._refs[value] = ref  # signing keys never change while the process runs
        if ref.expires_at <= self._clock():
            return None
        return ref

    def cookie_value(self, ref: SessionRef) -> str:
        return self._signer.sign_session(ref.session_id, ref.expires_at)

    def _seal(self, ref_hash: str, session: Session) -> bytes:
        if not self._keep_id_token and session.tokens.id_token is not None:
            session = replace(session, tokens=replace(session.tokens, id_token=None))
        record = encode_session(session, self._record_format)
        return self._keys.seal(record, aad=self._aad(ref_hash))

    def _aad(self, ref_hash: str) -> bytes:
        return f"{self.namespace}\0{ref_hash}".encode() if self.namespace else ref_hash.encode()

    def _index(self, session: Session) -> IndexEntry:
        return IndexEntry(
            sub=self.indexed(session.sub),
            idp_sid=self.indexed(session.idp_sid) if session.idp_sid else None,
            expires_at=session.expires_at,
            earlier_layout=self._record_format == 2,  # a rolling upgrade's setting
        )

    def _ttl(self, expires_at: int) -> int:
        return max(0, min(self._idle, int(expires_at - self._clock())))

    async def load(self, ref: SessionRef) -> Session | None:
        """Read and slide the idle expiry in one store round trip; None when gone."""
        ttl = self._ttl(ref.expires_at)
        if ttl <= 0:
            return None
        blob = await self._store.load_session(ref.hash, ttl=ttl)
        if blob is None:
            return None
        session = self._open(ref.hash, blob)
        if session is None:
            return None
        if session.expires_at > ref.expires_at:
            return None  # not the session this cookie was issued for
        if session.expires_at <= self._clock():
            # Its lifetime was shortened (refresh-token expiry) and is over: remove it.
            await self.delete(ref.hash, session)
            return None
        return session

    def _open(self, ref_hash: str, blob: bytes) -> Session | None:
        """Decrypt and decode, memoised: the same authenticated blob under the same store
        key always opens to the same record, so a repeat skips the work (the store is
        still read on every request: a deleted or replaced session is never served)."""
        memo = (ref_hash, blob)
        session = self._opened.get(memo)
        if session is not None:
            return session
        try:
            session = decode_session(self._keys.open(blob, aad=self._aad(ref_hash)))
        except (BlobError, ValueError):
            # Sealed by a retired key or corrupted: unusable, and never a crash.
            return None
        if len(self._opened) >= _OPEN_CACHE:
            del self._opened[next(iter(self._opened))]
        self._opened[memo] = session
        return session

    async def create(
        self,
        *,
        tokens: TokenSet,
        claims: dict[str, Any],
        user_agent: str,
        dpop_key: str | None = None,
        client_ip: str = "",
    ) -> tuple[SessionRef, Session]:
        """A brand-new session under a brand-new random id (fixation is impossible)."""
        now = int(self._clock())
        expires_at = now + self._lifetime
        if tokens.refresh_expires_at is not None:  # never outlive the refresh token
            expires_at = min(expires_at, tokens.refresh_expires_at)
        session_id = new_session_id()
        ref = SessionRef(session_id, session_hash(session_id, self.namespace), expires_at)
        sid = claims.get("sid")
        session = Session(
            sub=str(claims["sub"]),
            idp_sid=sid if isinstance(sid, str) and sid else None,
            claims=claims,
            tokens=tokens,
            created_at=now,
            expires_at=expires_at,
            user_agent=user_agent[:256],
            dpop_key=dpop_key,
            client_ip=client_ip[:64],
        )
        await self._store.create_session(
            ref.hash,
            self._seal(ref.hash, session),
            ttl=self._ttl(expires_at),
            index=self._index(session),
        )
        return ref, session

    async def save(self, session_hash_value: str, session: Session) -> bool:
        """Conditional write: False when the session was deleted meanwhile."""
        ttl = self._ttl(session.expires_at)
        if ttl <= 0:
            return False
        return await self._store.update_session(
            session_hash_value, self._seal(session_hash_value, session), ttl=ttl
        )

    async def delete(self, session_hash_value: str, session: Session | None) -> bool:
        index = self._index(session) if session is not None else None
        return await self._store.delete_session(session_hash_value, index=index)

    async def load_by_hash(self, session_hash_value: str) -> Session | None:
        """For administration and back-channel logout: read without sliding the expiry."""
        found = await self.inspect(session_hash_value)
        return found[0] if found is not None else None

    async def inspect(self, session_hash_value: str) -> tuple[Session, int] | None:
        """The session and its remaining store TTL (seconds: listings derive `last_seen`
        from it), read without sliding the expiry; None when gone or unreadable."""
        ttl = await self._store.session_ttl(session_hash_value) or 0
        blob = await self._store.load_session(session_hash_value, ttl=ttl) if ttl > 0 else None
        session = self._open(session_hash_value, blob) if blob is not None else None
        return None if session is None else (session, ttl)

    async def end(
        self,
        session_hash_value: str,
        session: Session | None,
        reason: EndReason,
        *,
        revoke: bool = False,
        client_ip: str | None = None,
        user_agent: str | None = None,
    ) -> bool:
        """End a session, the one way every caller does: delete it (and its index
        entries); tell its live connections everywhere (`events`); when `revoke`, revoke
        its refresh token at the provider (bounded, best effort: a provider that fails
        never keeps a session alive); one audit line. False (and nothing announced,
        audited or revoked) when it was already gone."""
        if not await self.delete(session_hash_value, session):
            return False
        if self._events is not None:  # before the revocation: sockets close within 2 s
            await self._events.publish(SessionEnded(session_hash_value, reason))
        event, outcome = _EVENTS[reason]
        refresh_token = session.tokens.refresh_token if session is not None else None
        if revoke and refresh_token and self._revoke is not None:
            revoked = await self._revoke_quietly(refresh_token)
            if reason == "revoke":
                outcome = "deleted_and_revoked" if revoked else "deleted_revocation_failed"
        audit(
            event,
            outcome=outcome,
            now=self._clock(),
            sub=session.sub if session is not None else None,
            session=short_hash(session_hash_value),
            client_ip=client_ip,
            user_agent=user_agent,
        )
        return True

    async def _revoke_quietly(self, refresh_token: str) -> bool:
        assert self._revoke is not None
        try:
            async with asyncio.timeout(self._revoke_timeout):
                await self._revoke(refresh_token)
            return True
        except (IdpError, TimeoutError) as exc:
            _log.warning("refresh token revocation failed: %s", type(exc).__name__)
            return False
