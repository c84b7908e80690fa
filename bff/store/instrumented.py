"""A SessionStore that measures another: duration and failures per operation
(`bff_store_duration_seconds`, `bff_store_errors_total`) and, when tracing is on, one
child span per call (`store <operation>`, no key or value in any attribute)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, TypeVar

from bff.store import IndexEntry, SessionStore, StoreUnavailable
from bff.telemetry.request_metrics import StoreMetrics
from bff.telemetry.tracing import Tracing

__all__ = ["InstrumentedStore"]

T = TypeVar("T")


class InstrumentedStore:
    """Wraps `inner`; anything beyond the SessionStore protocol is passed through."""

    def __init__(
        self,
        inner: SessionStore,
        *,
        tracing: Tracing | None = None,
        timer: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.inner = inner
        self._timer = timer  # durations only: any monotonic seconds
        self._metrics = StoreMetrics()
        self._load_duration = self._metrics.durations["load_session"]
        self._load_errors = self._metrics.errors["load_session"]
        self._tracing = tracing
        self._system = type(inner).__name__.removesuffix("Store").lower() or "store"

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    async def _call(self, operation: str, call: Callable[[], Awaitable[T]]) -> T:
        started = self._timer()
        try:
            if self._tracing is None:
                return await call()
            attributes: dict[str, str | int] = {
                "db.system.name": self._system,
                "db.operation.name": operation,
            }
            with self._tracing.span(f"store {operation}", attributes, leaf=True):
                return await call()
        except StoreUnavailable:
            self._metrics.errors[operation].inc()
            raise
        finally:
            self._metrics.durations[operation].observe(self._timer() - started)

    async def create_session(
        self, session_hash: str, blob: bytes, *, ttl: int, index: IndexEntry
    ) -> None:
        return await self._call(
            "create_session",
            lambda: self.inner.create_session(session_hash, blob, ttl=ttl, index=index),
        )

    async def load_session(self, session_hash: str, *, ttl: int) -> bytes | None:
        if self._tracing is not None:
            return await self._call(
                "load_session", lambda: self.inner.load_session(session_hash, ttl=ttl)
            )
        # Every proxied request comes here: `_call` inlined, one coroutine less.
        started = self._timer()
        try:
            return await self.inner.load_session(session_hash, ttl=ttl)
        except StoreUnavailable:
            self._load_errors.inc()
            raise
        finally:
            self._load_duration.observe(self._timer() - started)

    async def update_session(self, session_hash: str, blob: bytes, *, ttl: int) -> bool:
        return await self._call(
            "update_session", lambda: self.inner.update_session(session_hash, blob, ttl=ttl)
        )

    async def delete_session(self, session_hash: str, *, index: IndexEntry | None) -> bool:
        return await self._call(
            "delete_session", lambda: self.inner.delete_session(session_hash, index=index)
        )

    async def session_ttl(self, session_hash: str) -> int | None:
        return await self._call("session_ttl", lambda: self.inner.session_ttl(session_hash))

    async def sessions_by_sub(self, sub: str) -> list[str]:
        return await self._call("sessions_by_sub", lambda: self.inner.sessions_by_sub(sub))

    async def sessions_by_idp_sid(self, idp_sid: str) -> list[str]:
        return await self._call(
            "sessions_by_idp_sid", lambda: self.inner.sessions_by_idp_sid(idp_sid)
        )

    def all_sessions(self) -> AsyncIterator[str]:
        return self.inner.all_sessions()

    async def put_login_state(self, state: str, blob: bytes, *, ttl: int) -> None:
        return await self._call(
            "put_login_state", lambda: self.inner.put_login_state(state, blob, ttl=ttl)
        )

    async def take_login_state(self, state: str) -> bytes | None:
        return await self._call("take_login_state", lambda: self.inner.take_login_state(state))

    async def acquire_lock(self, session_hash: str, *, lease_ms: int) -> str | None:
        return await self._call(
            "acquire_lock", lambda: self.inner.acquire_lock(session_hash, lease_ms=lease_ms)
        )

    async def release_lock(self, session_hash: str, token: str) -> bool:
        return await self._call(
            "release_lock", lambda: self.inner.release_lock(session_hash, token)
        )

    async def remember_once(self, key: str, *, ttl: int) -> bool:
        return await self._call("remember_once", lambda: self.inner.remember_once(key, ttl=ttl))

    async def ping(self) -> None:
        return await self._call("ping", self.inner.ping)

    async def topology(self) -> dict[str, Any]:
        """The inner store's view (an operator's question, not measured)."""
        return await self.inner.topology()

    async def aclose(self) -> None:
        await self.inner.aclose()
