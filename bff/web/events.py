"""`GET /bff/events`: the current session's events as server-sent events (SPEC.md "Live
connections"), so that every open tab learns at once that its session is ending or over.

Allowed with `X-CSRF: 1`, or with the browser's own `Sec-Fetch-Site: same-origin` (a plain
`EventSource` cannot set a header; a cross-site page's request never says same-origin);
else 403 `csrf`. 401 without a live session. Then `text/event-stream`:

    event: session_expiring      data: seconds left; once, when the session's idle or
                                 absolute end is within the window (EXPIRING_WINDOW,
                                 60 s by default)
    event: session_ended         data: the reason (logout, backchannel_logout, revoke,
                                 invalid_grant, no_refresh_token, expired, ended);
                                 then the stream ends

and a comment line every `heartbeat` seconds, so that proxies keep the idle stream open.
An `EventSource` reconnects after the end and gets 401, which stops it.
"""

from __future__ import annotations

import asyncio
import contextlib

from starlette.types import Receive, Scope, Send

from bff.errors import CsrfRejected, NotAuthenticated, TooManyRequests
from bff.proxy.request_checks import csrf_ok, csrf_refusal, header_values
from bff.session.cookies import find_cookie
from bff.session.live import LiveSessions
from bff.session.records import short_hash
from bff.session.service import SessionService

__all__ = ["HEARTBEAT", "SessionEvents", "sse_event"]

HEARTBEAT = 15.0  # seconds between keep-alive comments (proxies cut idle streams at 30-60 s)
_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-store"),
    (b"x-accel-buffering", b"no"),  # nginx: pass each event on at once
]
_GONE = ("", "")  # the browser went away


def sse_event(name: str, data: str) -> bytes:
    return f"event: {name}\ndata: {data}\n\n".encode()


def _allowed(headers: list[tuple[bytes, bytes]]) -> bool:
    if csrf_ok(headers):
        return True
    sites = [v.strip().lower() for k, v in headers if k == b"sec-fetch-site"]
    return sites == [b"same-origin"]


class _Listener:
    """What the session's end tells this stream."""

    __slots__ = ("queue",)

    def __init__(self, queue: asyncio.Queue[tuple[str, str]]) -> None:
        self.queue = queue

    def end(self, reason: str) -> None:
        self.queue.put_nowait(("session_ended", reason))

    def expiring(self, seconds: int) -> None:
        self.queue.put_nowait(("session_expiring", str(seconds)))


class SessionEvents:
    """The raw ASGI handler of `/bff/events` (a Starlette route serves it, so its
    refusals are rendered like every other endpoint's)."""

    def __init__(
        self,
        *,
        sessions: SessionService,
        live: LiveSessions,
        cookie_name: str,
        heartbeat: float = HEARTBEAT,
    ) -> None:
        self._sessions = sessions
        self._live = live
        self._cookie = cookie_name
        self._heartbeat = heartbeat

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = scope["headers"]
        if not _allowed(headers):
            raise CsrfRejected(
                "X-CSRF: 1 or a same-origin request required", reason=csrf_refusal(headers)
            )
        cookie = find_cookie(header_values(headers, b"cookie"), self._cookie)
        ref = self._sessions.ref_from_cookie(cookie)
        session = await self._sessions.load(ref) if ref is not None else None
        if ref is None or session is None:
            reason = "no_cookie" if not cookie else "session_not_found"
            raise NotAuthenticated("no live session", reason=reason)
        scope.setdefault("state", {})["session"] = short_hash(ref.hash)  # access log
        if not self._live.admit(ref.hash):  # a bounded number per session and worker
            raise TooManyRequests(
                "too many live connections", code="too_many_connections", retry_after=5
            )
        queue: asyncio.Queue[tuple[str, str]] = asyncio.Queue()
        listener = _Listener(queue)
        attachment = self._live.attach(
            ref.hash, session.expires_at, listener, expiring=listener.expiring
        )
        gone = asyncio.create_task(_watch_disconnect(receive, queue))
        try:
            await send({"type": "http.response.start", "status": 200, "headers": _HEADERS})
            await send({"type": "http.response.body", "body": b": open\n\n", "more_body": True})
            while True:
                try:
                    name, data = await asyncio.wait_for(queue.get(), self._heartbeat)
                except TimeoutError:
                    beat = {"type": "http.response.body", "body": b": -\n\n", "more_body": True}
                    await send(beat)
                    continue
                if (name, data) == _GONE:
                    return
                last = name == "session_ended"
                await send(
                    {"type": "http.response.body", "body": sse_event(name, data), "more_body": True}
                )
                if last:
                    await send({"type": "http.response.body", "body": b"", "more_body": False})
                    return
        except OSError:
            return  # the browser has gone (ASGI 2.4: send raises)
        finally:
            attachment.detach()
            self._live.leave(ref.hash)
            gone.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await gone


async def _watch_disconnect(receive: Receive, queue: asyncio.Queue[tuple[str, str]]) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass
    queue.put_nowait(_GONE)
