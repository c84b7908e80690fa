"""A minimal cookie-keeping client over an ASGI app, explicit about what it sends."""

from __future__ import annotations

from typing import Any

import httpx


class Browser:
    def __init__(
        self,
        app: Any,
        base_url: str = "http://localhost:8000",
        *,
        client: httpx.AsyncClient | None = None,  # e.g. one over real sockets
    ) -> None:
        self.client = client or httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url=base_url
        )
        self.cookies: dict[str, str] = {}
        self.set_cookie_headers: list[str] = []

    async def request(
        self,
        method: str,
        url: str,
        *,
        csrf: bool = False,
        headers: dict[str, str] | None = None,
        **kw: Any,
    ) -> httpx.Response:
        sent = dict(headers or {})
        if csrf:
            sent["X-CSRF"] = "1"
        if self.cookies and "cookie" not in {k.lower() for k in sent}:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        response = await self.client.request(method, url, headers=sent, **kw)
        for header in response.headers.get_list("set-cookie"):
            self.set_cookie_headers.append(header)
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0]
            if "Max-Age=0" in header:
                self.cookies.pop(name, None)
            else:
                self.cookies[name] = value
        return response

    async def get(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("GET", url, **kw)

    async def post(self, url: str, **kw: Any) -> httpx.Response:
        return await self.request("POST", url, **kw)

    async def aclose(self) -> None:
        await self.client.aclose()
