"""An upstream's answer relayed to the browser: its status and filtered headers
(`bff.proxy.response_headers`), then its body as it comes. A short body goes in one
send; a longer one is streamed, counted in `bff_live_connections`, and stops being read
as soon as the browser leaves (the disconnect watch) or its session ends (`ending`: then
the answer is cut, left uncompleted as when the upstream fails mid-body)."""

from __future__ import annotations

import contextlib

from bff.proxy.forward_rules import ForwardRules
from bff.proxy.replies import Send
from bff.proxy.response_headers import filter_response_headers
from bff.session.live import EndScope
from bff.telemetry.metrics import LIVE_CONNECTIONS
from bff.upstream.browser import BodyStream, DisconnectWatch
from bff.upstream.protocol import UpstreamExchange

__all__ = ["relay_response"]

_BODILESS = frozenset({204, 304})  # never a body (nor 1xx, which is never relayed)


async def relay_response(
    response: UpstreamExchange,
    send: Send,
    *,
    rules: ForwardRules,
    watch: DisconnectWatch,
    stream: BodyStream | None,
    ending: EndScope | None = None,
) -> None:
    """Send `response` to the browser. `stream`: the request's body, if it had one (the
    disconnect watch may take `receive` only once it is done). `ending`: the session's
    scope, entered only for a streamed body."""
    status = response.status
    headers = filter_response_headers(response.raw_headers, rules, bodiless=status in _BODILESS)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    read, at_eof = response.readany, response.at_eof
    chunk = await read()
    if at_eof():
        watch.stop()  # from here a disconnect cannot cancel the final send
        await send({"type": "http.response.body", "body": chunk, "more_body": False})
        return
    if stream is None or stream.done:
        watch.start()  # a longer body: stop reading it as soon as the browser leaves
    LIVE_CONNECTIONS.inc()  # a streamed response: counted while it stays open
    try:
        async with ending or contextlib.nullcontext():
            while not at_eof():
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
                chunk = await read()
        if ending is not None and ending.reason is not None:
            response.close()  # the session ended: the server closes the connection
            return
        watch.stop()  # from here a disconnect cannot cancel the final send
        await send({"type": "http.response.body", "body": chunk, "more_body": False})
    finally:
        LIVE_CONNECTIONS.dec()
