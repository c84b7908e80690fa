"""The admin listener (issue 11 defect 13): `/metrics` and the reasons of `/readyz` were
public on the main listener (they name internal hosts, the store, the provider's state).
Now they are served on `BFF_ADMIN_LISTEN` only - one listener per `bff serve` whatever
`--workers`, metrics merged across workers - and the main listener keeps `/healthz` and a
bare `/readyz` status."""

from __future__ import annotations

import multiprocessing
import time
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from bff.config.load import load_settings
from bff.store.memory import MemoryStore
from bff.web.admin_app import create_admin_app
from tests.fake_idp import CLIENT_ID, CLIENT_SECRET, ISSUER, SECRET_KEY, FakeIdp
from tests.integration.test_serve import serve, stop
from tests.security.edge_env import Env, edge_env
from tests.support.procs import free_port

pytestmark = pytest.mark.anyio

SETTINGS = {
    "BFF_ISSUER": ISSUER,
    "BFF_CLIENT_ID": CLIENT_ID,
    "BFF_CLIENT_SECRET": CLIENT_SECRET,
    "BFF_SECRET_KEY": SECRET_KEY,
}


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with edge_env() as e:
        yield e


async def test_main_listener_no_longer_serves_metrics_or_readiness_reasons(env: Env) -> None:
    assert (await env.browser.get("/metrics")).status_code == 404
    r = await env.browser.get("/readyz")
    assert r.status_code == 503
    assert r.json() == {"error": "not_ready", "error_description": "not ready"}
    assert "provider" not in r.text and "store" not in r.text
    assert (await env.browser.get("/healthz")).status_code == 200
    await env.start_login()  # loads the provider metadata
    assert (await env.browser.get("/readyz")).json() == {"status": "ready"}


def _admin(idp: FakeIdp, metrics_dir: str | None = None) -> httpx.AsyncClient:
    app = create_admin_app(
        load_settings(SETTINGS),
        metrics_dir=metrics_dir,
        store=MemoryStore(),
        http=idp.http(),
        discover_on_startup=False,
    )
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://admin")


async def test_admin_app_shows_readiness_reasons_and_metrics() -> None:
    idp = FakeIdp()
    async with _admin(idp) as admin:
        r = await admin.get("/readyz")
        assert r.status_code == 503
        assert "provider metadata not loaded" in r.json()["error_description"]
        r = await admin.get("/metrics")
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/plain")
        assert "bff_events_total" in r.text
        r = await admin.post("/metrics")
        assert r.status_code == 405 and r.headers["allow"] == "GET"


def _count_login() -> None:
    from bff.telemetry.metrics import count_event

    count_event("login", "success")


async def test_admin_metrics_merge_every_worker(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two worker processes count one login each; the admin listener shows both."""
    metrics_dir = str(tmp_path)
    # Inherited by the spawned children (as `bff serve` sets it for uvicorn's workers).
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", metrics_dir)
    spawn = multiprocessing.get_context("spawn")  # like uvicorn's workers
    for _ in range(2):
        worker = spawn.Process(target=_count_login)
        worker.start()
        worker.join(60)
        assert worker.exitcode == 0
    async with _admin(FakeIdp(), metrics_dir) as admin:
        text = (await admin.get("/metrics")).text
    assert 'bff_events_total{event="login",outcome="success"} 2.0' in text


def _serve_env(redis_url: str, admin_port: int) -> dict[str, str]:
    return {
        "BFF_ISSUER": f"http://127.0.0.1:{free_port()}",  # down: readiness has a reason
        "BFF_CLIENT_ID": "c",
        "BFF_CLIENT_SECRET": "s",
        "BFF_SECRET_KEY": SECRET_KEY,
        "BFF_SESSION_STORE": redis_url,
        "BFF_STORE_PREFIX": f"bfftest-{uuid.uuid4().hex[:12]}",
        "BFF_ADMIN_LISTEN": f"127.0.0.1:{admin_port}",
    }


@pytest.mark.redis
def test_bff_serve_with_two_workers_runs_one_admin_listener(redis_url: str) -> None:
    admin_port = free_port()
    proc, port = serve(_serve_env(redis_url, admin_port), "--workers", "2")
    try:
        admin = f"http://127.0.0.1:{admin_port}"
        deadline = time.monotonic() + 20
        while True:
            r = httpx.get(f"{admin}/readyz", timeout=5)
            if "provider metadata" in r.text or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert r.status_code == 503 and "provider metadata not loaded" in r.text
        assert httpx.get(f"{admin}/metrics", timeout=5).status_code == 200
        main = f"http://127.0.0.1:{port}"
        for _ in range(8):  # whichever worker answers
            assert httpx.get(f"{main}/metrics", timeout=5).status_code == 404
            r = httpx.get(f"{main}/readyz", timeout=5)
            assert r.status_code == 503 and "provider" not in r.text
        assert proc.poll() is None  # neither worker died competing for the admin port
    finally:
        output = stop(proc)
    assert "Traceback" not in output
    assert output.count("admin listener on") <= 1


@pytest.mark.redis
def test_one_worker_counts_in_the_files_the_admin_listener_merges(redis_url: str) -> None:
    """One worker and an admin listener: the serving process must count in the
    multiprocess files, which it does only if prometheus_client is first imported after
    `bff serve` has set PROMETHEUS_MULTIPROC_DIR (the value class is chosen at import)."""
    admin_port = free_port()
    proc, port = serve(_serve_env(redis_url, admin_port))
    try:
        for _ in range(3):
            r = httpx.get(f"http://127.0.0.1:{port}/bff/user", headers={"X-CSRF": "1"}, timeout=5)
            assert r.status_code == 401
        counted = 'bff_requests_total{route="/bff/user",status_class="4xx"} 3.0'
        text = ""
        deadline = time.monotonic() + 10  # request metrics are batched per second
        while counted not in text and time.monotonic() < deadline:
            time.sleep(0.3)
            text = httpx.get(f"http://127.0.0.1:{admin_port}/metrics", timeout=5).text
        assert counted in text
    finally:
        output = stop(proc)
    assert "Traceback" not in output
