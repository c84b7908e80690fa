"""Filtering the browser's request headers for forwarding (THREATS.md invariant 2, "strip"):
pure."""

from __future__ import annotations

from bff.proxy.request_headers import filter_request_headers
from tests.unit.proxy.headers_env import RULES, forward, h, names, value


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


def test_no_cookie_or_bearer_in_repr() -> None:
    inbound = filter_request_headers(
        h(("Cookie", "bff-session=SECRET-COOKIE")), RULES, trusted=False
    )
    assert "SECRET-COOKIE" not in repr(inbound)
