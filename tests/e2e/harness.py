"""The browser suite's parts: panva's oidc-provider (node), a JWT-verifying test API,
three `bff serve` processes on the shared test Redis, a cross-site "attacker" origin, and
Debian's Chromium driven by Playwright's sync API.

Host names are chosen so cookies and SameSite behave as in production:
- the BFF is served at http://localhost:PORT (its public URL, where the SPA lives);
- the provider at http://127.0.0.1:PORT2: another *site*. Cookies ignore ports, so a
  provider on localhost would share the BFF's cookie jar and be same-site with it, and
  the provider's redirect back would carry even SameSite=Strict cookies: the cross-site
  return that the Lax login-binding cookie exists for would never be exercised;
- the attacker page at http://127.0.0.1:PORT3: cross-site to the BFF as well;
- the two BFF instances of scenario (g) are localhost:A and localhost:B: one cookie jar,
  as two replicas behind one load balancer would be.

Every process is ours and is stopped by its own Popen handle. Services live for the module;
each test gets fresh browser contexts (no shared cookies) and unique user names.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.server
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import httpx
import pytest

from tests.support.procs import free_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext, Page

E2E_DIR = Path(__file__).resolve().parent
ROOT = E2E_DIR.parents[1]
STATIC_DIR = ROOT / "deploy" / "demo" / "static"
# `bff` from this venv; E2E_BFF_COMMAND (space separated) runs another build instead.
BFF_COMMAND = os.environ.get("E2E_BFF_COMMAND", "").split() or [
    str(Path(sys.executable).parent / "bff")
]
CHROMIUM = os.environ.get("E2E_CHROMIUM", "/usr/bin/chromium")
# Flags from the machine notes: without the background-networking ones Chromium keeps
# dialling Google's hosts, which this closed network refuses.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ACCESS_TOKEN_TTL = int(os.environ.get("E2E_ACCESS_TOKEN_TTL", "5"))
REFRESH_SKEW = 1  # seconds; with a 5 s token the BFF refreshes ~4 s after issue
RESOURCE = "https://api.e2e.bff.test"
API_SCOPE = "api:read"
CLIENT_ID = "bff-e2e"
CLIENT_SECRET = "bff-e2e-secret-" + secrets.token_urlsafe(16)
SECRET_KEY = "e2e-" + secrets.token_urlsafe(32)
START_TIMEOUT = 30.0
INSTALL_HINT = "run `bash tests/e2e/install.sh` (chromium, npm ci, playwright)"


# ---- processes --------------------------------------------------------------------------


@dataclass
class Service:
    """A child process of ours, its log file, and a cursor into that log per test."""

    name: str
    process: subprocess.Popen[bytes]
    log_path: Path
    log: IO[bytes] = field(repr=False)

    def log_size(self) -> int:
        self.log.flush()
        return self.log_path.stat().st_size

    def log_since(self, offset: int) -> str:
        with self.log_path.open("rb") as fh:
            fh.seek(offset)
            return fh.read().decode(errors="replace")

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()  # our own child, by its handle (PID), never by name
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.log.close()


def _spawn(name: str, cmd: list[str], log_dir: Path, **kw: Any) -> Service:
    log_path = log_dir / f"{name}.log"
    log = log_path.open("ab")
    try:
        process = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, **kw)
    except BaseException:
        log.close()
        raise
    return Service(name, process, log_path, log)


def _wait_for(service: Service, probe: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if not service.alive():
            break
        with contextlib.suppress(httpx.HTTPError, OSError, ValueError):
            if probe():
                return
        time.sleep(0.1)
    output = service.log_since(0)
    service.stop()
    raise RuntimeError(f"{service.name} did not become ready ({what}):\n{output[-4000:]}")


def _read_port_file(path: Path, service: Service) -> int:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and service.alive():
        text = path.read_text() if path.exists() else ""
        if text.endswith("\n"):
            return int(text)
        time.sleep(0.05)
    output = service.log_since(0)
    service.stop()
    raise RuntimeError(f"{service.name} did not report its port:\n{output[-4000:]}")


@dataclass
class Provider:
    service: Service
    issuer: str

    def stats(self, sub: str) -> dict[str, Any]:
        r = httpx.get(f"{self.issuer}/_test/stats", params={"sub": sub}, timeout=5)
        r.raise_for_status()
        return r.json()  # type: ignore[no-any-return]

    def refresh_token_values(self, sub: str) -> list[str]:
        r = httpx.get(f"{self.issuer}/_test/refresh-token-values", params={"sub": sub}, timeout=5)
        r.raise_for_status()
        return list(r.json()["values"])


@dataclass
class Api:
    service: Service
    url: str

    def calls(self, since: int = 0) -> list[dict[str, Any]]:
        r = httpx.get(f"{self.url}/_test/calls", params={"since": since}, timeout=5)
        r.raise_for_status()
        return list(r.json()["calls"])

    def count(self) -> int:
        r = httpx.get(f"{self.url}/_test/calls", params={"since": 10**9}, timeout=5)
        return int(r.json()["count"])


@dataclass
class Bff:
    service: Service
    port: int
    cookie_name: str

    @property
    def url(self) -> str:
        return f"http://localhost:{self.port}"


def _start_provider(log_dir: Path, bff_ports: list[int], backchannel_port: int) -> Provider:
    if not (E2E_DIR / "node_modules" / "oidc-provider").is_dir():
        pytest.fail(f"tests/e2e/node_modules is missing: {INSTALL_HINT}")
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is not installed (the e2e provider is panva's oidc-provider)")
    port_file = log_dir / "provider.port"
    cmd = [
        node,
        str(E2E_DIR / "provider.mjs"),
        "--port-file",
        str(port_file),
        "--client-id",
        CLIENT_ID,
        "--client-secret",
        CLIENT_SECRET,
        "--resource",
        RESOURCE,
        "--access-token-ttl",
        str(ACCESS_TOKEN_TTL),
        # Server to server: no cookies involved, so the loopback address it listens on.
        "--backchannel-logout-uri",
        f"http://127.0.0.1:{backchannel_port}/bff/backchannel-logout",
    ]
    for port in bff_ports:
        cmd += ["--redirect-uri", f"http://localhost:{port}/bff/callback"]
        cmd += ["--post-logout-redirect-uri", f"http://localhost:{port}/"]
    service = _spawn("provider", cmd, log_dir, cwd=E2E_DIR)
    port = _read_port_file(port_file, service)
    provider = Provider(service, f"http://127.0.0.1:{port}")
    _wait_for(
        service,
        lambda: (
            httpx.get(f"{provider.issuer}/.well-known/openid-configuration", timeout=2)
            .raise_for_status()
            .json()["issuer"]
            == provider.issuer
        ),
        "discovery",
    )
    return provider


def _start_api(log_dir: Path, issuer: str) -> Api:
    port_file = log_dir / "api.port"
    cmd = [
        sys.executable,
        str(E2E_DIR / "api_server.py"),
        "--issuer",
        issuer,
        "--audience",
        RESOURCE,
        "--port-file",
        str(port_file),
    ]
    service = _spawn("api", cmd, log_dir, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    port = _read_port_file(port_file, service)
    api = Api(service, f"http://127.0.0.1:{port}")
    _wait_for(service, lambda: httpx.get(f"{api.url}/_test/calls", timeout=2).is_success, "calls")
    return api


def _start_bff(name: str, port: int, log_dir: Path, env: dict[str, str], cookie_name: str) -> Bff:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("BFF_")}
    cmd = [*BFF_COMMAND, "serve", "--host", "127.0.0.1", "--port", str(port)]
    service = _spawn(name, cmd, log_dir, env={**clean, **env, "BFF_COOKIE_NAME": cookie_name})
    bff = Bff(service, port, cookie_name)
    # Ready = Redis answers and the provider's metadata is loaded.
    _wait_for(
        service,
        lambda: httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200,
        "/readyz",
    )
    return bff


# ---- the cross-site origin ----------------------------------------------------------------


class _AttackerHandler(http.server.BaseHTTPRequestHandler):
    pages: dict[str, str] = {}  # noqa: RUF012 - set once per server below

    def do_GET(self) -> None:
        body = self.pages.get(self.path.split("?")[0])
        data = (body or "not found").encode()
        self.send_response(200 if body else 404)
        self.send_header("content-type", "text/html; charset=utf-8")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


@dataclass
class Attacker:
    """A page on another site (127.0.0.1, not localhost) that the test writes."""

    server: http.server.ThreadingHTTPServer
    pages: dict[str, str]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def publish(self, path: str, html: str) -> str:
        self.pages[path] = html
        return self.url + path


@contextlib.contextmanager
def _attacker_server() -> Iterator[Attacker]:
    pages: dict[str, str] = {}
    handler = type("Handler", (_AttackerHandler,), {"pages": pages})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, name="e2e-attacker", daemon=True)
    thread.start()
    try:
        yield Attacker(server, pages)
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# ---- the stack ----------------------------------------------------------------------------


@dataclass
class Stack:
    provider: Provider
    api: Api
    bff_a: Bff  # instance A and B: one Redis, one prefix, one cookie (scenario g)
    bff_b: Bff
    bff_lax: Bff  # BFF_COOKIE_SAMESITE=lax, for the cross-site scenario
    attacker: Attacker
    redis_url: str
    store_prefix: str

    @property
    def services(self) -> list[Service]:
        bffs = [self.bff_a, self.bff_b, self.bff_lax]
        return [self.provider.service, self.api.service, *(b.service for b in bffs)]


@contextlib.contextmanager
def start_stack(log_dir: Path, redis_url: str) -> Iterator[Stack]:
    """Provider, API, three BFF instances and the attacker origin; stopped afterwards."""
    ports = [free_port() for _ in range(3)]
    store_prefix = f"bffe2e-{uuid.uuid4().hex[:10]}"
    started: list[Service] = []
    try:
        with _attacker_server() as attacker:
            provider = _start_provider(log_dir, ports, backchannel_port=ports[0])
            started.append(provider.service)
            api = _start_api(log_dir, provider.issuer)
            started.append(api.service)
            base_env = {
                "BFF_ISSUER": provider.issuer,
                "BFF_CLIENT_ID": CLIENT_ID,
                "BFF_CLIENT_SECRET": CLIENT_SECRET,
                "BFF_SECRET_KEY": SECRET_KEY,
                "BFF_SESSION_STORE": redis_url,
                "BFF_STORE_PREFIX": store_prefix,
                "BFF_STATIC_DIR": str(STATIC_DIR),
                "BFF_ROUTES": f"/api={api.url}",
                "BFF_RESOURCE": RESOURCE,
                "BFF_SCOPES": f"openid profile email offline_access {API_SCOPE}",
                "BFF_REFRESH_SKEW": str(REFRESH_SKEW),
                "BFF_SESSION_IDLE_TIMEOUT": "600",  # leftovers in the shared Redis expire
                "BFF_UPSTREAM_TIMEOUT": "10",
            }
            bffs = []
            for name, port, extra in (
                ("bff-a", ports[0], {}),
                ("bff-b", ports[1], {}),
                ("bff-lax", ports[2], {"BFF_COOKIE_SAMESITE": "lax"}),
            ):
                env = {**base_env, "BFF_PUBLIC_URL": f"http://localhost:{port}", **extra}
                cookie = "bff-lax-session" if name == "bff-lax" else "bff-session"
                bff = _start_bff(name, port, log_dir, env, cookie)
                started.append(bff.service)
                bffs.append(bff)
            yield Stack(provider, api, *bffs, attacker, redis_url, store_prefix)
    finally:
        for service in reversed(started):
            service.stop()
        _drop_store_keys(redis_url, store_prefix)


def _drop_store_keys(redis_url: str, prefix: str) -> None:
    import redis

    with contextlib.suppress(redis.RedisError), redis.Redis.from_url(redis_url) as client:
        keys = list(client.scan_iter(match=f"{prefix}:*", count=500))
        if keys:
            client.delete(*keys)


# ---- per test ----------------------------------------------------------------------------


class E2E:
    """Per test: the stack, fresh browser contexts, unique users, and failure evidence."""

    def __init__(self, stack: Stack, browser: Browser, tmp_path: Path, test_name: str) -> None:
        self.stack = stack
        self.browser = browser
        self.tmp_path = tmp_path
        self.test_name = test_name
        self.contexts: list[BrowserContext] = []
        self._log_offsets = {s.name: s.log_size() for s in stack.services}
        self._users = 0

    def __getattr__(self, name: str) -> Any:  # e2e.provider, e2e.bff_a, ...
        return getattr(self.stack, name)

    def new_context(self) -> BrowserContext:
        context = self.browser.new_context()
        context.set_default_timeout(15_000)
        self.contexts.append(context)
        return context

    def new_user(self) -> str:
        """A login name (= `sub`) no other test uses, so the provider's counters are ours."""
        self._users += 1
        digest = hashlib.sha256(self.test_name.encode()).hexdigest()[:6]
        return f"u{digest}-{self._users}-{secrets.token_hex(3)}"

    def logs(self) -> dict[str, str]:
        return {s.name: s.log_since(self._log_offsets[s.name]) for s in self.stack.services}

    def save_artifacts(self) -> list[Path]:
        """Screenshots of every open page and this test's part of every service log."""
        saved: list[Path] = []
        for ci, context in enumerate(self.contexts):
            for pi, page in enumerate(context.pages):
                path = self.tmp_path / f"screenshot-{ci}-{pi}.png"
                with contextlib.suppress(Exception):  # a crashed page must not hide the failure
                    page.screenshot(path=str(path), full_page=True)
                    saved.append(path)
                    (self.tmp_path / f"screenshot-{ci}-{pi}.url.txt").write_text(page.url)
        for name, text in self.logs().items():
            path = self.tmp_path / f"{name}.log"
            path.write_text(text)
            saved.append(path)
        return saved

    def close(self) -> None:
        for context in self.contexts:
            with contextlib.suppress(Exception):
                context.close()


def json_or_text(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


PASSWORD = "any password will do"  # the e2e provider accepts any password


def sign_in(page: Page, app_url: str, issuer: str, user: str) -> None:
    """From the demo page at `app_url` through the provider's login (and consent) pages
    and back, until the page shows the user."""
    import re

    from playwright.sync_api import expect

    status = page.locator("#status")
    page.goto(app_url + "/")
    expect(status).to_have_text(re.compile("^Not logged in$"))
    page.click("#login")
    page.wait_for_url(f"{issuer}/**")
    page.fill("input[name=login]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    consent = page.get_by_role("button", name="Continue")
    expect(consent.or_(status)).to_be_visible()
    if consent.is_visible():
        consent.click()
    page.wait_for_url(f"{app_url}/**")
    expect(status).to_have_text(re.compile(f"^Logged in as E2E {re.escape(user)}$"))
