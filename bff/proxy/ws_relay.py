"""The upstream side of a proxied WebSocket: the `websockets` client's handshake, and the
relay between the browser's side (ASGI `receive`/`send`) and the upstream's, message by
message, until one side closes.

Back-pressure: a message is taken from one side only once the other has accepted the
last one (`upstream.send` waits while the client's write buffer is over its limit; the
ASGI server's `send` waits while the browser's socket is), so nothing queues here. Close
codes pass through; the ones that only describe a closure (1005 no code, 1006 abnormal,
1015 TLS) are mapped to ones that may be sent.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.frames import EXTERNAL_CLOSE_CODES
from websockets.typing import Subprotocol

from bff.answers import Answer, Kind, json_answer

__all__ = [
    "MAX_MESSAGE",
    "MAX_QUEUE",
    "Outcome",
    "open_upstream",
    "relay",
    "to_browser",
    "to_upstream",
]

MAX_MESSAGE = 1 << 20  # bytes of one message, either way (also uvicorn's ws_max_size)
MAX_QUEUE = 16  # upstream messages read ahead of the browser

_log = logging.getLogger("bff.proxy")
_CLOSE_TIMEOUT = 2.0  # seconds a closing handshake may take
_TIMED_OUT = json_answer(Kind.UPSTREAM_TIMEOUT)
_UNAVAILABLE = json_answer(Kind.UPSTREAM_UNAVAILABLE)

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
Outcome = tuple[str, int, str]  # which side closed first (`browser`, `upstream`), code, reason


async def open_upstream(
    uri: str,
    headers: list[tuple[str, str]],
    subprotocols: Sequence[str],
    *,
    open_timeout: float,
    max_message: int,
    max_queue: int,
) -> ClientConnection | Answer:
    """The upstream's WebSocket, or the answer for the browser when there is none."""
    try:
        return await connect(
            uri,
            additional_headers=headers,
            subprotocols=[Subprotocol(p) for p in subprotocols] or None,
            user_agent_header=None,  # the browser's, when it sent one
            proxy=None,  # never an HTTP(S)_PROXY from the environment
            open_timeout=open_timeout,
            close_timeout=_CLOSE_TIMEOUT,
            max_size=max_message,
            max_queue=max_queue,
        )
    except InvalidStatus as exc:
        status = exc.response.status_code
        _log.warning("WebSocket upstream refused the upgrade: %s", status)
        return json_answer(
            Kind.UPSTREAM_UNAVAILABLE, f"the upstream refused the WebSocket ({status})"
        )
    except TimeoutError:
        return _TIMED_OUT
    except (OSError, InvalidHandshake) as exc:
        _log.warning("WebSocket upstream unavailable: %s", type(exc).__name__)
        return _UNAVAILABLE


def _passable(code: int) -> bool:
    """A code one may send in a close frame (1005, 1006 and 1015 only describe one)."""
    return code in EXTERNAL_CLOSE_CODES or 3000 <= code < 5000


def to_browser(code: int) -> int:
    if code == 1005:  # the upstream closed without a code
        return 1000
    return code if _passable(code) else 1014  # it vanished: Bad Gateway


def to_upstream(code: int) -> int:
    if code == 1005:
        return 1000
    return code if _passable(code) else 1001  # the browser vanished: Going Away


async def relay(receive: Receive, send: Send, upstream: ClientConnection) -> Outcome:
    """Both directions until one side closes: (`browser` | `upstream`, code, reason)."""
    up = asyncio.create_task(_browser_to_upstream(receive, upstream))
    down = asyncio.create_task(_upstream_to_browser(send, upstream))
    try:
        done, _ = await asyncio.wait((up, down), return_when=asyncio.FIRST_COMPLETED)
        return (up if up in done else down).result()
    finally:
        for task in (up, down):
            task.cancel()
        await asyncio.gather(up, down, return_exceptions=True)


async def _browser_to_upstream(receive: Receive, upstream: ClientConnection) -> Outcome:
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return "browser", message.get("code", 1005), message.get("reason") or ""
        if message["type"] != "websocket.receive":
            continue
        text = message.get("text")
        try:
            await upstream.send(text if text is not None else message.get("bytes") or b"")
        except ConnectionClosed:
            return await _closed(upstream)


async def _upstream_to_browser(send: Send, upstream: ClientConnection) -> Outcome:
    try:
        async for data in upstream:
            if isinstance(data, str):
                await send({"type": "websocket.send", "text": data})
            else:
                await send({"type": "websocket.send", "bytes": data})
    except ConnectionClosed:
        pass
    return await _closed(upstream)


async def _closed(upstream: ClientConnection) -> Outcome:
    await upstream.wait_closed()
    return "upstream", upstream.close_code or 1006, upstream.close_reason or ""
