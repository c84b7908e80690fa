"""An upstream's answer headers as the browser gets them: pure."""

from __future__ import annotations

from bff.proxy.response_headers import filter_response_headers
from tests.unit.proxy.headers_env import RULES


def test_response_headers_lose_hop_by_hop_and_bff_cookies() -> None:
    raw = [
        (b"Content-Type", b"application/json"),
        (b"Connection", b"close, X-Hop"),
        (b"X-Hop", b"1"),
        (b"Keep-Alive", b"timeout=5"),
        (b"Transfer-Encoding", b"chunked"),
        (b"Proxy-Authenticate", b"Basic"),
        (b"Upgrade", b"h2c"),
        (b"Date", b"Mon, 01 Jan 2024 00:00:00 GMT"),
        (b"Server", b"upstream/1.0"),
        (b"Set-Cookie", b"upstream=1; Path=/"),
        (b"Set-Cookie", b"bff-session=evil; Path=/"),
        (b"Set-Cookie", b" BFF-Session-Login =evil"),
        (b"Set-Cookie", "\u200bbff-session=evil".encode()),
        (b"Set-Cookie", b"bff-session"),
        (b"Location", b"/elsewhere"),
    ]
    out = filter_response_headers(raw, RULES)
    assert out == [
        (b"content-type", b"application/json"),
        (b"set-cookie", b"upstream=1; Path=/"),
        (b"location", b"/elsewhere"),
    ]


def test_nameless_set_cookie_and_clear_site_data_are_dropped() -> None:
    raw = [
        (b"set-cookie", b"=bff-session=evil"),
        (b"clear-site-data", b'"cookies"'),
        (b"set-cookie", b"theirs=1"),
    ]
    assert filter_response_headers(raw, RULES) == [(b"set-cookie", b"theirs=1")]
