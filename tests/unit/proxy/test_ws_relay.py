"""Close codes across the WebSocket relay: the ones a close frame may carry pass through
both ways; the ones that only describe a closure are mapped to ones that may be sent."""

from __future__ import annotations

import pytest

from bff.proxy.ws_relay import to_browser, to_upstream


@pytest.mark.parametrize("code", [1000, 1001, 1008, 1009, 1011, 1014, 3000, 4000, 4401, 4999])
def test_sendable_codes_pass_both_ways(code: int) -> None:
    assert to_browser(code) == code
    assert to_upstream(code) == code


@pytest.mark.parametrize(
    ("code", "browser", "upstream"),
    [
        (1005, 1000, 1000),  # closed without a code: a normal closure
        (1006, 1014, 1001),  # vanished: Bad Gateway to the browser, Going Away upstream
        (1015, 1014, 1001),  # TLS failure
        (1004, 1014, 1001),  # reserved
        (2999, 1014, 1001),
        (5000, 1014, 1001),
    ],
)
def test_descriptive_codes_are_mapped(code: int, browser: int, upstream: int) -> None:
    assert (to_browser(code), to_upstream(code)) == (browser, upstream)
