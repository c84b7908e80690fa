"""The background work an app runs for as long as it serves: the provider's metadata
kept loaded, and the batched per-request metrics handed to prometheus_client every
second (`bff.telemetry.request_metrics`)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from bff.oidc.client import OidcClient
from bff.telemetry.request_metrics import FLUSH_INTERVAL, flush_metrics

__all__ = ["discovering", "flushing_metrics"]


@contextlib.asynccontextmanager
async def discovering(oidc: OidcClient, *, enabled: bool) -> AsyncIterator[None]:
    """Keep the provider's metadata loaded (in the background) for the block's duration."""
    task = asyncio.create_task(oidc.discover_forever(), name="bff-discovery") if enabled else None
    try:
        yield
    finally:
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


@contextlib.asynccontextmanager
async def flushing_metrics() -> AsyncIterator[None]:
    """Hand the batched per-request metrics to prometheus_client every second while the
    block runs, and once more at its end."""

    async def flush_forever() -> None:
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            flush_metrics()

    task = asyncio.create_task(flush_forever(), name="bff-metrics")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        flush_metrics()
