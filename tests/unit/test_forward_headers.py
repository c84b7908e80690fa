"""Forwarding rules for request and response headers (THREATS.md invariant 2): pure."""

from __future__ import annotations

from bff.proxy.forward_rules import ForwardRules
from bff.proxy.forwarding import outbound_headers
from bff.proxy.request_headers import filter_request_headers
from bff.proxy.response_headers import filter_response_headers

RULES = ForwardRules.create(
    ["bff-session", "bff-session-login"], ["10.0.0.0/8"], public_host="bff.example:8443"
)


def h(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode()) for k, v in pairs]


def forward(
    *pairs: tuple[str, str], trusted: bool = False, bearer: str | None = "tok"
) -> list[tuple[str, str]]:
    inbound = filter_request_headers(h(*pairs), RULES, trusted=trusted)
    return outbound_headers(
        inbound, bearer=bearer, peer="192.0.2.7", scheme="https", request_id="rid-1"
    )


def names(headers: list[tuple[str, str]]) -> list[str]:
    return [k.lower() for k, _ in headers]


def value(headers: list[tuple[str, str]], name: str) -> list[str]:
    return [v for k, v in headers if k.lower() == name]


def test_hop_by_hop_and_connection_named_headers_are_dropped() -> None:
    out = forward(
        ("Connection", "keep-alive, X-Secret, x_other"),
        ("Keep-Alive", "timeout=5"),
        ("TE", "trailers"),
        ("Trailer", "X-T"),
        ("Transfer-Encoding", "chunked"),
        ("Upgrade", "websocket"),
        ("Proxy-Authorization", "Basic abc"),
        ("Proxy-Connection", "keep-alive"),
        ("Proxy-Anything", "1"),
        ("X-Secret", "s"),
        ("X-Other", "o"),
        ("Expect", "100-continue"),
        ("Accept", "application/json"),
    )
    assert names(out) == [
        "accept",
        "x-forwarded-for",
        "x-forwarded-proto",
        "x-forwarded-host",
        "x-request-id",
        "authorization",
    ]


def test_authorization_host_and_request_id_are_replaced_by_ours() -> None:
    out = forward(
        ("Authorization", "Bearer stolen"),
        ("authorization", "Basic x"),
        ("Host", "spa.example"),
        ("X-Request-ID", "client-chosen"),
    )
    assert value(out, "authorization") == ["Bearer tok"]
    assert value(out, "x-request-id") == ["rid-1"]
    assert "host" not in names(out)  # the HTTP client sets the upstream's own host
    # never the browser's Host: the public URL's
    assert value(out, "x-forwarded-host") == ["bff.example:8443"]
    assert value(forward(("Authorization", "Bearer x"), bearer=None), "authorization") == []


def test_bff_cookies_are_stripped_and_others_pass() -> None:
    out = forward(
        ("Cookie", "a=1; bff-session=SECRET; b=2"),
        ("Cookie", "bff-session-login=L;  BFF-Session =x; \u200bbff-session=y; c=3"),
    )
    assert value(out, "cookie") == ["a=1; b=2; c=3"]
    assert "SECRET" not in repr(out)
    only_ours = forward(("Cookie", "bff-session=S; bff-session-login=L"))
    assert "cookie" not in names(only_ours)
    assert "cookie" not in names(forward(("Cookie", "a=1"), ("Connection", "cookie")))


def test_spoofed_forwarding_headers_from_untrusted_peers_are_dropped() -> None:
    spoofed = (
        ("X-Forwarded-For", "1.2.3.4"),
        ("X_Forwarded_For", "5.6.7.8"),
        ("x-forwarded_for", "9.9.9.9"),
        ("X-Forwarded-Host", "evil.example"),
        ("X-Forwarded-Proto", "gopher"),
        ("X-Forwarded-Prefix", "/admin"),
        ("Forwarded", "for=1.2.3.4;host=evil"),
        ("X-Real-IP", "1.2.3.4"),
        ("X_Real_IP", "1.2.3.4"),
        ("Host", "spa.example"),
    )
    out = forward(*spoofed)
    assert value(out, "x-forwarded-for") == ["192.0.2.7"]
    assert value(out, "x-forwarded-proto") == ["https"]
    assert value(out, "x-forwarded-host") == ["bff.example:8443"]
    assert not {"forwarded", "x-real-ip", "x-forwarded-prefix"} & set(names(out))
    assert not any("_" in n for n in names(out))


def test_trusted_proxy_headers_are_kept_and_extended() -> None:
    out = forward(
        ("X-Forwarded-For", "203.0.113.1"),
        ("X-Forwarded-For", "10.1.1.1"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "app.example"),
        ("X-Real-IP", "203.0.113.1"),
        ("X_Forwarded_For", "6.6.6.6"),  # an underscore spelling is never believed
        ("Host", "internal:8000"),
        trusted=True,
    )
    assert value(out, "x-forwarded-for") == ["203.0.113.1, 10.1.1.1, 192.0.2.7"]
    assert value(out, "x-forwarded-proto") == ["https"]
    assert value(out, "x-forwarded-host") == ["app.example"]
    assert value(out, "x-real-ip") == ["203.0.113.1"]
    assert "6.6.6.6" not in repr(out)


def test_underscore_spellings_of_managed_names_are_dropped_others_pass() -> None:
    out = forward(
        ("Content_Length", "5"),
        ("Transfer_Encoding", "chunked"),
        ("X_CSRF", "1"),
        ("X_Request_ID", "x"),
        ("My_Header", "kept"),
        ("X-CSRF", "1"),
    )
    assert ("my_header", "kept") in out
    assert ("x-csrf", "1") in out  # forwarded: it carries nothing secret
    assert {"content_length", "transfer_encoding", "x_csrf", "x_request_id"}.isdisjoint(names(out))


def test_body_detection_and_framing() -> None:
    def inbound(*pairs: tuple[str, str]) -> tuple[bool, list[str]]:
        got = filter_request_headers(h(*pairs), RULES, trusted=False)
        return got.has_body, [k for k, _ in got.headers]

    assert inbound() == (False, [])
    assert inbound(("Content-Length", "0")) == (False, ["content-length"])
    assert inbound(("Content-Length", "12")) == (True, ["content-length"])
    assert inbound(("Transfer-Encoding", "chunked")) == (True, [])
    assert inbound(("Transfer-Encoding", "chunked"), ("Content-Length", "3")) == (True, [])


def test_trust_is_decided_by_the_peer_address() -> None:
    assert RULES.trusts("10.2.3.4")
    assert not RULES.trusts("192.0.2.7")
    assert not RULES.trusts(None)
    assert not RULES.trusts("not-an-ip")
    assert not ForwardRules.create(["c"], []).trusts("10.2.3.4")


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


def test_routing_override_headers_and_httpoxy_never_reach_the_upstream() -> None:
    pairs = [
        ("Proxy", "http://evil:1"),
        ("X-Original-URL", "/admin"),
        ("X-Rewrite-URL", "/admin"),
        ("X-HTTP-Method-Override", "DELETE"),
        ("X-Method-Override", "DELETE"),
        ("X-HTTP-Method", "DELETE"),
    ]
    inbound = filter_request_headers(h(*pairs), RULES, trusted=True)
    assert inbound.headers == []


def test_nameless_set_cookie_and_clear_site_data_are_dropped() -> None:
    raw = [
        (b"set-cookie", b"=bff-session=evil"),
        (b"clear-site-data", b'"cookies"'),
        (b"set-cookie", b"theirs=1"),
    ]
    assert filter_response_headers(raw, RULES) == [(b"set-cookie", b"theirs=1")]


def test_no_cookie_or_bearer_in_repr() -> None:
    inbound = filter_request_headers(
        h(("Cookie", "bff-session=SECRET-COOKIE")), RULES, trusted=False
    )
    assert "SECRET-COOKIE" not in repr(inbound)
