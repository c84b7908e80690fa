"""The in-process bff the /bff endpoint tests drive: a fake provider, a clock, a store,
and a browser that keeps its cookies."""

from __future__ import annotations

import json
from typing import Any

import pytest

from bff.config.load import load_settings
from bff.web.app import create_app
from tests.browser import Browser
from tests.fake_idp import CLIENT_ID, CLIENT_SECRET, ISSUER, SECRET_KEY, Clock, FakeIdp, query

__all__ = ["Env", "audits", "bff_logs", "make_settings", "refusals", "request_id"]


def make_settings(**env: str) -> Any:
    base = {
        "BFF_ISSUER": ISSUER,
        "BFF_CLIENT_ID": CLIENT_ID,
        "BFF_CLIENT_SECRET": CLIENT_SECRET,
        "BFF_SECRET_KEY": SECRET_KEY,
    }
    return load_settings({**base, **env})


class Env:
    def __init__(self, idp: FakeIdp, clock: Clock, store: Any, **env: str) -> None:
        self.idp, self.clock, self.store = idp, clock, store
        self.http = idp.http()
        self.app = create_app(
            make_settings(**env),
            http=self.http,
            store=store,
            clock=clock,
            discover_on_startup=False,
        )
        self.browser = Browser(self.app)

    async def start_login(
        self, browser: Browser | None = None, return_url: str = "/app"
    ) -> dict[str, str]:
        b = browser or self.browser
        r = await b.get("/bff/login", params={"returnUrl": return_url})
        assert r.status_code == 302, r.text
        params = query(r.headers["location"])
        self.idp.next_nonce = params["nonce"]
        return params

    async def login(self, browser: Browser | None = None) -> Any:
        b = browser or self.browser
        params = await self.start_login(b)
        return await b.get(
            "/bff/callback", params={"code": "the-code", "state": params["state"], "iss": ISSUER}
        )

    async def aclose(self) -> None:
        await self.browser.aclose()
        await self.http.aclose()


def refusals(caplog: pytest.LogCaptureFixture) -> list[tuple[int, str]]:
    return [(r.levelno, r.getMessage()) for r in caplog.records if r.name == "bff.refused"]


def bff_logs(caplog: pytest.LogCaptureFixture) -> str:
    """What bff logged (the test's own httpx client logs its request URLs)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("bff"))


def audits(caplog: pytest.LogCaptureFixture) -> list[dict[str, str]]:
    return [json.loads(r.getMessage()) for r in caplog.records if r.name == "bff.audit"]


def request_id(response: object) -> str:
    return response.headers["x-request-id"]  # type: ignore[attr-defined,no-any-return]
