"""What bff reads from a browser's request headers before it acts: the CSRF header, Fetch
Metadata and an inbound X-Request-ID. Pure."""

from __future__ import annotations

from bff.proxy.request_checks import (
    csrf_ok,
    csrf_refusal,
    header_values,
    inbound_request_id,
    navigation_ok,
)


def h(*pairs: tuple[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.lower().encode(), v.encode()) for k, v in pairs]


def test_csrf_needs_the_header_and_no_cross_site_request() -> None:
    assert csrf_ok(h(("X-CSRF", "1")))
    assert csrf_ok(h(("X-CSRF", " 1 "), ("Sec-Fetch-Site", "same-origin")))
    assert not csrf_ok(h())
    assert not csrf_ok(h(("X-CSRF", "0")))
    assert not csrf_ok(h(("X-CSRF", "1"), ("X-CSRF", "2")))
    assert not csrf_ok(h(("X-CSRF", "1"), ("Sec-Fetch-Site", "Cross-Site")))


def test_a_csrf_refusal_names_its_reason() -> None:
    assert csrf_refusal(h()) == "csrf_header_missing"
    assert csrf_refusal(h(("X-CSRF", "yes"))) == "csrf_header_invalid"
    assert csrf_refusal(h(("X-CSRF", "1"), ("Sec-Fetch-Site", "cross-site"))) == "cross_site"


def test_only_a_top_level_navigation_passes() -> None:
    assert navigation_ok(h())  # older browsers, curl
    assert navigation_ok(h(("Sec-Fetch-Dest", "document"), ("Sec-Fetch-Mode", "navigate")))
    assert not navigation_ok(h(("Sec-Fetch-Dest", "image")))
    assert not navigation_ok(h(("Sec-Fetch-Mode", "cors")))


def test_a_well_formed_inbound_request_id_is_propagated_others_are_not() -> None:
    assert inbound_request_id(h(("X-Request-ID", "abc-123.x:y_z"))) == "abc-123.x:y_z"
    assert inbound_request_id(h()) is None
    assert inbound_request_id(h(("X-Request-ID", "has space"))) is None
    assert inbound_request_id(h(("X-Request-ID", "x" * 129))) is None
    assert inbound_request_id(h(("X-Request-ID", "bad\u00e9"), ("X-Request-ID", "ok"))) == "ok"


def test_header_values_lists_every_value_of_a_name() -> None:
    raw = h(("Cookie", "a=1"), ("Accept", "x"), ("Cookie", "b=2"))
    assert header_values(raw, b"cookie") == ["a=1", "b=2"]
    assert header_values(raw, b"x-none") == []
