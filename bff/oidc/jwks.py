"""The provider's signing keys, cached: fetched on first use, refetched when old, and on
an unknown `kid` at most once per cooldown. The JWS rules themselves are `bff.oidc.jws`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Collection
from typing import Any

from joserfc.jwk import Key

from bff.errors import IdpUnavailable, TokenValidationError
from bff.oidc.jws import parse_header, parse_jwks, select_key, verify_signature

__all__ = ["JwksCache"]

log = logging.getLogger("bff.oidc")


class JwksCache:
    """The provider's signing keys: fetched on first use, refetched when older than
    `max_age` (so a key the provider withdrew stops verifying), and refetched on an
    unknown `kid` at most once per `cooldown` seconds (so tokens with random kids cannot
    make us hammer the provider). `fetch` returns the JWKS document or raises IdpError.
    """

    def __init__(
        self,
        fetch: Callable[[], Awaitable[Any]],
        *,
        clock: Callable[[], float],
        cooldown: float,
        max_age: float,
    ) -> None:
        self._fetch = fetch
        self._clock = clock
        self._cooldown = cooldown
        self._max_age = max_age
        self._lock = asyncio.Lock()
        self._keys: tuple[Key, ...] | None = None
        self._loaded_at = 0.0
        self._last_unknown_kid_refetch: float | None = None

    async def verify(self, token: str, *, allowed_algs: Collection[str]) -> dict[str, Any]:
        """Header rules, key lookup and signature; returns the (unchecked) claims."""
        header = parse_header(token, allowed_algs=allowed_algs)
        keys = await self._current()
        key = select_key(keys, header)
        if key is None:
            key = select_key(await self._refetch_for_unknown_kid(seen=keys), header)
        if key is None:
            raise TokenValidationError("no JWKS key matches the token's kid and alg")
        return verify_signature(token, key, header)

    def _fresh(self) -> tuple[Key, ...] | None:
        if self._keys is not None and self._clock() - self._loaded_at < self._max_age:
            return self._keys
        return None

    async def _current(self) -> tuple[Key, ...]:
        keys = self._fresh()
        if keys is not None:
            return keys
        async with self._lock:  # one fetch however many logins wait for it
            return self._fresh() or await self._load()

    async def _refetch_for_unknown_kid(self, *, seen: tuple[Key, ...]) -> tuple[Key, ...]:
        async with self._lock:
            if self._keys is not None and self._keys is not seen:
                return self._keys  # another task refetched while we waited
            now = self._clock()
            last = self._last_unknown_kid_refetch
            if last is not None and now - last < self._cooldown:
                return seen
            self._last_unknown_kid_refetch = now
            log.info("token names an unknown kid: refetching the provider's JWKS")
            return await self._load()

    async def _load(self) -> tuple[Key, ...]:
        doc = await self._fetch()
        try:
            keys = parse_jwks(doc)
        except ValueError as exc:  # our own message, naming what is missing
            raise IdpUnavailable(f"JWKS unusable: {exc}") from None
        self._keys, self._loaded_at = keys, self._clock()
        return keys
