"""Login and callback, attacked: malformed `iss`, deeply nested JSON from the provider or
in a logout token, oversize `returnUrl`. Each test names the issue or advisory it answers
(THREATS.md invariants 5 and 15)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding

from tests.fake_idp import ISSUER, FakeIdp
from tests.security.edge_env import Env, edge_env

pytestmark = pytest.mark.anyio


@pytest.fixture
async def env() -> AsyncIterator[Env]:
    async with edge_env() as e:
        yield e


# Far deeper than Python's recursion limit: json.loads raises RecursionError on it.
NESTED = b"[" * 50_000 + b"]" * 50_000


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


# --- issue 11 defect 5: a non-ASCII `iss` (hmac.compare_digest on str) was a 500 --------
@pytest.mark.parametrize("iss", ["https://idp.exämple.com", "\u00e9", ISSUER + "\u2028", "😀"])
async def test_non_ascii_iss_on_callback_is_a_4xx_never_a_500(env: Env, iss: str) -> None:
    params = await env.start_login()
    r = await env.browser.get(
        "/bff/callback", params={"code": "c", "state": params["state"], "iss": iss}
    )
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_issuer"


# --- issue 11 defect 6: deeply nested JSON is a 400 / 502, never a RecursionError 500 ---
def _signed_with_raw_payload(idp: FakeIdp, payload: bytes) -> str:
    """A logout token correctly signed by the provider's key, whose payload is `payload`."""
    header = b64(json.dumps({"alg": "RS256", "kid": "k1", "typ": "logout+jwt"}).encode())
    signing_input = f"{header}.{b64(payload)}".encode()
    signature = idp.key.private_key.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
    return f"{signing_input.decode()}.{b64(signature)}"


@pytest.mark.parametrize("where", ["header", "payload"])
async def test_nested_json_in_logout_token_is_400(env: Env, where: str) -> None:
    nested = b"[" * 20_000 + b"]" * 20_000  # within the 64 KiB token limit once encoded
    if where == "header":
        token = f"{b64(nested)}.{b64(b'{}')}.{b64(b'sig')}"
    else:
        token = _signed_with_raw_payload(env.idp, nested)
    r = await env.browser.post("/bff/backchannel-logout", data={"logout_token": token})
    assert r.status_code == 400, r.text
    assert r.json()["error"] == "invalid_request"


def _answer(body: bytes, status: int = 200) -> Any:
    return lambda request: httpx.Response(status, content=body)


@pytest.mark.parametrize(
    "endpoint",
    ["discovery", "jwks", "token", "token_error"],
)
async def test_nested_json_in_a_provider_answer_is_502(env: Env, endpoint: str) -> None:
    idp = env.idp
    if endpoint == "discovery":
        idp.router.get(f"{ISSUER}/.well-known/openid-configuration").mock(
            side_effect=_answer(NESTED)
        )
        r = await env.browser.get("/bff/login")
    else:
        params = await env.start_login()  # discovery is fine; the later answer is not
        if endpoint == "jwks":
            idp.router.get(f"{ISSUER}/jwks").mock(side_effect=_answer(NESTED))
        else:
            idp.token_status = 400 if endpoint == "token_error" else 200
            idp.token_body = NESTED
        r = await env.browser.get(
            "/bff/callback", params={"code": "c", "state": params["state"], "iss": ISSUER}
        )
    assert r.status_code == 502, r.text
    assert r.json()["error"] == "idp_unavailable"
