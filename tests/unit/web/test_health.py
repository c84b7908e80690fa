"""/healthz and the public /readyz."""

from __future__ import annotations

import pytest

from tests.unit.web.env import Env

pytestmark = pytest.mark.anyio


async def test_health_and_readiness(env: Env) -> None:
    assert (await env.browser.get("/healthz")).status_code == 200
    r = await env.browser.get("/readyz")
    # The public status carries no reason (issue 11 defect 13): the admin listener does.
    assert r.status_code == 503 and r.json()["error_description"] == "not ready"
    await env.start_login()  # loads metadata
    assert (await env.browser.get("/readyz")).status_code == 200
