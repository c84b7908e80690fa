"""Provider discovery: fetch and validate the discovery document once, share it, remember
why the last attempt failed (for `/readyz`), and retry in the background with capped,
jittered exponential backoff until it loads.
"""

from __future__ import annotations

import asyncio
import logging
import random

from bff.errors import IdpRejected, IdpUnavailable
from bff.oidc.metadata import ProviderMetadata
from bff.oidc.provider_http import ProviderHttp, json_object

__all__ = ["Discovery"]

log = logging.getLogger("bff.oidc")


class Discovery:
    """The metadata of one issuer, loaded once."""

    def __init__(self, http: ProviderHttp, *, issuer: str) -> None:
        self._http = http
        self._issuer = issuer
        self._metadata: ProviderMetadata | None = None
        self._last_error: str | None = None
        self._lock = asyncio.Lock()

    @property
    def metadata_or_none(self) -> ProviderMetadata | None:
        return self._metadata

    @property
    def last_error(self) -> str | None:
        return self._last_error

    async def discover(self) -> ProviderMetadata:
        async with self._lock:
            if self._metadata is not None:
                return self._metadata
            url = self._issuer.rstrip("/") + "/.well-known/openid-configuration"
            try:
                doc = json_object(await self._http.send("GET", url, what="discovery"), "discovery")
                metadata = ProviderMetadata.parse(doc, expected_issuer=self._issuer)
                self._http.check_client_auth(metadata)  # a clear error, not a 401 per login
            except IdpRejected as exc:  # an OAuth error body on discovery is still an outage
                self._last_error = f"discovery answered {exc.error}"
                raise IdpUnavailable(self._last_error) from exc
            except IdpUnavailable as exc:
                self._last_error = str(exc)
                raise
            self._metadata, self._last_error = metadata, None
            log.info("provider metadata loaded for %s", self._issuer)
            return metadata

    async def metadata(self) -> ProviderMetadata:
        return self._metadata if self._metadata is not None else await self.discover()

    async def discover_forever(
        self, *, initial_delay: float = 0.5, max_delay: float = 30.0
    ) -> None:
        """Retry discovery with capped, jittered exponential backoff until it succeeds."""
        delay = initial_delay
        while self._metadata is None:
            try:
                await self.discover()
                return
            except IdpUnavailable:
                log.warning("provider discovery failed: %s; retrying", self._last_error)
            except Exception:  # a bug must not silently end the retry loop
                self._last_error = "discovery failed unexpectedly"
                log.exception("provider discovery failed unexpectedly; retrying")
            await asyncio.sleep(delay * random.uniform(0.5, 1.0))
            delay = min(delay * 2, max_delay)
