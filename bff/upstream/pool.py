"""The lean client's keep-alive connections to one origin: at most `limit` open at a time
(connecting, busy or idle), a request waiting at most `queue_timeout` seconds for one
(then UpstreamBusy, 503), the most recently used idle one handed out first, idle ones
closed after `keepalive` seconds. Time is the event loop's clock (`loop.time`,
`loop.call_at`): the one its timers run on.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl

from bff.errors import UpstreamBusy, UpstreamTimeout, UpstreamUnavailable
from bff.upstream.connection import Connection

__all__ = ["ConnectionPool"]


class ConnectionPool:
    """Connections to `host`:`port` (TLS when `tls` is given), made inside the running loop
    that uses them; implements `bff.upstream.connection.ConnectionOwner`."""

    def __init__(
        self,
        origin: str,
        host: str,
        port: int,
        tls: ssl.SSLContext | None,
        *,
        timeout: float,
        limit: int,
        queue_timeout: float,
        keepalive: float,
    ) -> None:
        self.origin = origin
        self.loop = asyncio.get_running_loop()
        self.timeout = timeout  # of connecting
        self._host = host
        self._port = port
        self._tls = tls
        self._limit = limit
        self._queue_timeout = queue_timeout
        self._keepalive = keepalive
        self._open = 0  # connections holding a slot: connecting, busy or idle
        self._idle: collections.deque[Connection] = collections.deque()
        self._waiters: collections.deque[asyncio.Future[Connection | None]] = collections.deque()
        self._sweeper: asyncio.TimerHandle | None = None
        self._closed = False

    async def acquire(self, fresh: bool) -> Connection:
        if not fresh and self._idle:
            conn = self._idle.pop()  # the most recently used: least likely to be stale
            conn.idle = False
            return conn
        try:
            return await self._slot_or_connection(fresh)
        except TimeoutError:
            raise UpstreamTimeout(f"upstream {self.origin} timed out (connect)") from None
        except OSError as exc:  # refused, unreachable, DNS, TLS
            raise UpstreamUnavailable(
                f"upstream {self.origin} failed ({type(exc).__name__})"
            ) from exc

    async def _slot_or_connection(self, fresh: bool) -> Connection:
        deadline: float | None = None  # of the wait for a slot, however often woken
        while True:
            if self._closed:
                raise UpstreamUnavailable("upstream pool closed")
            if not fresh and self._idle:
                conn = self._idle.pop()
                conn.idle = False
                return conn
            if self._open >= self._limit and fresh and self._idle:
                self._idle[0].close()  # the oldest idle one makes room for a fresh one
            if self._open < self._limit:
                async with asyncio.timeout(self.timeout):
                    return await self._connect()
            if deadline is None:
                deadline = self.loop.time() + self._queue_timeout
            handed = await self._wait_for_slot(deadline)
            if handed is not None and not fresh:
                return handed
            if handed is not None:
                self.put(handed)  # a fresh connection was wanted: keep this one pooled

    async def _wait_for_slot(self, deadline: float) -> Connection | None:
        """A connection handed over by `put`, or None when a slot came free."""
        waiter: asyncio.Future[Connection | None] = self.loop.create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout_at(deadline):
                try:
                    return await waiter
                except BaseException:
                    if waiter.done() and not waiter.cancelled():
                        passed = waiter.result()  # woken, but leaving: pass it on
                        if passed is not None:
                            self.put(passed)
                        else:
                            self._wake()
                    else:
                        with contextlib.suppress(ValueError):
                            self._waiters.remove(waiter)
                    raise
        except TimeoutError:
            raise UpstreamBusy(
                f"upstream {self.origin}: all {self._limit} connections stayed busy"
            ) from None

    async def _connect(self) -> Connection:
        self._open += 1
        conn = Connection(self)
        try:
            if self._tls is None:
                await self.loop.create_connection(lambda: conn, self._host, self._port)
            else:
                await self.loop.create_connection(
                    lambda: conn,
                    self._host,
                    self._port,
                    ssl=self._tls,
                    server_hostname=self._host,
                )
        except BaseException:
            conn.close()
            raise
        return conn

    def put(self, conn: Connection) -> None:
        """A clean connection back: to the first waiter, else idle."""
        conn.exchange = None
        conn.resume()
        if self._closed or conn.closed:
            conn.close()
            return
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        conn.idle = True
        conn.idle_until = self.loop.time() + self._keepalive
        self._idle.append(conn)
        if self._sweeper is None:
            self._sweeper = self.loop.call_at(conn.idle_until, self._sweep)

    def lost(self, conn: Connection) -> None:
        """A connection closed (by either side): out of the idle list, its slot freed."""
        if conn.idle:
            conn.idle = False
            with contextlib.suppress(ValueError):
                self._idle.remove(conn)
        if conn.counted:
            conn.counted = False
            self._open -= 1
            self._wake()

    def _wake(self) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # a slot is free: connect
                return

    def _sweep(self) -> None:
        self._sweeper = None
        now = self.loop.time()
        while self._idle and self._idle[0].idle_until <= now:
            self._idle[0].close()
        if self._idle:
            self._sweeper = self.loop.call_at(self._idle[0].idle_until, self._sweep)

    def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            self._sweeper = None
        while self._idle:
            self._idle[0].close()
        while self._waiters:
            self._wake()  # each finds the pool closed
