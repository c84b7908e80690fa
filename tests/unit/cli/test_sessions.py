"""`bff sessions`: what the operator's terminal shows."""

from __future__ import annotations

import pytest

pytestmark = pytest.mark.anyio


def test_admin_listing_prints_no_terminal_escapes() -> None:
    from bff.cli.sessions import _printable

    assert _printable("Mozilla\x1b]0;pwned\x07 5.0") == "Mozilla?]0;pwned? 5.0"
