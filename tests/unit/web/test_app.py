"""The composed app as a whole: no secret in any log line of a full login and logout, and
the audit events counted in the metrics."""

from __future__ import annotations

import logging

import pytest

from bff.telemetry.metrics import render as render_metrics
from tests.fake_idp import CLIENT_SECRET, SECRET_KEY
from tests.unit.web.env import Env

pytestmark = pytest.mark.anyio


async def test_no_secret_in_any_log_line(env: Env, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    await env.login()
    cookie = env.browser.cookies["bff-session"]
    await env.browser.get("/bff/user", csrf=True)
    await env.browser.post("/bff/logout", csrf=True)
    # Everything the BFF logged; the test's own browser client logs its request URLs too.
    text = "\n".join(
        r.getMessage() for r in caplog.records if "http://localhost:8000" not in r.getMessage()
    )
    assert '"event":"login"' in text  # the audit line is there
    for secret in (
        "access-token-1-XYZ",
        "refresh-token-1-XYZ",
        "the-code",
        CLIENT_SECRET,
        SECRET_KEY,
        cookie,
        cookie.split(".")[0],
        "eyJ",
    ):
        assert secret not in text


def _counter(text: str, event: str, outcome: str) -> float:
    prefix = f'bff_events_total{{event="{event}",outcome="{outcome}"}} '
    for line in text.splitlines():
        if line.startswith(prefix):
            return float(line.removeprefix(prefix))
    return 0.0


async def test_metrics_count_logins_and_logouts(env: Env) -> None:
    # /metrics is served by the admin listener (tests/security/test_admin_listener.py).
    before = render_metrics(None).decode()
    await env.login()
    await env.browser.post("/bff/logout", csrf=True)
    text = render_metrics(None).decode()
    assert _counter(text, "login", "success") == _counter(before, "login", "success") + 1
    assert _counter(text, "logout", "success") == _counter(before, "logout", "success") + 1
    assert "alice" not in text  # no user data in labels
