"""Live connections and per-route tokens in a real browser (issue 16, "Tests"), against
panva's oidc-provider with five resource servers, client credentials and token exchange,
JWT-verifying upstreams per route and a WebSocket echo upstream that verifies the bearer
(the services: live_stack.py).

- A WebSocket from another origin is refused and the upstream sees no handshake: from
  another site (127.0.0.1: no cookie, no Origin match) and from a same-site page on
  another port (the cookie goes along: only the Origin check stops it).
- A same-origin page's WebSocket echoes, upstream verified the user's token.
- Logout in one tab (instance A) closes the socket another tab holds through instance B
  with 4401, and that tab's `/bff/events` says `session_ended`, both within 2 s.
- Each route's upstream sees a token whose `aud` is its own resource only; a `client`
  route's upstream a client-credentials token; an `exchange` route's an exchanged token.
- A burst of calls on a route with its own token: one grant for that route.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.e2e.harness import CLIENT_ID, E2E, RESOURCE, json_or_text
from tests.e2e.live_stack import (
    INVENTORY,
    ORDERS,
    PARTNER,
    REPORTS,
    SCOPES,
    LiveStack,
    start_live_stack,
)
from tests.e2e.test_browser_flows import login, wait_status

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page

pytestmark = pytest.mark.e2e

OPEN_SOCKET = """async (url) => {
  const ws = new WebSocket(url);
  window.__ws = {events: [], closed: null};
  ws.onmessage = (m) => window.__ws.events.push(m.data);
  ws.onclose = (e) => { window.__ws.closed = {code: e.code, reason: e.reason, at: Date.now()}; };
  window.__socket = ws;
  return await new Promise((resolve) => {
    ws.onopen = () => resolve('open');
    ws.onerror = () => resolve('error');
  });
}"""
ECHO = """async (text) => {
  const before = window.__ws.events.length;
  window.__socket.send(text);
  for (let i = 0; i < 100 && window.__ws.events.length === before; i++) {
    await new Promise((r) => setTimeout(r, 50));
  }
  return window.__ws.events.slice(before);
}"""
LISTEN = """() => {
  window.__ended = null;
  const events = new EventSource('/bff/events');
  events.addEventListener('session_ended', (e) => {
    window.__ended = {data: e.data, at: Date.now()};
    events.close();
  });
  return new Promise((resolve) => { events.onopen = () => resolve(true); });
}"""
FETCH = """async ([path, n]) => Promise.all(Array.from({length: n}, (_, i) =>
  fetch(path + '?n=' + i, {headers: {'X-CSRF': '1'}, cache: 'no-store'})
    .then(async (r) => ({status: r.status, body: await r.text()}))))"""


@pytest.fixture(scope="module")
def live_stack(tmp_path_factory: pytest.TempPathFactory, redis_url: str) -> Iterator[LiveStack]:
    with start_live_stack(tmp_path_factory.mktemp("e2e-live"), redis_url) as running:
        yield running


@pytest.fixture
def e2e(
    live_stack: LiveStack, browser: Browser, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[E2E]:
    """conftest's harness over this module's services (the failure hook saves their logs)."""
    dead = [s.name for s in live_stack.services if not s.alive()]
    if dead:
        pytest.fail(f"e2e services died: {dead}")
    harness = E2E(live_stack, browser, tmp_path, request.node.name)  # type: ignore[arg-type]
    try:
        yield harness
    finally:
        harness.close()


def ws_url(http_url: str, path: str = "/live/room") -> str:
    return "ws" + http_url.removeprefix("http") + path


def logged_in_page(e2e: E2E, user: str) -> Page:
    page = e2e.new_context().new_page()
    login(page, e2e, e2e.bff_a, user)
    return page


def fetch_all(page: Page, path: str, n: int = 1) -> list[tuple[int, Any]]:
    results = page.evaluate(FETCH, [path, n])
    return [(r["status"], json_or_text(r["body"])) for r in results]


def refused_in_browser(page: Page, url: str) -> dict[str, Any]:
    """Open a WebSocket from `page`; it must fail (Chromium: error, then close 1006)."""
    assert page.evaluate(OPEN_SOCKET, url) == "error"
    page.wait_for_function("() => window.__ws.closed !== null")
    closed: dict[str, Any] = page.evaluate("() => window.__ws.closed")
    assert closed["code"] == 1006, closed
    return closed


# ---- WebSocket: Origin -------------------------------------------------------------------


def test_websocket_from_another_origin_is_refused_and_never_reaches_the_upstream(
    e2e: E2E,
) -> None:
    user = e2e.new_user()
    page = logged_in_page(e2e, user)
    attacker = e2e.attacker
    port = attacker.server.server_address[1]
    target = ws_url(e2e.bff_a.url)
    html = f"<!doctype html><title>other origin</title><p>opens {target}</p>"
    attacker.publish("/ws.html", html)
    before = len(e2e.ws.connections())
    offset = e2e.bff_a.service.log_size()

    # Another site (127.0.0.1 is not localhost): Chromium sends no SameSite cookie either.
    other_site = page.context.new_page()
    other_site.goto(f"http://127.0.0.1:{port}/ws.html")
    refused_in_browser(other_site, target)
    # The same site on another port: the session cookie goes along (cookies ignore
    # ports), so only the Origin allow-list stands between this page and the socket.
    same_site = page.context.new_page()
    same_site.goto(f"http://localhost:{port}/ws.html")
    refused_in_browser(same_site, target)

    log = e2e.bff_a.service.log_since(offset)
    assert log.count("WEBSOCKET /live/room: 403 origin reason=origin_foreign") == 2, log
    assert e2e.ws.connections()[before:] == []  # not one handshake reached the upstream

    # The page of the bff's own origin, same cookie: accepted (the refusals were the Origin).
    assert page.evaluate(OPEN_SOCKET, target) == "open"
    assert page.evaluate(ECHO, "hello") == ["hello"]


# ---- WebSocket: same origin ------------------------------------------------------------------


def test_same_origin_websocket_echoes_with_the_users_verified_token(e2e: E2E) -> None:
    user = e2e.new_user()
    page = logged_in_page(e2e, user)
    before = len(e2e.ws.connections())
    assert page.evaluate(OPEN_SOCKET, ws_url(e2e.bff_a.url)) == "open"
    assert page.evaluate(ECHO, "ping 1") == ["ping 1"]
    assert page.evaluate(ECHO, "x" * 70_000) == ["x" * 70_000]  # several frames' worth

    connections = e2e.ws.connections()[before:]
    assert len(connections) == 1, connections
    seen = connections[0]
    assert seen["verified"], seen.get("error")
    assert seen["auth_scheme"] == "Bearer"
    claims = seen["claims"]
    assert claims["sub"] == user and claims["aud"] == RESOURCE, claims
    assert claims["iss"] == e2e.provider.issuer and claims["client_id"] == CLIENT_ID
    assert "cookie" not in seen["headers"], seen["headers"]  # the bff's cookie stays home
    assert seen["messages"] == 2

    page.evaluate("() => window.__socket.close(4000, 'done')")
    page.wait_for_function("() => window.__ws.closed !== null")
    deadline = time.monotonic() + 5
    while e2e.ws.connections()[before]["close_code"] is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert e2e.ws.connections()[before]["close_code"] == 4000  # close codes pass through


# ---- logout closes the socket, the other tab learns -------------------------------------------


def test_logout_in_one_tab_closes_the_socket_and_tells_the_other_tab_within_2s(
    e2e: E2E,
) -> None:
    user = e2e.new_user()
    tab_a = logged_in_page(e2e, user)  # on instance A
    tab_b = tab_a.context.new_page()  # instance B: same cookie jar (localhost), its own origin
    tab_b.goto(e2e.bff_b.url + "/")
    wait_status(tab_b, "^Logged in as ")
    assert tab_b.evaluate(OPEN_SOCKET, ws_url(e2e.bff_b.url)) == "open"
    assert tab_b.evaluate(ECHO, "still here") == ["still here"]
    assert tab_b.evaluate(LISTEN) is True

    tab_a.bring_to_front()
    started = tab_a.evaluate("() => Date.now()")
    tab_a.click("#logout")  # the demo SPA: GET /bff/logout on A, then the provider
    tab_b.wait_for_function(
        "() => window.__ws.closed !== null && window.__ended !== null", timeout=10_000
    )
    closed = tab_b.evaluate("() => window.__ws.closed")
    ended = tab_b.evaluate("() => window.__ended")
    assert (closed["code"], closed["reason"]) == (4401, "logout"), closed
    assert ended["data"] == "logout", ended
    assert closed["at"] - started < 2000, (closed, started)
    assert ended["at"] - started < 2000, (ended, started)
    # The demo SPA in that tab shows it (its own EventSource).
    banner = tab_b.locator("#session-banner")
    banner.wait_for()
    assert "ended (logout)" in banner.inner_text()


# ---- per-route tokens ----------------------------------------------------------------------


def only_call(e2e: E2E, audience: str, before: int) -> dict[str, Any]:
    calls = e2e.apis[audience].calls(before)
    assert len(calls) == 1, calls
    call = calls[0]
    assert call["verified"], call.get("error")  # signature, typ, iss, exp and aud checked
    assert call["claims"]["aud"] == audience, call["claims"]  # one audience: a string
    return call


def test_each_route_upstream_sees_only_its_own_audience(e2e: E2E) -> None:
    user = e2e.new_user()
    page = logged_in_page(e2e, user)
    before = {aud: api.count() for aud, api in e2e.apis.items()}
    main_before = e2e.api.count()
    for path in ("/api/whoami", "/orders/whoami", "/inventory/whoami"):
        [(status, body)] = fetch_all(page, path)
        assert status == 200 and body["sub"] == user, (path, status, body)

    main = e2e.api.calls(main_before)
    assert [c["claims"]["aud"] for c in main] == [RESOURCE], main
    orders = only_call(e2e, ORDERS, before[ORDERS])
    inventory = only_call(e2e, INVENTORY, before[INVENTORY])
    assert orders["sub"] == inventory["sub"] == user
    assert orders["claims"]["scope"] == SCOPES[ORDERS]
    assert inventory["claims"]["scope"] == SCOPES[INVENTORY]
    tokens = {main[0]["token_sha256"], orders["token_sha256"], inventory["token_sha256"]}
    assert len(tokens) == 3  # three tokens, none reused across routes
    grants = e2e.grants(user)
    narrowed = [g for g in grants if g["grant_type"] == "refresh_token"]
    assert sorted(g["resource"] for g in narrowed) == sorted([ORDERS, INVENTORY]), grants
    assert {g["jti"] for g in narrowed} == {orders["jti"], inventory["jti"]}


def test_client_route_gets_a_client_credentials_token(e2e: E2E) -> None:
    user = e2e.new_user()
    page = logged_in_page(e2e, user)
    before = e2e.apis[REPORTS].count()
    [(status, body)] = fetch_all(page, "/reports/summary")
    assert status == 200, body
    call = only_call(e2e, REPORTS, before)
    claims = call["claims"]
    assert claims["sub"] == CLIENT_ID == claims["client_id"], claims  # the app, not the user
    assert claims["scope"] == SCOPES[REPORTS]
    issued = [g for g in e2e.grants(CLIENT_ID) if g["grant_type"] == "client_credentials"]
    assert call["jti"] in {g["jti"] for g in issued}, issued
    assert all(g["resource"] == REPORTS for g in issued), issued


def test_exchange_route_gets_an_exchanged_token(e2e: E2E) -> None:
    user = e2e.new_user()
    page = logged_in_page(e2e, user)
    before = e2e.apis[PARTNER].count()
    [(status, body)] = fetch_all(page, "/partner/orders")
    assert status == 200, body
    call = only_call(e2e, PARTNER, before)
    assert call["sub"] == user and call["claims"]["scope"] == SCOPES[PARTNER]
    exchanged = [g for g in e2e.grants(user) if g["grant_type"].endswith("token-exchange")]
    assert [(g["resource"], g["jti"]) for g in exchanged] == [(PARTNER, call["jti"])], exchanged


def test_a_burst_on_a_route_with_its_own_token_makes_one_grant(e2e: E2E) -> None:
    user = e2e.new_user()
    page = logged_in_page(e2e, user)
    second = page.context.new_page()
    second.goto(e2e.bff_b.url + "/")
    wait_status(second, "^Logged in as ")
    before = e2e.apis[INVENTORY].count()
    # Both tabs at once, through both instances: 2 x 15 calls find no inventory token.
    page.evaluate(f"() => {{ window.__r = ({FETCH})(['/inventory/burst', 15]); }}")
    second.evaluate(f"() => {{ window.__r = ({FETCH})(['/inventory/burst', 15]); }}")
    results = page.evaluate("() => window.__r") + second.evaluate("() => window.__r")
    assert [r["status"] for r in results] == [200] * 30, results
    calls = e2e.apis[INVENTORY].calls(before)
    assert len(calls) == 30 and all(c["verified"] for c in calls)
    grants = [g for g in e2e.grants(user) if g["resource"] == INVENTORY]
    assert len(grants) == 1, grants
    assert {c["jti"] for c in calls} == {grants[0]["jti"]}
