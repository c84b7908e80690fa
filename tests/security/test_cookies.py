"""The session cookie under attack, through real sockets (THREATS.md invariants 5 and 6):
fixation, tossing from a sibling subdomain, duplicate and look-alike names, tampered
signatures; and the signature is verified before the store is ever asked."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from bff.session.cookies import CookieSigner
from bff.session.crypto import KeyRing
from bff.store.memory import MemoryStore
from tests.fake_idp import SECRET_KEY
from tests.integration.upstream_server import UpstreamServer
from tests.security.conftest import Bff, CountingStore, raw_exchange, running_bff, status_of

pytestmark = pytest.mark.anyio


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    """Module scope: one bff (a uvicorn start and stop) serves this whole module."""
    return "asyncio"


NAME = "bff-session"  # the cookie name on http (SPEC: `__Host-bff-session` on https)


@pytest.fixture(autouse=True)
def _nothing_received_yet(upstream: UpstreamServer) -> None:
    upstream.received.clear()


@pytest.fixture(scope="module")
async def bff(upstream: UpstreamServer) -> AsyncIterator[Bff]:
    store = CountingStore(MemoryStore())
    async with running_bff([{"prefix": "/api", "upstream": upstream.url}], store=store) as b:  # type: ignore[arg-type]
        yield b


def calls(bff: Bff) -> list[str]:
    assert isinstance(bff.store, CountingStore)
    return bff.store.calls


async def user_of(bff: Bff, cookie_header: bytes) -> int:
    """Status of GET /bff/user with exactly this Cookie header (raw bytes, no client)."""
    answer = await raw_exchange(
        bff.port,
        b"GET /bff/user HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\nConnection: close\r\n"
        b"Cookie: " + cookie_header + b"\r\n\r\n",
    )
    return status_of(answer)


async def test_session_fixation_a_planted_cookie_never_becomes_the_victims_session(
    bff: Bff,
) -> None:
    """Invariant 5 (a brand-new session id after login; OWASP session fixation): the
    attacker's own valid session cookie, tossed into the victim's browser, is dropped
    by the victim's login and never answers as the victim."""
    attacker = bff.browser()
    planted = await bff.login(attacker, sub="mallory")
    victim = bff.browser()
    victim.cookies[NAME] = planted
    fresh = await bff.login(victim, sub="alice")
    assert fresh != planted
    assert (await victim.get("/bff/user", csrf=True)).json()["sub"] == "alice"
    # the planted session ended with the victim's login: the attacker holds nothing
    assert (await attacker.get("/bff/user", csrf=True)).status_code == 401


async def test_a_self_chosen_session_id_is_never_adopted(bff: Bff) -> None:
    victim = bff.browser()
    victim.cookies[NAME] = "A" * 43 + ".9999999999.forged"
    fresh = await bff.login(victim)
    assert not fresh.startswith("A" * 43)
    assert (await victim.get("/bff/user", csrf=True)).status_code == 200


async def test_cookie_tossing_duplicate_names_yield_no_session(
    bff: Bff, upstream: UpstreamServer
) -> None:
    """Invariant 6: a sibling subdomain's `bff-session` (more specific Path: sent first)
    next to the real one is ambiguous: no session, nothing upstream. Also split over two
    Cookie headers, and a quoted twin."""
    real = await bff.login(bff.browser(), sub="alice")
    tossed = await bff.login(bff.browser(), sub="mallory")
    assert await user_of(bff, f"{NAME}={real}".encode()) == 200
    for header in (
        f"{NAME}={tossed}; {NAME}={real}",
        f"{NAME}={real}; {NAME}={tossed}",
        f"{NAME}={real}; {NAME}={real}",
        f'{NAME}="{tossed}"; {NAME}={real}',
        f"{NAME} ={tossed}; {NAME}={real}",
    ):
        assert await user_of(bff, header.encode()) == 401, header
    two_headers = (
        b"GET /api/x HTTP/1.1\r\nHost: localhost\r\nX-CSRF: 1\r\nConnection: close\r\n"
        + f"Cookie: {NAME}={tossed}\r\nCookie: {NAME}={real}\r\n\r\n".encode()
    )
    assert status_of(await raw_exchange(bff.port, two_headers)) == 401
    assert upstream.received == []


@pytest.mark.parametrize(
    "lookalike",
    ["\u00a0", "\u2002", "\u3000", "\u200b", "\ufeff", "\u2060", "\u1680", "\u0085"],
    ids=lambda c: f"U+{ord(c):04X}",
)
async def test_unicode_whitespace_lookalike_names_yield_no_session(
    bff: Bff, lookalike: str
) -> None:
    """Invariant 6: a name that equals ours only after a parser strips Unicode
    whitespace (a differential between bff and a framework behind it) is ambiguous."""
    real = await bff.login(bff.browser())
    for header in (
        f"{lookalike}{NAME}=forged; {NAME}={real}",
        f"{NAME}{lookalike}=forged; {NAME}={real}",
        f"{NAME}={real}; {lookalike}{NAME}{lookalike}=forged",
    ):
        assert await user_of(bff, header.encode("utf-8")) == 401, repr(header)


async def test_tampered_signatures_are_no_session_and_never_reach_the_store(
    bff: Bff, upstream: UpstreamServer
) -> None:
    """Invariant 6 (signature checked before I/O): every single-character change of a
    real cookie, a truncation, a signature by another key, and the login-binding
    cookie's value (another salt) are no session, and none costs a store call."""
    browser = bff.browser()
    real = await bff.login(browser)
    binding = browser.cookies[f"{NAME}-login"]
    foreign = CookieSigner(KeyRing(["another-secret-key-0123456789-abcdefgh"]).signing_keys)
    session_id, _, rest = real.partition(".")
    expiry = rest.split(".")[0]
    forged = [
        real[:i] + ("A" if real[i] != "A" else "B") + real[i + 1 :] for i in range(0, len(real), 3)
    ]
    forged += [
        real[:-1],
        real + "A",
        real.rsplit(".", 1)[0],
        foreign.sign_session(session_id, int(expiry)),
        binding,
        CookieSigner(KeyRing([SECRET_KEY]).signing_keys).sign_binding(f"{session_id}.{expiry}"),
        real.replace(expiry, str(int(expiry) + 86400)),
        "",
        "." * 40,
        "x" * 5000,
    ]
    calls(bff).clear()
    for value in forged:
        status = await user_of(bff, f"{NAME}={value}".encode())
        assert status == 401, value
        r = await browser.get("/api/x", headers={"Cookie": f"{NAME}={value}", "X-CSRF": "1"})
        assert r.status_code == 401
    assert calls(bff) == []
    assert upstream.received == []
    # the real cookie still works (and does cost its store call)
    assert await user_of(bff, f"{NAME}={real}".encode()) == 200
    assert calls(bff) == ["load_session"]


async def test_a_cookie_replayed_after_logout_is_no_session(bff: Bff) -> None:
    """Invariant 9: logout deletes the server-side session; the old cookie is worthless."""
    browser = bff.browser()
    cookie = await bff.login(browser)
    user = (await browser.get("/bff/user", csrf=True)).json()
    assert (await browser.post("/bff/logout", csrf=True)).status_code == 302
    assert await user_of(bff, f"{NAME}={cookie}".encode()) == 401
    logout_url = user["bff:logout_url"]
    r = await browser.get(logout_url, headers={"Cookie": f"{NAME}={cookie}"})
    assert r.status_code == 302  # a logout without a session is never a 5xx


async def test_session_and_login_cookies_are_host_only_httponly_and_bounded(bff: Bff) -> None:
    """Invariant 4/6: no Domain (tossing needs one), HttpOnly, Path=/, SameSite set,
    the binding cookie Lax and short-lived; several logins leave one binding cookie."""
    browser = bff.browser()
    for _ in range(5):
        await bff.start_login(browser)
    await bff.login(browser)
    names = {h.split("=", 1)[0] for h in browser.set_cookie_headers}
    assert names == {NAME, f"{NAME}-login"}
    for header in browser.set_cookie_headers:
        attrs = [a.strip().lower() for a in header.split(";")[1:]]
        assert "httponly" in attrs and "path=/" in attrs
        assert not any(a.startswith("domain") for a in attrs)
        if header.startswith(f"{NAME}-login="):
            assert "samesite=lax" in attrs and "max-age=600" in attrs
        else:
            assert "samesite=strict" in attrs


async def test_on_https_both_cookies_are_host_prefixed_and_secure() -> None:
    """Invariant 6 (why `__Host-`): a sibling subdomain cannot set a `__Host-` cookie
    (it needs Secure, Path=/ and no Domain), so tossing needs a name bff ignores: a
    case variant of the prefix or the bare name is neither read nor ambiguous."""
    async with running_bff(BFF_PUBLIC_URL="https://app.example") as https:
        browser = https.browser()
        real = await https.login(browser)
        for header in browser.set_cookie_headers:
            name = header.split("=", 1)[0]
            assert name in ("__Host-bff-session", "__Host-bff-session-login"), header
            attrs = [a.strip().lower() for a in header.split(";")[1:]]
            assert "secure" in attrs and "path=/" in attrs
            assert not any(a.startswith("domain") for a in attrs)
        for tossed in ("__host-bff-session=forged", "bff-session=forged", "__Secure-bff-session=x"):
            r = await browser.get(
                "/bff/user",
                headers={"Cookie": f"{tossed}; __Host-bff-session={real}", "X-CSRF": "1"},
            )
            assert r.status_code == 200 and r.json()["sub"] == "alice", tossed
