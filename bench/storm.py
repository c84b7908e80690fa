"""The refresh storm: `concurrency` simultaneous requests of one session whose access
token has just expired, against any bff target (its URL, a session cookie of it, its
Redis and secret key); refresh grants counted at the provider, latency per request.

The storm measures the refresh, not TCP set-up nor the load generator:
- `concurrency` keep-alive connections are opened first, and one request of another
  session (`warm_cookie`) on each opens every connection on both hops (client -> bff,
  and bff -> upstream, whose pool a busy bff keeps warm);
- only once they have all been answered does the storm session's access token expire
  (its stored expiry moves into the past);
- then one prebuilt request goes out on every connection back to back
  (`bench.storm_client`: no HTTP library, ~10 µs of client CPU per request, reported),
  each timed from its send to its last byte.
Which worker serves a connection is read from /proc (the connection's socket belongs
to one worker process): the requests each worker served, when `pid` is given.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx

from bench.report import percentile
from bench.storm_client import fire, open_connections, request_bytes
from bff.store.redis import RedisStore
from tests.support.sessions import expire_access_token, service

__all__ = ["connections_per_worker", "grants", "refresh_storm"]

TIMEOUT = 30.0  # seconds the storm's answers may take in all


async def grants(provider: str) -> int:
    """Refresh grants the development provider has answered so far."""
    async with httpx.AsyncClient(timeout=5) as http:
        answer = await http.get(f"{provider}/_dev/stats")
        return int(answer.json()["refresh_grants"])


def _children(pid: int) -> list[int]:
    found: list[int] = []
    with contextlib.suppress(OSError):
        for task in Path(f"/proc/{pid}/task").iterdir():
            found += [int(p) for p in (task / "children").read_text().split()]
    return found


def _socket_inodes(pid: int) -> set[int]:
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                link = fd.readlink().name
                if link.startswith("socket:["):
                    inodes.add(int(link[8:-1]))
    return inodes


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of `pid` and its children (the workers) so far."""
    total = 0
    for p in (pid, *_children(pid)):
        with contextlib.suppress(OSError):
            fields = Path(f"/proc/{p}/stat").read_text().rpartition(")")[2].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime (clock ticks)
    return total / os.sysconf("SC_CLK_TCK")


def connections_per_worker(pid: int, port: int) -> list[int]:
    """Established connections on local `port` held by `pid` and each of its children,
    largest first (processes holding none left out): with one request per connection,
    the requests each worker served."""
    established: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local_port = int(fields[1].rsplit(":", 1)[1], 16)
                if local_port == port and fields[3] == "01":  # ESTABLISHED
                    established.add(int(fields[9]))
    counts = [len(_socket_inodes(p) & established) for p in (pid, *_children(pid))]
    return sorted((c for c in counts if c), reverse=True)


async def refresh_storm(
    *,
    target: str,
    url: str,
    cookie: str,
    warm_cookie: str,
    provider: str,
    redis_url: str,
    secret_key: str,
    concurrency: int,
    latency_ms: int,
    pid: int | None = None,
    expire: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    """One storm against the bff at `url` (see the module); its figures. `expire` moves the
    session's access-token expiry into the past (default: with this checkout's code)."""
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path + (f"?{parts.query}" if parts.query else "")
    request = request_bytes(parts.netloc, path, {"cookie": cookie, "x-csrf": "1"})
    warm = request_bytes(parts.netloc, path, {"cookie": warm_cookie, "x-csrf": "1"})
    connections = await open_connections(host, port, concurrency)
    try:
        warmed = await fire(connections, warm, within=TIMEOUT)
        if any(status != 200 for status in warmed.statuses):
            bad = sum(status != 200 for status in warmed.statuses)
            raise RuntimeError(f"{target}: {bad} of the warm-up requests failed")
        workers = connections_per_worker(pid, port) if pid is not None else None
        # The same burst without a refresh: what the storm costs besides the refresh.
        cpu = cpu_seconds(pid) if pid is not None else 0.0
        control = await fire(connections, warm, within=TIMEOUT)
        control_cpu = cpu_seconds(pid) - cpu if pid is not None else None
        if expire is not None:
            await expire()
        else:
            store = RedisStore.from_url(redis_url)
            try:
                await expire_access_token(service(store, secret_key), cookie)
            finally:
                await store.aclose()
        before = await grants(provider)
        cpu = cpu_seconds(pid) if pid is not None else 0.0
        storm = await fire(connections, request, within=TIMEOUT)
        storm_cpu = cpu_seconds(pid) - cpu if pid is not None else None
        await asyncio.sleep(0.2)  # a late second grant would still be counted
        after = await grants(provider)
    finally:
        for conn in connections:
            if conn.transport is not None:
                conn.transport.close()
    times = storm.latencies_ms
    failed = [s for s in storm.statuses if s != 200]
    return {
        "target": target,
        "requests": concurrency,
        "grants": after - before,
        "min_ms": round(min(times), 1),
        "p50_ms": round(percentile(times, 50), 1),
        "p99_ms": round(percentile(times, 99), 1),
        "max_ms": round(max(times), 1),
        "errors": len(failed),
        "error_statuses": {str(s): failed.count(s) for s in sorted(set(failed))},
        "per_worker": workers,
        "client_cpu_us_per_request": round(storm.cpu_us_per_request, 1),
        "send_spread_ms": round(storm.send_spread_ms, 1),
        "provider_latency_ms": latency_ms,
        "bff_cpu_us_per_request": _per_request(storm_cpu, concurrency),
        "control": {  # the same burst of a session whose token is fresh
            "p50_ms": round(percentile(control.latencies_ms, 50), 1),
            "p99_ms": round(percentile(control.latencies_ms, 99), 1),
            "errors": sum(s != 200 for s in control.statuses),
            "bff_cpu_us_per_request": _per_request(control_cpu, concurrency),
        },
    }


def _per_request(seconds: float | None, requests: int) -> float | None:
    return None if seconds is None else round(seconds * 1e6 / requests)
