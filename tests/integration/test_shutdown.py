"""Graceful shutdown of a real `bff serve` (1 and 2 workers) with a slow streamed response
in flight: on SIGTERM /readyz turns 503 at once, new connections are still served during
BFF_SHUTDOWN_DRAIN_DELAY and refused after it, the stream finishes whole, and the
process exits 0."""

from __future__ import annotations

import json
import signal
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.provider_fixture import RunningProvider, start_dev_provider
from tests.integration.proxy_env import BFF_BIN, BffProcess, free_port
from tests.integration.upstream_server import UpstreamServer, running_upstream

SECRET_KEY = "shutdown-test-secret-key-0123456789-abcdef"
CHUNKS, GAP = 8, 0.5  # the stream takes ~4 s: it outlives the 2 s drain delay
DRAIN = 2.0


@pytest.fixture(scope="module")
def op() -> Iterator[RunningProvider]:
    with start_dev_provider() as provider:
        yield provider


@pytest.fixture(scope="module")
def up() -> Iterator[UpstreamServer]:
    with running_upstream() as server:
        yield server


def _wait(predicate: object, seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():  # type: ignore[operator]
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _refused(url: str) -> bool:
    """True when a fresh connection is not served: refused, or, when it met the listener
    closing, accepted and closed (reset from the backlog, or closed idle by the server's
    shutdown) before any answer. An answer of any status is False."""
    try:
        httpx.get(url, timeout=2)
    except (httpx.ConnectError, httpx.RemoteProtocolError, httpx.ReadError):
        return True
    return False


def _status(url: str) -> int | None:
    """One request on a fresh connection; None when the connection is refused."""
    try:
        return httpx.get(url, timeout=2).status_code
    except httpx.ConnectError:
        return None


@pytest.mark.parametrize("workers", [1, 2])
def test_sigterm_drains_then_refuses_and_lets_the_stream_finish(
    workers: int, op: RunningProvider, up: UpstreamServer, redis_url: str, tmp_path: Path
) -> None:
    admin_port = free_port()
    config = tmp_path / "bff.toml"
    config.write_text(
        f'[[routes]]\nprefix = "/slow"\nupstream = "{up.url}"\ntoken = "none"\ncsrf = false\n'
    )
    env = {
        "BFF_ISSUER": op.issuer,
        "BFF_CLIENT_ID": op.client_id,
        "BFF_CLIENT_SECRET": op.client_secret,
        "BFF_SECRET_KEY": SECRET_KEY,
        "BFF_SHUTDOWN_DRAIN_DELAY": str(DRAIN),
        "BFF_SHUTDOWN_TIMEOUT": "20",
        "BFF_ADMIN_LISTEN": f"127.0.0.1:{admin_port}",
        # the supervisor's and the workers' lines: JSON with 2 workers, text with 1
        "BFF_LOG_FORMAT": "json" if workers > 1 else "text",
    }
    if workers > 1:
        env["BFF_SESSION_STORE"] = redis_url
        env["BFF_STORE_PREFIX"] = f"bfftest-{uuid.uuid4().hex[:12]}"
    command = [str(BFF_BIN), "serve", "--config", str(config), "--workers", str(workers)]
    bff = BffProcess(env, command)
    try:
        ready = f"{bff.url}/readyz"
        # every worker has loaded the provider's metadata: several fresh connections say so
        _wait(lambda: all(_status(ready) == 200 for _ in range(4)), 20, "readiness")

        received: list[bytes] = []
        first_chunk = threading.Event()
        failure: list[BaseException] = []

        def stream() -> None:
            try:
                url = f"{bff.url}/slow/s?_drip={CHUNKS}&_gap={GAP}"
                with httpx.stream("GET", url, timeout=30) as r:
                    assert r.status_code == 200
                    for chunk in r.iter_raw():
                        received.append(chunk)
                        first_chunk.set()
            except BaseException as exc:
                failure.append(exc)
                first_chunk.set()

        reader = threading.Thread(target=stream)
        reader.start()
        assert first_chunk.wait(10) and not failure, failure

        bff.process.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        # at once: not ready (every worker), while new connections are still served
        _wait(lambda: all(_status(ready) == 503 for _ in range(4)), 1.5, "readyz 503")
        assert httpx.get(ready, timeout=2).json()["error"] == "not_ready"
        # the admin listener's /readyz (in the main process) says why
        admin = httpx.get(f"http://127.0.0.1:{admin_port}/readyz", timeout=2)
        assert admin.status_code == 503
        assert admin.json()["error_description"] == "shutting down"
        assert _status(f"{bff.url}/healthz") == 200
        assert time.monotonic() - signalled < DRAIN

        # after the drain delay: refused, while the stream is still being served
        _wait(lambda: _refused(f"{bff.url}/healthz"), DRAIN + 8, "refusal")
        assert time.monotonic() - signalled >= DRAIN - 0.2
        assert bff.process.poll() is None
        assert reader.is_alive()

        reader.join(30)
        assert not failure, failure
        assert len(b"".join(received)) == CHUNKS * 100  # the whole body, nothing cut
        assert bff.process.wait(20) == 0
    finally:
        bff.log.seek(0)
        output = bff.log.read().decode(errors="replace")  # all of it
        bff.stop()
    assert "Traceback" not in output, output
    assert "draining for 2.0 s" in output
    if workers > 1:  # every line, uvicorn's and the supervisor's included, is JSON
        lines = [json.loads(line) for line in output.splitlines() if line.strip()]
        assert {"bff.serve", "uvicorn.error"} <= {line["logger"] for line in lines}
