"""A real loopback resource server that accepts only DPoP (RFC 9449 §7): the proof's
signature by the key in its own header, `htm`, `htu`, `ath`, a fresh `iat`, a `jti` never
seen before (a replayed proof is refused), the nonce it hands out, and the token's
binding (`cnf.jkt`, as `jkt_of` reads it: introspection or the JWT's claim). Accepted
requests are answered by the echo of `UpstreamServer`."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from aiohttp import web

from tests.dpop_verifier import ProofChecker
from tests.integration.upstream_server import UpstreamServer

__all__ = ["DpopUpstream"]


@dataclass
class DpopUpstream(UpstreamServer):
    jkt_of: Callable[[str], str | None] = lambda token: None
    nonce: str | None = None  # when set: proofs must carry it (401 use_dpop_nonce)
    checker: ProofChecker = field(default_factory=ProofChecker)
    refusals: list[str] = field(default_factory=list)
    accepted: int = 0
    refuse_tokens: set[str] = field(default_factory=set)  # answered 401 invalid_token

    async def _answer(self, request: web.Request) -> web.StreamResponse:
        why = self._refusal(request)
        if why is not None:
            self.refusals.append(why)
            error = "use_dpop_nonce" if why == "use_dpop_nonce" else "invalid_dpop_proof"
            headers = {"WWW-Authenticate": f'DPoP error="{error}", algs="ES256"'}
            if self.nonce:
                headers["DPoP-Nonce"] = self.nonce
            return web.Response(status=401, headers=headers)
        self.accepted += 1
        return await super()._answer(request)

    def _refusal(self, request: web.Request) -> str | None:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        if scheme != "DPoP" or not token:
            return f"not a DPoP token: {scheme!r}"
        proofs = request.headers.getall("DPoP", [])
        if len(proofs) != 1:
            return f"{len(proofs)} proofs"
        htu = f"http://{request.host}{request.path}"  # the URL without query or fragment
        try:
            jkt = self.checker.verify(
                proofs[0],
                htm=request.method,
                htu=htu,
                now=time.time(),
                access_token=token,
                nonce=self.nonce,
            )
        except ValueError as exc:
            return str(exc)
        if self.jkt_of(token) != jkt:
            return "the token is not bound to the proof's key (cnf.jkt)"
        if token in self.refuse_tokens:
            return "refused token"
        return None
