"""Open redirects through the real `/bff/login` endpoint (THREATS.md invariant 4; SPEC
`returnUrl` rule): a generated corpus of several hundred `returnUrl` payloads, each of
which a browser could resolve to another origin (directly, after the WHATWG parser
drops tabs and newlines or reads `\\` as `/`, or after one more percent-decoding by an
app server), is refused with 400 `invalid_return_url`: no redirect, no login state,
no cookie. Answers oauth2-proxy's open-redirect advisories CVE-2020-5233
(GHSA-qqxw-m5fj-f7gv), CVE-2020-11053 (GHSA-j7px-6hwj-hpjg: encoded whitespace such as
`%09` between the slashes) and CVE-2020-4037 (GHSA-5m6c-jp6f-2vcv), and Duende BFF's
local-URL rule. Finding of this suite: a
double-encoded slash (`/%252F…`) or control (`/%2509/…`) used to pass."""

from __future__ import annotations

import itertools
from collections.abc import AsyncIterator

import pytest

from bff.store.memory import MemoryStore
from tests.fake_idp import ISSUER
from tests.security.conftest import Bff, running_bff

pytestmark = pytest.mark.anyio

# What starts an absolute or protocol-relative URL once a browser or a decoder is done.
_OPENERS = [
    "//",
    "///",
    "////",
    "\\\\",
    "/\\",
    "\\/",
    "/\\/",
    "/\t/",
    "/\n/",
    "/\r/",
    "/\r\n/",
    "\t//",
    "\n//",
    " //",
    "\x00//",
    "/\x00/",
    "/\x0b/",
    "/\x7f/",
    "/%2F",
    "/%2f",
    "%2F%2F",
    "/%5C",
    "/%5c",
    "%5C%5C",
    "/%09/",
    "/%0A/",
    "/%0d%0a/",
    "/%00/",
    "/%252F",
    "/%252f",
    "/%255C",
    "/%25252F",
    "/%2509/",
    "https://",
    "HTTPS://",
    "hTtPs:/",
    "http:\\\\",
    "//\t",
    "/\\\t",
]
_HOSTS = [
    "evil.example",
    "EVIL.Example",
    "evil.example:443",
    "user@evil.example",
    "user:pass@evil.example",
    "localhost:8000@evil.example",
    "xn--vil-jdd.example",  # punycode of an IDN look-alike
    "\u0435vil.example",  # Cyrillic 'е'
    "evil\u3002example",  # ideographic full stop, a dot to IDNA
    "[::1]",
    "2130706433",
]
_SCHEMES = [
    "javascript:alert(1)",
    "JaVaScRiPt:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "vbscript:msgbox(1)",
    "evil.example",
    "@evil.example",
    ":evil.example",
    "",
]
_SUFFIXES = ["", "/path", "?next=/", "#/app"]


def corpus() -> list[str]:
    payloads = [o + h for o, h in itertools.product(_OPENERS, _HOSTS)]
    payloads += [o + "evil.example" + s for o, s in itertools.product(_OPENERS, _SUFFIXES[1:])]
    payloads += _SCHEMES
    payloads.append("/" + "a" * 600)  # over SPEC's 512 characters (issue 11 defect 3)
    return list(dict.fromkeys(payloads))


# Accepted: the endpoint is not simply refusing everything.
LOCAL = ["/", "/app", "/app/orders?id=3#x", "/a%20b", "/%7Euser", "/@evil.example", "/.evil"]


@pytest.fixture
async def bff() -> AsyncIterator[Bff]:
    async with running_bff(store=MemoryStore()) as running:
        yield running


def test_the_corpus_has_several_hundred_payloads() -> None:
    assert len(corpus()) >= 500


async def test_every_payload_of_the_corpus_is_refused(bff: Bff) -> None:
    browser = bff.browser()
    accepted = []
    for payload in corpus():
        r = await browser.get("/bff/login", params={"returnUrl": payload})
        if r.status_code != 400 or r.json().get("error") != "invalid_return_url":
            accepted.append((payload, r.status_code))
            continue
        assert "location" not in r.headers
        assert not r.headers.get_list("set-cookie")
    assert accepted == []
    assert not browser.cookies  # no binding cookie, so no login state was started


async def test_local_paths_still_log_in_and_come_back(bff: Bff) -> None:
    for target in LOCAL:
        browser = bff.browser()
        params = await bff.start_login(browser, return_url=target)
        r = await browser.get(
            "/bff/callback", params={"code": "c", "state": params["state"], "iss": ISSUER}
        )
        assert r.status_code == 302
        assert r.headers["location"] == target


async def test_a_second_returnurl_parameter_is_refused(bff: Bff) -> None:
    """HTTP parameter pollution: frameworks disagree on which of two values wins."""
    browser = bff.browser()
    r = await browser.get("/bff/login?returnUrl=/app&returnUrl=//evil.example")
    assert r.status_code == 400
    assert "location" not in r.headers
