"""bench/live.py's load: the WebSocket echo upstream it starts (a process of its own) and
the three measurements: close on logout (a socket held through one bff instance, logout on
the other), pipelined echo throughput, and sequential round trips. Each is bounded (a
message count and a timeout) and works on any `Opener` (through bff, or direct)."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx
from websockets.asyncio.client import ClientConnection, connect
from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from bench.report import percentile
from tests.support.sessions import login

__all__ = ["Opener", "close_on_logout", "echo_server", "opener", "round_trips", "throughput"]


# --- the echo upstream (a process of its own) ---------------------------------------------
async def _echo(ws: ServerConnection) -> None:
    with contextlib.suppress(ConnectionClosed):
        async for message in ws:
            await ws.send(message)


async def echo_server(port: int) -> None:
    async with serve(_echo, "127.0.0.1", port, compression=None) as server:
        await server.serve_forever()


# --- measurements ---------------------------------------------------------------------------
Opener = Callable[[], Awaitable[ClientConnection]]


def opener(url: str, headers: dict[str, str]) -> Opener:
    async def open_one() -> ClientConnection:
        return await connect(
            url, additional_headers=headers, compression=None, open_timeout=10, proxy=None
        )

    return open_one


async def throughput(open_one: Opener, total: int, connections: int, size: int) -> float:
    """Messages per second: `total` messages pipelined over `connections` sockets."""
    sockets = [await open_one() for _ in range(connections)]
    payload = b"x" * size
    shares = [total // connections + (i < total % connections) for i in range(connections)]

    async def one(ws: ClientConnection, n: int) -> None:
        async def sender() -> None:
            for _ in range(n):
                await ws.send(payload)

        task = asyncio.create_task(sender())
        for _ in range(n):
            if len(await ws.recv()) != size:
                raise RuntimeError("the echo changed a message")
        await task

    try:
        started = time.perf_counter()
        async with asyncio.timeout(300):
            await asyncio.gather(*(one(ws, n) for ws, n in zip(sockets, shares, strict=True)))
        return sum(shares) / (time.perf_counter() - started)
    finally:
        for ws in sockets:
            await ws.close()


async def round_trips(open_one: Opener, count: int, size: int) -> list[float]:
    """Milliseconds per sequential round trip on one socket (after 50 warm-up ones)."""
    payload = b"y" * size
    spans: list[float] = []
    async with asyncio.timeout(300):
        ws = await open_one()
        try:
            for i in range(count + 50):
                started = time.perf_counter()
                await ws.send(payload)
                await ws.recv()
                if i >= 50:
                    spans.append((time.perf_counter() - started) * 1000)
        finally:
            await ws.close()
    return spans


async def close_on_logout(url_a: str, url_b: str, trials: int) -> dict[str, Any]:
    """Per trial: login, socket via B, logout on A; ms until the 4401 close frame."""
    spans: list[float] = []
    answers: list[float] = []  # the logout request's own answer time, for comparison
    codes: dict[str, int] = {}
    async with httpx.AsyncClient(timeout=10) as http:
        for i in range(trials):
            cookie = await asyncio.to_thread(login, url_a, f"live-bench-{i}-{secrets.token_hex(3)}")
            headers = {"Cookie": cookie, "Origin": url_b}
            ws = await opener("ws" + url_b.removeprefix("http") + "/live/trial", headers)()
            await ws.send("hello")
            await ws.recv()  # open end to end
            closed = asyncio.get_running_loop().create_future()

            async def wait_close(ws: ClientConnection = ws, closed: Any = closed) -> None:
                with contextlib.suppress(ConnectionClosed):
                    while True:
                        await ws.recv()
                closed.set_result(time.perf_counter())

            waiter = asyncio.create_task(wait_close())
            started = time.perf_counter()
            answer = await http.post(
                f"{url_a}/bff/logout", headers={"cookie": cookie, "x-csrf": "1"}
            )
            if answer.status_code not in (200, 302):
                raise RuntimeError(f"logout answered {answer.status_code}")
            answers.append((time.perf_counter() - started) * 1000)
            async with asyncio.timeout(10):
                ended = await closed
            await waiter
            spans.append((ended - started) * 1000)
            code = f"{ws.close_code} {ws.close_reason}"
            codes[code] = codes.get(code, 0) + 1
    return {
        "trials": trials,
        "median_ms": round(statistics.median(spans), 2),
        "max_ms": round(max(spans), 2),
        "p90_ms": round(percentile(spans, 90), 2),
        "logout_answer_median_ms": round(statistics.median(answers), 2),
        "close_codes": codes,
    }
