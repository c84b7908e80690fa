"""The BFF side of the proxy tests: settings with routes, sessions minted straight into a
store (as a login would leave them), the app served by a real uvicorn in this loop or in
a subprocess, a private redis-server, and a raw-socket client for byte-exact targets."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from bff.config.load import load_settings
from bff.config.model import Settings
from bff.session.cookies import CookieSigner
from bff.session.crypto import KeyRing
from bff.session.service import SessionService
from bff.store import SessionStore
from bff.tokens.records import TokenSet
from bff.web.app import create_app
from bff.web.listener import bounded_http_protocol
from tests.fake_idp import CLIENT_ID, CLIENT_SECRET, ISSUER, SECRET_KEY, FakeIdp
from tests.support.procs import free_port, redis_server_argv

__all__ = [
    "BFF_BIN",
    "BffProcess",
    "PrivateRedis",
    "free_port",
    "make_settings",
    "mint_session",
    "private_redis",
    "raw_request",
    "serve",
    "session_service",
]

BFF_BIN = Path(sys.executable).parent / "bff"


def make_settings(routes: list[dict[str, Any]], **env: str) -> Settings:
    base = {
        "BFF_ISSUER": ISSUER,
        "BFF_CLIENT_ID": CLIENT_ID,
        "BFF_CLIENT_SECRET": CLIENT_SECRET,
        "BFF_SECRET_KEY": SECRET_KEY,
    }
    return load_settings({**base, **env}, {"routes": routes})


def session_service(
    store: SessionStore, secret_key: str = SECRET_KEY, **options: Any
) -> SessionService:
    """`options` override the defaults (clock, revoke, revoke_timeout, timeouts)."""
    keys = KeyRing([secret_key])
    settings: dict[str, Any] = {"idle_timeout": 1800, "max_lifetime": 86400, "clock": time.time}
    return SessionService(
        store=store, keys=keys, signer=CookieSigner(keys.signing_keys), **{**settings, **options}
    )


async def mint_session(
    store: SessionStore, sub: str, access_token: str, *, secret_key: str = SECRET_KEY
) -> str:
    """Create a session the way a login does; returns the signed cookie value."""
    sessions = session_service(store, secret_key)
    tokens = TokenSet(
        access_token=access_token,
        expires_at=int(time.time()) + 3600,
        refresh_token=f"refresh-{sub}",
    )
    ref, _ = await sessions.create(tokens=tokens, claims={"sub": sub}, user_agent="test")
    return sessions.cookie_value(ref)


@contextlib.asynccontextmanager
async def serve(
    settings: Settings,
    store: SessionStore,
    idp: FakeIdp | None = None,
    *,
    bounded: bool = False,
    ws: str = "none",
    **app_options: Any,
) -> AsyncIterator[str]:
    """The app on a real uvicorn (httptools) in this loop, lifespan included; its URL.
    `bounded`: with `bff serve`'s listener bounds (bff.listener). `ws`: uvicorn's
    WebSocket protocol (`websockets-sansio` as `bff serve`; none: upgrades are plain
    requests). `app_options` go to `create_app` (tracing=..., lifecycle=..., bus=...)."""
    idp = idp or FakeIdp()
    http = idp.http()
    app = create_app(settings, http=http, store=store, discover_on_startup=False, **app_options)
    # proto=IPPROTO_TCP, else asyncio leaves TCP_NODELAY off (Nagle: +40 ms a response)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        app,
        lifespan="on",
        log_level="warning",
        access_log=False,
        http=bounded_http_protocol(settings) if bounded else "httptools",
        ws=ws,
        proxy_headers=False,  # as `bff serve`: the app applies BFF_TRUSTED_PROXIES itself
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        while not server.started:
            if task.done():
                task.result()
            await asyncio.sleep(0.01)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await task
        sock.close()
        await http.aclose()


class BffProcess:
    """`bff serve` (uvloop, httptools: the production server) in a subprocess."""

    def __init__(self, env: dict[str, str], command: list[str] | None = None) -> None:
        self.port = free_port()
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 - closed in stop()
        full = {k: v for k, v in os.environ.items() if not k.startswith("BFF_")}
        full.update(env)
        self.process = subprocess.Popen(
            [
                *(command or [str(BFF_BIN), "serve"]),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
            ],
            env=full,
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                output = self.output()
                self.stop()
                raise RuntimeError(f"bff exited: {output}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            time.sleep(0.05)
        output = self.output()
        self.stop()
        raise RuntimeError(f"bff did not start: {output}")

    def rss_kib(self) -> int:
        return _status_kib(self.process.pid, "VmRSS")

    def output(self) -> str:
        self.log.seek(0)
        return self.log.read().decode(errors="replace")[-4000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(5)
        self.log.close()


def _status_kib(pid: int, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise LookupError(field)


class PrivateRedis:
    """A redis-server of our own (never the shared one) that tests may stop and restart."""

    def __init__(self) -> None:
        self.port = free_port()
        self.dir = tempfile.TemporaryDirectory()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> PrivateRedis:
        self.process = subprocess.Popen(
            redis_server_argv(self.port, self.dir.name),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            with (
                contextlib.suppress(OSError),
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as conn,
            ):
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return self
            time.sleep(0.02)
        raise RuntimeError("redis-server did not start")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None

    def close(self) -> None:
        self.stop()
        self.dir.cleanup()


@contextlib.contextmanager
def private_redis() -> Iterator[PrivateRedis]:
    server = PrivateRedis().start()
    try:
        yield server
    finally:
        server.close()


async def raw_request(port: int, request: bytes) -> tuple[int, bytes]:
    """Send bytes exactly as given (no client normalises the target); status and body."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        data = await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), body
