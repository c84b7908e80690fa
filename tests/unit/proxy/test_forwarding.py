"""The headers bff injects into a forwarded request (THREATS.md invariant 2, "then inject"):
the bearer, X-Request-ID and X-Forwarded-*, ours or a trusted proxy's extended. Pure."""

from __future__ import annotations

from tests.unit.proxy.headers_env import forward, names, value


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
