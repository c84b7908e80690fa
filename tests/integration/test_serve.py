"""`bff serve` as an operator runs it: uvicorn workers, real sockets, and logs that never
print a code, a cookie value or a secret."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.integration.provider_fixture import RunningProvider, start_dev_provider
from tests.support.procs import free_port

BFF_BIN = Path(sys.executable).parent / "bff"
SECRET_KEY = "serve-test-secret-key-0123456789-abcdef"


@pytest.fixture(scope="module")
def op() -> Iterator[RunningProvider]:
    with start_dev_provider() as provider:
        yield provider


def serve(env: dict[str, str], *args: str) -> tuple[subprocess.Popen[str], int]:
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BFF_")}
    proc = subprocess.Popen(
        [str(BFF_BIN), "serve", "--host", "127.0.0.1", "--port", str(port), *args],
        # The address the tests use is the public one (a login elsewhere is redirected).
        env={**clean, "BFF_PUBLIC_URL": f"http://127.0.0.1:{port}", **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return proc, port
        except httpx.HTTPError:
            time.sleep(0.1)
    raise AssertionError(f"bff serve did not start: {stop(proc)}")


def stop(proc: subprocess.Popen[str]) -> str:
    """Ctrl-C, as an operator would; the output, with the pipe closed."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
    try:
        out, _ = proc.communicate(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, _ = proc.communicate()
    return out or ""


def test_two_workers_on_redis_serve_and_logs_hold_no_secret(
    op: RunningProvider, redis_url: str
) -> None:
    env = {
        "BFF_ISSUER": op.issuer,
        "BFF_CLIENT_ID": op.client_id,
        "BFF_CLIENT_SECRET": op.client_secret,
        "BFF_SECRET_KEY": SECRET_KEY,
        "BFF_SESSION_STORE": redis_url,
        "BFF_STORE_PREFIX": f"bfftest-{uuid.uuid4().hex[:12]}",
    }
    proc, port = serve(env, "--workers", "2")
    try:
        base = f"http://127.0.0.1:{port}"
        for _ in range(50):  # discovery runs in the background; readiness follows
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                break
            time.sleep(0.1)
        assert httpx.get(f"{base}/readyz", timeout=2).status_code == 200
        r = httpx.get(
            f"{base}/bff/callback",
            params={"code": "SECRET-CODE-123", "state": "STATE-456", "iss": op.issuer},
            headers={"Cookie": "bff-session=COOKIE-VALUE-789"},
            timeout=5,
        )
        assert r.status_code == 400
        r = httpx.get(f"{base}/bff/login", timeout=5)
        assert r.status_code == 302
        assert r.headers["location"].startswith(op.issuer)
    finally:
        output = stop(proc)
    assert "/bff/callback" in output  # the access log is there ...
    for secret in (
        "SECRET-CODE-123",
        "STATE-456",
        "COOKIE-VALUE-789",
        op.client_secret,
        SECRET_KEY,
    ):
        assert secret not in output  # ... without query strings, cookies or secrets
    assert "Traceback" not in output


def test_unreachable_provider_readyz_says_why() -> None:
    dead = free_port()
    env = {
        "BFF_ISSUER": f"http://127.0.0.1:{dead}",
        "BFF_CLIENT_ID": "c",
        "BFF_CLIENT_SECRET": "s",
        "BFF_SECRET_KEY": SECRET_KEY,
        "BFF_ADMIN_LISTEN": f"127.0.0.1:{free_port()}",
    }
    proc, port = serve(env)
    try:
        # The reason is on the admin listener only (issue 11 defect 13).
        r = httpx.get(f"http://{env['BFF_ADMIN_LISTEN']}/readyz", timeout=5)
        assert r.status_code == 503
        assert "provider metadata not loaded" in r.json()["error_description"]
        r = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert r.status_code == 503 and "provider" not in r.text
        r = httpx.get(f"http://127.0.0.1:{port}/bff/login", timeout=10)
        assert r.status_code == 502 and r.json()["error"] == "idp_unavailable"
        assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5).status_code == 200
    finally:
        stop(proc)


def test_memory_store_with_two_workers_is_refused() -> None:
    env = {
        "BFF_ISSUER": "https://idp.example",
        "BFF_CLIENT_ID": "c",
        "BFF_CLIENT_SECRET": "s",
        "BFF_SECRET_KEY": SECRET_KEY,
    }
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BFF_")}
    result = subprocess.run(
        [str(BFF_BIN), "serve", "--workers", "2"],
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "memory:// cannot be shared by several workers" in result.stderr


def _write_calls(pid: int) -> int:
    for line in Path(f"/proc/{pid}/io").read_text().splitlines():
        if line.startswith("syscw:"):
            return int(line.split()[1])
    raise LookupError("syscw")


def test_an_answer_is_one_write_and_every_access_line_survives_sigterm() -> None:
    env = {
        "BFF_ISSUER": f"http://127.0.0.1:{free_port()}",  # never asked
        "BFF_CLIENT_ID": "c",
        "BFF_CLIENT_SECRET": "s",
        "BFF_SECRET_KEY": SECRET_KEY,
        "BFF_SHUTDOWN_DRAIN_DELAY": "0",
    }
    proc, port = serve(env)
    requests = 200
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as http:
            http.get("/healthz")  # a kept-alive connection from here on
            before = _write_calls(proc.pid)
            for n in range(requests):
                assert http.get(f"/missing/{n}").status_code == 404
            writes = _write_calls(proc.pid) - before
        # Head and body in one write (bff.web.paired_writes); a few more for the access
        # lines (buffered: one write per 0.1 s).
        assert writes < requests * 1.2, writes
    finally:
        proc.send_signal(signal.SIGTERM)  # graceful: the buffered access lines are written
        out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0
    logged = [line.split()[5] for line in out.splitlines() if " INFO bff.access: GET /m" in line]
    assert logged == [f"/missing/{n}" for n in range(requests)]
