"""DPoP towards the upstreams (RFC 9449 §7): `Authorization: DPoP <token>` with a fresh
proof per request (`htm`, `htu`, `ath`, and the origin's nonce once it sent one), and
the nonces the upstreams hand out (`DPoP-Nonce`), remembered per origin so that only the
first request to an origin pays the one retry a `use_dpop_nonce` challenge costs."""

from __future__ import annotations

import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable

from bff.oidc.dpop import dpop_proof, is_nonce_challenge, key_from_text

__all__ = ["UpstreamProofs"]

_MAX_ORIGINS = 1024  # nonces kept; routes name their origins, so this is never reached


class UpstreamProofs:
    """The DPoP headers of upstream requests, and the upstreams' nonces (per worker)."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._nonces: OrderedDict[str, str] = OrderedDict()

    def headers(
        self, key_text: str, token: str, method: str, origin: str, target: str
    ) -> list[tuple[str, str]]:
        """Authorization and DPoP for one request to `origin` + `target`."""
        proof = dpop_proof(
            key_from_text(key_text),
            htm=method,
            htu=origin + target,
            iat=self._clock(),
            jti=secrets.token_urlsafe(16),
            nonce=self._nonces.get(origin),
            access_token=token,
        )
        return [("Authorization", f"DPoP {token}"), ("DPoP", proof)]

    def learn(self, origin: str, status: int, raw_headers: Iterable[tuple[bytes, bytes]]) -> bool:
        """Remember the origin's `DPoP-Nonce`; True when the answer is a `use_dpop_nonce`
        challenge that a retry with the new nonce answers."""
        nonce = challenge = ""
        for name, value in raw_headers:
            lowered = name.lower()
            if lowered == b"dpop-nonce":
                nonce = value.decode("latin-1").strip()
            elif lowered == b"www-authenticate":
                challenge += value.decode("latin-1")
        if not nonce or len(nonce) > 512 or not nonce.isprintable():
            return False
        self._nonces[origin] = nonce
        self._nonces.move_to_end(origin)
        while len(self._nonces) > _MAX_ORIGINS:
            self._nonces.popitem(last=False)
        return is_nonce_challenge(status, challenge, None)
