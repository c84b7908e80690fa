"""The whole product in a real browser against a real, OpenID Certified provider.

Scenarios (issue #5): (a) login, user, API call with a verified token; (b) no token in
the browser; (c) silent refresh; (d) 20 concurrent calls from two tabs, one refresh;
(e) logout ends everything; (f) back-channel logout; (g) two instances, one Redis;
(h) cross-site requests refused. Each test uses its own browser context and user.
"""

from __future__ import annotations

import re
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import pytest

from tests.e2e.harness import (
    API_SCOPE,
    CLIENT_ID,
    E2E,
    PASSWORD,
    RESOURCE,
    Bff,
    json_or_text,
    sign_in,
)

if TYPE_CHECKING:
    from playwright.sync_api import Page, Response

pytestmark = pytest.mark.e2e

JWT = re.compile(r"eyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}")

# A burst of same-origin calls as the SPA makes them, started at an agreed wall-clock
# time so that two tabs (even on two origins) fire together. Each URL differs and skips
# the HTTP cache: Chromium's cache lock otherwise sends identical concurrent GETs one
# after another (seen here: 6 x 100 ms took 620 ms), and the burst would not be one.
FIRE_AT = """([at, n]) => {
  window.__burst = null;
  setTimeout(() => {
    Promise.all(Array.from({length: n}, (_, i) =>
      fetch('/api/whoami?burst=' + i, {headers: {'X-CSRF': '1'}, cache: 'no-store'})
        .then(async (r) => ({status: r.status, body: await r.text()}))
        .catch((e) => ({status: 0, body: String(e)}))
    )).then((results) => { window.__burst = results; });
  }, Math.max(0, at - Date.now()));
}"""


# ---- SPA helpers ----------------------------------------------------------------------


def status_text(page: Page) -> str:
    return page.locator("#status").inner_text()


def wait_status(page: Page, pattern: str) -> None:
    from playwright.sync_api import expect

    expect(page.locator("#status")).to_have_text(re.compile(pattern))


def press(page: Page, button: str) -> tuple[int, Any]:
    """Click a demo SPA button that fetches, and read what it shows: (status, body)."""
    page.bring_to_front()  # a person clicks in the tab they look at
    page.evaluate("() => { document.getElementById('output').textContent = ''; }")
    page.click(f"#{button}")
    page.wait_for_function("() => document.getElementById('output').textContent !== ''", polling=50)
    text = page.locator("#output").text_content() or ""
    head, _, body = text.partition("\n")
    match = re.search(r"-> (\d+)$", head)
    assert match, f"unexpected SPA output {text!r}"
    return int(match.group(1)), json_or_text(body)


def whoami(page: Page) -> tuple[int, Any]:
    return press(page, "whoami")


def call_api(page: Page) -> tuple[int, Any]:
    status, body = press(page, "callapi")
    # A plain-text 404 comes from the static files: bff did not route /api at all.
    assert status != 404 or isinstance(body, dict), f"bff does not route /api: 404 {body!r}"
    return status, body


def login(page: Page, e2e: E2E, bff: Bff, user: str) -> None:
    """From the demo page through the provider's login (and consent) pages and back."""
    sign_in(page, bff.url, e2e.provider.issuer, user)


def api_calls(e2e: E2E, since: int, sub: str | None = None) -> list[dict[str, Any]]:
    calls = e2e.api.calls(since)
    return [c for c in calls if sub is None or c.get("sub") == sub]


def sleep_past(exp: float) -> None:
    """Until the access token with this `exp` has expired (the API allows no leeway)."""
    time.sleep(max(0.0, exp - time.time() + 0.3))


def fire_bursts(pages: list[Page], per_page: int) -> list[dict[str, Any]]:
    at = int(time.time() * 1000) + 400
    for page in pages:
        page.evaluate(FIRE_AT, [at, per_page])
    results: list[dict[str, Any]] = []
    for page in pages:
        page.wait_for_function("() => window.__burst !== null", timeout=30_000)
        results += page.evaluate("() => window.__burst")
    return results


# ---- (a) ----------------------------------------------------------------------------------


def test_a_login_user_and_api_call_with_verified_token(e2e: E2E) -> None:
    user = e2e.new_user()
    page = e2e.new_context().new_page()
    login(page, e2e, e2e.bff_a, user)

    status, body = whoami(page)
    assert status == 200, body
    assert body["sub"] == user and body["name"] == f"E2E {user}"
    assert body["bff:logout_url"].startswith("/bff/logout?sid=")

    before = e2e.api.count()
    status, body = call_api(page)
    assert status == 200, body
    assert body["sub"] == user
    calls = api_calls(e2e, before)
    assert len(calls) == 1, calls
    call = calls[0]
    assert call["verified"], call.get("error")
    claims = call["claims"]
    assert call["auth_scheme"] == "Bearer"
    assert claims["sub"] == user
    assert claims["iss"] == e2e.provider.issuer
    assert claims["aud"] == RESOURCE
    assert claims["client_id"] == CLIENT_ID
    assert API_SCOPE in claims["scope"].split()
    # The BFF's own cookie never travels upstream.
    assert e2e.bff_a.cookie_name not in (call["headers"].get("cookie") or ""), call["headers"]


# ---- (b) ----------------------------------------------------------------------------------


def test_b_session_cookie_httponly_and_no_token_in_the_browser(e2e: E2E) -> None:
    user = e2e.new_user()
    context = e2e.new_context()
    page = context.new_page()
    received: list[str] = []
    bodies: dict[str, bytes] = {}
    headers: dict[str, str] = {}
    unreadable: list[str] = []

    def keep(response: Response) -> None:
        # Read at once: a body is gone once its document has navigated away.
        key = f"{response.request.method} {response.url} #{len(received)}"
        received.append(key)
        # all_headers(), unlike .headers, includes Set-Cookie.
        headers[key] = "\n".join(f"{k}: {v}" for k, v in response.all_headers().items())
        if not 300 <= response.status < 400:
            try:
                bodies[key] = response.body()
            except Exception as exc:
                unreadable.append(f"{key}: {exc}")

    context.on("response", keep)

    login(page, e2e, e2e.bff_a, user)
    assert whoami(page)[0] == 200

    cookies = {c["name"]: c for c in context.cookies(e2e.bff_a.url)}
    session = cookies.get(e2e.bff_a.cookie_name)
    assert session is not None, cookies
    assert session["httpOnly"] and session["sameSite"] == "Strict", session
    assert session["domain"] == "localhost" and session["path"] == "/", session  # host-only
    for name, cookie in cookies.items():
        assert cookie["httpOnly"], f"cookie {name} is readable by scripts: {cookie}"

    before = e2e.api.count()
    status, api_body = call_api(page)
    assert status == 200, api_body
    seen = page.evaluate(
        """() => ({
          cookie: document.cookie,
          local: JSON.stringify({...localStorage}),
          session: JSON.stringify({...sessionStorage}),
          dom: document.documentElement.outerHTML,
        })"""
    )
    assert e2e.bff_a.cookie_name not in seen["cookie"], seen["cookie"]
    assert seen["local"] == "{}" and seen["session"] == "{}", seen

    # The exact secrets: every access token the API received, every refresh token issued.
    secrets = [c["token"] for c in api_calls(e2e, before, user)]
    secrets += e2e.provider.refresh_token_values(user)
    assert secrets, "expected at least the access token the API saw"
    places: dict[str, str] = {
        "document.cookie": seen["cookie"],
        "localStorage": seen["local"],
        "sessionStorage": seen["session"],
        "DOM": seen["dom"],
    }
    for key, body in bodies.items():
        places[f"body of {key}"] = body.decode(errors="replace")
    for key, text in headers.items():
        places[f"headers of {key}"] = text
    assert unreadable == [], "every response body must be searched"
    assert any("/bff/user" in k for k in bodies) and any("/api/whoami" in k for k in bodies), (
        sorted(bodies)
    )
    assert any("set-cookie: " + e2e.bff_a.cookie_name in h for h in headers.values()), headers
    for where, text in places.items():
        for secret in secrets:
            assert secret not in text, f"a token reached the browser: {where}"
        assert not JWT.search(text), f"a JWT reached the browser: {where}"


# ---- (c) ----------------------------------------------------------------------------------


def test_c_silent_refresh_after_expiry(e2e: E2E) -> None:
    user = e2e.new_user()
    page = e2e.new_context().new_page()
    login(page, e2e, e2e.bff_a, user)
    before = e2e.api.count()
    status, first = call_api(page)
    assert status == 200, first
    refreshes_before = e2e.provider.stats(user)["refresh_grants"]

    navigations: list[str] = []
    page.on("framenavigated", lambda frame: navigations.append(frame.url))
    page.evaluate("() => { window.__still_here = true; }")
    sleep_past(first["exp"])
    status, second = call_api(page)
    assert status == 200, second

    assert second["sub"] == user
    assert second["jti"] != first["jti"], "the API got the expired token again"
    assert second["exp"] > time.time()
    stats = e2e.provider.stats(user)
    assert stats["refresh_grants"] - refreshes_before == 1, stats
    assert stats["refresh_errors"] == [], stats
    calls = api_calls(e2e, before)
    assert [c["verified"] for c in calls] == [True, True], calls
    # The user noticed nothing: same document, no navigation, still logged in.
    assert page.evaluate("() => window.__still_here === true")
    assert navigations == []
    assert status_text(page) == f"Logged in as E2E {user}"


# ---- (d) ----------------------------------------------------------------------------------


def test_d_two_tabs_twenty_calls_after_expiry_one_refresh(e2e: E2E) -> None:
    user = e2e.new_user()
    context = e2e.new_context()
    tab1 = context.new_page()
    login(tab1, e2e, e2e.bff_a, user)
    tab2 = context.new_page()
    tab2.goto(e2e.bff_a.url + "/")
    wait_status(tab2, f"^Logged in as E2E {re.escape(user)}$")
    status, first = call_api(tab1)
    assert status == 200, first
    refreshes_before = e2e.provider.stats(user)["refresh_grants"]
    before = e2e.api.count()

    sleep_past(first["exp"])
    results = fire_bursts([tab1, tab2], per_page=10)

    assert [r["status"] for r in results] == [200] * 20, results
    jtis = {json_or_text(r["body"])["jti"] for r in results}
    assert len(jtis) == 1 and first["jti"] not in jtis, jtis
    stats = e2e.provider.stats(user)
    assert stats["refresh_grants"] - refreshes_before == 1, stats
    assert stats["refresh_errors"] == [], stats
    calls = api_calls(e2e, before)
    assert len(calls) == 20 and all(c["verified"] for c in calls), calls


# ---- (e) ----------------------------------------------------------------------------------


def test_e_logout_ends_bff_and_provider_sessions_and_revokes(e2e: E2E) -> None:
    user = e2e.new_user()
    context = e2e.new_context()
    page = context.new_page()
    login(page, e2e, e2e.bff_a, user)
    status, claims = whoami(page)
    assert status == 200, claims
    stats = e2e.provider.stats(user)
    assert stats["refresh_tokens"] and all(t["active"] for t in stats["refresh_tokens"]), stats

    page.click("#logout")
    # The BFF has answered (session deleted, refresh token revoked) and sent the browser
    # to the provider's end-session page, which asks the user to confirm.
    confirm = page.get_by_role("button", name="Yes, sign me out")
    confirm.wait_for()
    end_session = urlsplit(page.url)
    assert f"{end_session.scheme}://{end_session.netloc}" == e2e.provider.issuer
    query = parse_qs(end_session.query)
    assert query["post_logout_redirect_uri"] == [e2e.bff_a.url + "/"], query
    assert query["client_id"] == [CLIENT_ID] and "id_token_hint" in query, sorted(query)
    assert e2e.bff_a.cookie_name not in {c["name"] for c in context.cookies(e2e.bff_a.url)}
    stats = e2e.provider.stats(user)
    assert stats["revocations"] == 1, stats  # RFC 7009 call by the BFF, before the redirect
    assert not any(t["active"] for t in stats["refresh_tokens"]), stats

    confirm.click()
    page.wait_for_url(f"{e2e.bff_a.url}/")
    wait_status(page, "^Not logged in$")
    status, body = whoami(page)
    assert status == 401 and body["error"] == "not_authenticated", body
    stats = e2e.provider.stats(user)
    assert stats["end_sessions"] == 1, stats
    # The provider also notified the BFF (nothing left to end): it must answer 200.
    assert stats["backchannel_failed"] == [], stats

    # The provider's session is gone: logging in again asks for credentials again.
    page.click("#login")
    page.wait_for_url(f"{e2e.provider.issuer}/**")
    page.locator("input[name=login]").wait_for()
    page.fill("input[name=login]", user)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.get_by_role("button", name="Continue").click()  # the old grant was revoked too
    page.wait_for_url(f"{e2e.bff_a.url}/**")
    wait_status(page, f"^Logged in as E2E {re.escape(user)}$")
    status, again = whoami(page)
    assert status == 200 and again["bff:logout_url"] != claims["bff:logout_url"], again
    stats = e2e.provider.stats(user)
    assert [t["active"] for t in stats["refresh_tokens"]] == [False, True], stats


# ---- (f) ----------------------------------------------------------------------------------


def test_f_backchannel_logout_from_the_provider_ends_the_bff_session(e2e: E2E) -> None:
    user = e2e.new_user()
    context = e2e.new_context()
    app = context.new_page()
    login(app, e2e, e2e.bff_a, user)
    assert whoami(app)[0] == 200

    # The user signs out at the provider itself (say, from another app), in another tab.
    provider_tab = context.new_page()
    provider_tab.goto(f"{e2e.provider.issuer}/session/end")
    provider_tab.get_by_role("button", name="Yes, sign me out").click()
    provider_tab.get_by_text("Sign-out Success").wait_for()
    stats = e2e.provider.stats(user)
    assert stats["backchannel_sent"] == 1 and stats["backchannel_failed"] == [], stats

    # The page learns at once (GET /bff/events: session_ended) and shows it...
    wait_status(app, "^Not logged in$")
    assert "backchannel_logout" in (app.locator("#session-banner").text_content() or "")
    # ...and a call the page makes anyway is refused before the upstream.
    before = e2e.api.count()
    status, body = app.evaluate(
        """async () => {
            const r = await fetch("/api/whoami", {headers: {"X-CSRF": "1"}});
            return [r.status, await r.json()];
        }"""
    )
    assert status == 401 and body["error"] == "not_authenticated", body
    assert api_calls(e2e, before) == []
    status, body = whoami(app)
    assert status == 401 and body["error"] == "not_authenticated", body


# ---- (g) ----------------------------------------------------------------------------------


def test_g_two_instances_share_one_session_and_refresh_once(e2e: E2E) -> None:
    user = e2e.new_user()
    context = e2e.new_context()
    on_a = context.new_page()
    login(on_a, e2e, e2e.bff_a, user)
    # Cookies ignore ports: localhost:B gets the cookie set by localhost:A, as a second
    # replica behind the same host name would.
    on_b = context.new_page()
    on_b.goto(e2e.bff_b.url + "/")
    wait_status(on_b, f"^Logged in as E2E {re.escape(user)}$")
    assert whoami(on_b)[1]["sub"] == user
    status, first = call_api(on_b)
    assert status == 200, first
    refreshes_before = e2e.provider.stats(user)["refresh_grants"]
    before = e2e.api.count()

    sleep_past(first["exp"])
    results = fire_bursts([on_a, on_b], per_page=5)  # both instances need a refresh at once
    for page in (on_a, on_b, on_a, on_b):  # then alternate
        status, body = call_api(page)
        results.append({"status": status, "body": body})

    assert [r["status"] for r in results] == [200] * 14, results
    jtis = {
        json_or_text(r["body"])["jti"] if isinstance(r["body"], str) else r["body"]["jti"]
        for r in results
    }
    assert len(jtis) == 1 and first["jti"] not in jtis, jtis
    stats = e2e.provider.stats(user)
    assert stats["refresh_grants"] - refreshes_before == 1, stats
    assert stats["refresh_errors"] == [], stats
    assert all(c["verified"] and c["sub"] == user for c in api_calls(e2e, before))


# ---- (h) ----------------------------------------------------------------------------------

ATTACK_PAGE = """<!doctype html><meta charset=utf-8><title>cross-site</title>
<form id=post method=POST action="{target}/api/whoami">
  <input name=amount value=1000><button id=submit type=submit>win</button></form>
<a id=link href="{target}/api/whoami">link</a>
<script>
async function attempt(init) {{
  try {{ const r = await fetch("{target}/api/whoami", init); return r.type + " " + r.status; }}
  catch (e) {{ return "error " + e.name; }}
}}
window.attack = async () => ({{
  simple: await attempt({{credentials: "include"}}),
  preflighted: await attempt({{credentials: "include", headers: {{"X-CSRF": "1"}}}}),
  nocors: await attempt({{method: "POST", mode: "no-cors", credentials: "include",
    headers: {{"Content-Type": "text/plain"}}, body: "x"}}),
}});
</script>"""


@pytest.mark.parametrize("samesite", ["strict", "lax"])
def test_h_cross_site_requests_are_refused_and_never_reach_the_upstream(
    e2e: E2E, samesite: str
) -> None:
    # Lax: the session cookie does ride along a cross-site top-level GET, so only the
    # CSRF rules (X-CSRF, Sec-Fetch-Site) stand between the attacker and the API.
    bff = e2e.bff_a if samesite == "strict" else e2e.bff_lax
    user = e2e.new_user()
    context = e2e.new_context()
    app = context.new_page()
    login(app, e2e, bff, user)
    assert call_api(app)[0] == 200  # the same-origin SPA works: refusals below mean something

    before = e2e.api.count()
    seen: list[tuple[str, str, int]] = []

    def record(response: Response) -> None:
        if response.url.startswith(bff.url + "/api"):
            seen.append((response.request.method, response.url, response.status))

    context.on("response", record)
    evil = context.new_page()
    evil.goto(e2e.attacker.publish(f"/{samesite}.html", ATTACK_PAGE.format(target=bff.url)))
    outcomes = evil.evaluate("() => window.attack()")
    # Reading a cross-origin answer is blocked; no-cors resolves opaque whatever happened.
    assert outcomes["simple"].startswith("error") and outcomes["preflighted"].startswith("error"), (
        outcomes
    )

    with evil.expect_navigation() as posted:
        evil.click("#submit")
    post_response = posted.value
    assert post_response is not None and post_response.status in (401, 403), post_response
    evil.go_back()
    with evil.expect_navigation() as followed:
        evil.click("#link")
    link_response = followed.value
    assert link_response is not None
    if samesite == "lax":  # the cookie came along: the CSRF check alone refused it
        assert link_response.status == 403, link_response.status
        assert json_or_text(evil.locator("body").inner_text())["error"] == "csrf"
    else:
        assert link_response.status in (401, 403), link_response.status

    assert api_calls(e2e, before) == [], "a cross-site request reached the upstream"
    assert seen and all(status in (401, 403) for _, _, status in seen), seen
    # And the attempts did not log the user out.
    assert whoami(app)[0] == 200
