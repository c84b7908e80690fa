"""Resource exhaustion, attacked (THREATS.md invariant 14: bounded work for the
unauthenticated). Issue 11 defect 3: every `GET /bff/login` stored ~2.3 KB for 10 minutes
with no bound (200 requests grew Redis by ~0.6 MB). Issue 11 defect 4: a 48 MiB header was
accepted and kept in the worker's memory, and headers trickled over 20 s went through
(slowloris) - tested against a real `bff serve` with raw sockets."""

from __future__ import annotations

import contextlib
import socket
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis.asyncio

from bff.errors import StoreUnavailable
from bff.oidc.login_bounds import LOGIN_PENDING_PER_BROWSER, PendingLogins, client_group
from bff.session.service_ops import StoreOps
from bff.store.memory import MemoryStore
from bff.store.redis import RedisStore
from tests.browser import Browser
from tests.fake_idp import ISSUER, Clock
from tests.integration.test_serve import SECRET_KEY, serve, stop
from tests.security.edge_env import Env, edge_env

pytestmark = pytest.mark.anyio


def from_address(env: Env, address: str) -> Browser:
    """A browser whose requests come through the trusted ingress from `address`."""
    browser = Browser(env.app)
    browser.client.headers["X-Forwarded-For"] = address
    return browser


# --- defect 3: pending logins per client address, per browser, in all -------------------
async def test_pending_logins_per_client_address_are_bounded_with_retry_after() -> None:
    async with edge_env(BFF_LOGIN_PENDING_MAX="3", BFF_TRUSTED_PROXIES="127.0.0.1/32") as env:
        attacker, other = from_address(env, "203.0.113.7"), from_address(env, "198.51.100.1")
        for _ in range(3):
            # A fresh browser each time (no binding cookie): the per-browser bound is moot.
            attacker.cookies.clear()
            assert (await attacker.get("/bff/login")).status_code == 302
        attacker.cookies.clear()
        r = await attacker.get("/bff/login")
        assert r.status_code == 429, r.text
        assert r.json()["error"] == "too_many_logins"
        assert 1 <= int(r.headers["retry-after"]) <= 600
        assert "set-cookie" not in r.headers
        # Another address is not affected, and nothing was stored for the refused one.
        assert len(env.store._logins) == 3
        assert (await other.get("/bff/login")).status_code == 302
        await attacker.aclose()
        await other.aclose()


async def test_a_finished_login_frees_its_slot() -> None:
    async with edge_env(BFF_LOGIN_PENDING_MAX="1") as env:
        assert (await env.login()).status_code == 302
        assert (await env.login()).status_code == 302  # the first one is no longer pending
        env.browser.cookies.clear()
        await env.start_login()
        env.browser.cookies.clear()
        assert (await env.browser.get("/bff/login")).status_code == 429


async def test_ipv6_clients_are_bounded_per_64_prefix() -> None:
    async with edge_env(BFF_LOGIN_PENDING_MAX="2", BFF_TRUSTED_PROXIES="127.0.0.1/32") as env:
        codes = []
        for host in ("2001:db8:1:2::1", "2001:db8:1:2::2", "2001:db8:1:2:ffff::3"):
            browser = from_address(env, host)
            codes.append((await browser.get("/bff/login")).status_code)
            await browser.aclose()
        assert codes == [302, 302, 429]


async def test_ipv6_clients_are_bounded_per_56_and_48_prefix_too() -> None:
    """Security review finding 4: one holder of a /48 (65,536 /64s) filled the total bound
    alone. Nested caps: a /56 holds at most 4x, a /48 at most 16x BFF_LOGIN_PENDING_MAX."""
    async with edge_env(BFF_LOGIN_PENDING_MAX="1", BFF_TRUSTED_PROXIES="127.0.0.1/32") as env:

        async def login_from(host: str) -> int:
            browser = from_address(env, host)
            try:
                return (await browser.get("/bff/login")).status_code
            finally:
                await browser.aclose()

        # 2001:db8:0:XXYY::/64: XX picks the /56, YY the /64 inside it
        first_56 = [await login_from(f"2001:db8:0:{i:x}::1") for i in range(5)]
        assert first_56 == [302] * 4 + [429]
        rest_of_48 = [
            await login_from(f"2001:db8:0:{n << 8 | i:x}::1") for n in (1, 2, 3) for i in range(4)
        ]
        assert rest_of_48 == [302] * 12  # the /48 now holds 16: a fifth /56 is refused
        assert await login_from("2001:db8:0:400::1") == 429
        assert await login_from("2001:db8:1::1") == 302  # another /48 is not affected


class FailingStore(MemoryStore):
    """A store whose pending-login calls on one group fail (a Redis blip mid-way)."""

    def __init__(self, fail_on: str, *, clock: Any) -> None:
        super().__init__(clock=clock)
        self.fail_on = fail_on

    async def add_pending(self, group: str, member: str, **kw: Any) -> int:
        if group == self.fail_on:
            raise StoreUnavailable("down")
        return await super().add_pending(group, member, **kw)

    async def remove_pending(self, group: str, member: str) -> bool:
        if group == self.fail_on:
            raise StoreUnavailable("down")
        return await super().remove_pending(group, member)


async def test_a_store_failure_between_pending_steps_leaks_no_slot() -> None:
    """Security review finding 7: a failure after the first of the pending adds left the
    first counted for 10 minutes; a failed removal skipped the next one."""
    store = FailingStore("login:all", clock=Clock())
    pending = PendingLogins(StoreOps(store), per_client=1, total=10, ttl=600)
    group = client_group("203.0.113.9")
    with pytest.raises(StoreUnavailable):
        await pending.admit(group, "s1")
    store.fail_on = ""
    assert await store.add_pending(group, "s2", limit=1, ttl=600) == 0  # s1 was undone
    # a removal that fails does not stop the next: the total's slot is freed
    store.fail_on = ""
    await store.remove_pending(group, "s2")
    await pending.admit(group, "s3")
    store.fail_on = group
    await pending.release(group, "s3", quietly=True)
    with pytest.raises(StoreUnavailable):
        await pending.release(group, "s3")  # not quietly: the failure is still told
    store.fail_on = ""
    assert await store.add_pending("login:all", "s4", limit=1, ttl=600) == 0


async def test_global_ceiling_protects_the_store() -> None:
    async with edge_env(BFF_LOGIN_PENDING_TOTAL="4", BFF_TRUSTED_PROXIES="127.0.0.1/32") as env:
        codes = []
        for i in range(6):
            browser = from_address(env, f"192.0.2.{i + 1}")
            codes.append((await browser.get("/bff/login")).status_code)
            await browser.aclose()
        assert codes == [302, 302, 302, 302, 429, 429]
        assert len(env.store._logins) == 4


async def test_one_browser_holds_a_few_pending_logins_and_the_oldest_are_evicted() -> None:
    async with edge_env() as env:
        starts = [await env.start_login() for _ in range(LOGIN_PENDING_PER_BROWSER + 2)]
        outcomes = []
        for params in starts:
            env.idp.next_nonce = params["nonce"]
            r = await env.browser.get(
                "/bff/callback", params={"code": "c", "state": params["state"], "iss": ISSUER}
            )
            outcomes.append(r.status_code)
        assert outcomes == [400, 400] + [302] * LOGIN_PENDING_PER_BROWSER
        # One binding cookie for all of them (oauth2-proxy #2163: no cookie pile-up).
        names = {h.split("=")[0] for h in env.browser.set_cookie_headers if "-login=" in h}
        assert names == {"bff-session-login"}


@pytest.mark.parametrize(("length", "status"), [(512, 302), (513, 400), (2048, 400)])
async def test_return_url_is_at_most_512_characters(length: int, status: int) -> None:
    async with edge_env() as env:
        return_url = "/" + "a" * (length - 1)
        r = await env.browser.get("/bff/login", params={"returnUrl": return_url})
        assert r.status_code == status, r.text
        if status == 400:
            assert r.json()["error"] == "invalid_return_url"
            assert env.store._logins == {}


@pytest.fixture
async def redis_prefix(redis_url: str) -> AsyncIterator[tuple[str, Any]]:
    prefix = f"bfftest-{uuid.uuid4().hex[:12]}"
    raw = redis.asyncio.Redis.from_url(redis_url)
    yield prefix, raw
    keys = [k async for k in raw.scan_iter(match=f"{prefix}:*")]
    if keys:
        await raw.delete(*keys)
    await raw.aclose()


@pytest.mark.redis
async def test_login_flood_cannot_grow_redis_past_the_bound(
    redis_url: str, redis_prefix: tuple[str, Any]
) -> None:
    """The defect as reported: 200 logins with a long returnUrl, one address, on Redis."""
    prefix, raw = redis_prefix
    store = RedisStore.from_url(redis_url, prefix=prefix)
    async with contextlib.AsyncExitStack() as stack:
        stack.push_async_callback(store.aclose)
        env = await stack.enter_async_context(edge_env(store=store))
        codes = []
        for _ in range(200):
            env.browser.cookies.clear()
            r = await env.browser.get("/bff/login", params={"returnUrl": "/" + "x" * 511})
            codes.append(r.status_code)
        assert codes.count(302) == 100 and codes.count(429) == 100
        logins = [k async for k in raw.scan_iter(match=f"{prefix}:login:*")]
        assert len(logins) == 100
        # What one pending login costs the store, all keys of it included.
        total = 0
        async for key in raw.scan_iter(match=f"{prefix}:*"):
            total += await raw.memory_usage(key) or 0
        assert total < 100 * 2048, total


# --- defect 4: header size and header-read time at the listener (real bff serve) -------
def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@contextlib.contextmanager
def _bff_serve(**env: str) -> Iterator[tuple[Any, int]]:
    proc, port = serve(
        {
            "BFF_ISSUER": "http://127.0.0.1:9",  # never reached by these tests
            "BFF_CLIENT_ID": "c",
            "BFF_CLIENT_SECRET": "s",
            "BFF_SECRET_KEY": SECRET_KEY,
            "BFF_HEADER_READ_TIMEOUT": "2",
            "BFF_BODY_READ_TIMEOUT": "2",
            **env,
        }
    )
    try:
        yield proc, port
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def served() -> Iterator[tuple[Any, int]]:
    with _bff_serve() as served:
        yield served


def _exchange(port: int, head: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(head)
        return s.recv(4096)


def test_a_huge_header_is_refused_and_not_kept_in_memory(served: tuple[Any, int]) -> None:
    proc, port = served
    assert _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").startswith(b"HTTP/1.1 200")
    before = _rss_kib(proc.pid)
    chunk = b"a" * 65536
    sent = 0
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: ")
        try:
            while sent < 16 * 1024 * 1024:  # 16 MiB of one header value
                s.sendall(chunk)
                sent += len(chunk)
            s.sendall(b"\r\n\r\n")
            answer = s.recv(4096)
        except OSError:
            pass  # refused mid-way: the server closed (a reset) before taking it all
    assert sent < 16 * 1024 * 1024 or answer.startswith(b"HTTP/1.1 431"), (sent, answer[:80])
    grown = _rss_kib(proc.pid) - before
    assert grown < 4096, f"the worker grew by {grown} KiB"
    # The server is fine afterwards, and a normal-sized header still passes.
    ok = _exchange(port, b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Ok: " + b"b" * 8000 + b"\r\n\r\n")
    assert ok.startswith(b"HTTP/1.1 200")


def test_pipelined_requests_under_the_bound_pass_even_beyond_it_together(
    served: tuple[Any, int],
) -> None:
    """The bound is per request: three 15 KB requests in one write (45 KB) all pass."""
    _, port = served
    one = b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Pad: " + b"p" * 15000 + b"\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        s.sendall(one * 3)
        answers = b""
        while answers.count(b"HTTP/1.1 ") < 3:
            chunk = s.recv(65536)
            if not chunk:
                break
            answers += chunk
    assert answers.count(b"HTTP/1.1 200") == 3, answers[:200]


def test_headers_trickled_slowly_are_cut_off_within_the_bound(served: tuple[Any, int]) -> None:
    _, port = served
    start = time.monotonic()
    closed_after = None
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        for i in range(40):  # would take 20 s to finish
            try:
                s.sendall(b"X-Slow-%d: y\r\n" % i)
                time.sleep(0.5)
            except OSError:
                closed_after = time.monotonic() - start
                break
        else:
            s.settimeout(5)
            answer = s.recv(4096)
            assert answer.startswith(b"HTTP/1.1 408"), answer[:80]
            closed_after = time.monotonic() - start
    assert closed_after is not None and closed_after < 12, closed_after


def test_a_silent_connection_is_closed_too(served: tuple[Any, int]) -> None:
    _, port = served
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        start = time.monotonic()
        assert s.recv(4096) == b""  # closed without a word: nothing was asked
        assert time.monotonic() - start < 12


def test_the_keep_alive_and_header_clocks_end_a_connection_on_time(
    served: tuple[Any, int],
) -> None:
    """One lazy timer bounds both (bff.web.listener): a request on a kept-alive
    connection moves the idle deadline, and a request that starts after an idle while
    gets the whole header bound from its first byte, never the idle clock's rest."""
    _, port = served
    get = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(get)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(3)  # idle, under uvicorn's 5 s keep-alive
        s.sendall(get)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        assert 4 < _closed_within(s, 10) < 7  # 5 s after the second answer
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(get)
        assert s.recv(4096).startswith(b"HTTP/1.1 200")
        time.sleep(1)
        s.sendall(b"GET /healthz HTTP/1.1\r\n")  # never finished
        start = time.monotonic()
        assert s.recv(4096).startswith(b"HTTP/1.1 408")
        assert 1.5 < time.monotonic() - start < 3.5  # BFF_HEADER_READ_TIMEOUT=2


def _closed_within(s: socket.socket, seconds: float) -> float:
    """Reads until the server closes; how long that took (AssertionError past `seconds`)."""
    start = time.monotonic()
    s.settimeout(seconds)
    try:
        while s.recv(4096):
            pass
    except TimeoutError:
        raise AssertionError(f"still open after {seconds} s") from None
    except OSError:
        pass  # a reset is a close too
    return time.monotonic() - start


def test_a_stalled_request_body_is_cut_off(served: tuple[Any, int]) -> None:
    """Security review finding 2: only the header phase was timed; a body that stops
    coming held its connection (and a file descriptor) for good."""
    _, port = served
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(
            b"POST /bff/backchannel-logout HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: 10000\r\n\r\nlogout_token="
        )
        assert _closed_within(s, 12) >= 1  # BFF_BODY_READ_TIMEOUT=2, with a generous margin


def test_a_body_trickled_after_the_answer_is_cut_off_once_it_stalls(
    served: tuple[Any, int],
) -> None:
    """The answer (405) went out before the body: bytes that keep trickling in reset the
    idle clock, a pause longer than BFF_BODY_READ_TIMEOUT closes the connection."""
    _, port = served
    with socket.create_connection(("127.0.0.1", port), timeout=15) as s:
        s.sendall(b"POST /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\nx")
        for _ in range(8):  # 4 s of trickle: more than the 2 s bound, never idle that long
            time.sleep(0.5)
            s.sendall(b"x")
        assert _closed_within(s, 12) >= 1
        # (uvicorn's own keep-alive timeout is reset by every byte: it never ends a trickle)


def test_a_header_bomb_pipelined_behind_a_body_is_refused() -> None:
    """Security review finding 3: bytes read in the body phase went to the parser
    uncounted, so a next request's headers in the same read escaped the header bound."""
    with (
        _bff_serve(BFF_MAX_HEADER_BYTES="4096") as (_, port),
        socket.create_connection(("127.0.0.1", port), timeout=15) as s,
    ):
        s.sendall(
            b"POST /bff/backchannel-logout HTTP/1.1\r\nHost: x\r\n"
            b"Content-Type: text/plain\r\nContent-Length: 5\r\n\r\n"
        )
        time.sleep(0.3)  # the headers are in: the next read is the body phase's
        bomb = b"X-Pad: " + b"a" * 40_000 + b"\r\n"  # 10x the bound, within one read
        s.sendall(b"hello" + b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + bomb + b"\r\n")
        answers = b""
        with contextlib.suppress(OSError):
            while chunk := s.recv(65536):
                answers += chunk
    assert answers.startswith(b"HTTP/1.1 400"), answers[:200]  # not a logout token
    # the bomb refused: a 431, or only the close when the reset overtook it (unread bytes)
    assert answers.count(b"HTTP/1.1 ") in (1, 2) and b"HTTP/1.1 200" not in answers, answers
