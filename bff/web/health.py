"""`/healthz` (the process answers) and `/readyz` (it can serve: not draining, the store
answers, the provider's metadata is loaded). The public /readyz shows the status only;
the admin listener's shows the reasons and the store's topology (`bff.web.admin_app`).
A 503 comes from the answer table (`not_ready`)."""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from bff.answers import Kind, spec
from bff.errors import BffError
from bff.oidc.client import OidcClient
from bff.session.service import SessionService
from bff.store import SessionStore
from bff.web.lifecycle import Lifecycle
from bff.web.runtime import Runtime

__all__ = ["healthz", "readiness_problems", "readiness_response", "readyz"]


async def healthz(request: Request) -> Response:
    return JSONResponse({"status": "ok"})


async def readiness_problems(
    store: SessionStore | SessionService, oidc: OidcClient, lifecycle: Lifecycle | None = None
) -> list[str]:
    """Why this process is not ready (shutting down, the store does not answer, no
    provider metadata); empty when ready. The reasons are shown only on the admin
    listener."""
    if lifecycle is not None and lifecycle.draining:
        # SIGTERM: out of rotation at once, while connections are still served
        return ["shutting down"]
    problems: list[str] = []
    try:
        await store.ping()
    except BffError as exc:
        problems.append(f"session store: {exc}")
    if oidc.metadata_or_none is None:
        problems.append(f"provider metadata not loaded: {oidc.last_error or 'pending'}")
    return problems


def readiness_response(
    problems: list[str], *, detailed: bool, store: dict[str, Any] | None = None
) -> Response:
    """`store`: the topology the session store sees (`SessionStore.topology()`: addresses
    and reachability, no secret), shown with the detailed answer only."""
    extra = {"store": store} if detailed and store is not None else {}
    if problems:
        entry = spec(Kind.NOT_READY)
        reason = "; ".join(problems) if detailed else entry.description
        return JSONResponse(
            {"error": entry.code, "error_description": reason, **extra},
            status_code=entry.status,
            headers={"retry-after": str(entry.retry_after), "cache-control": "no-store"},
        )
    return JSONResponse({"status": "ready", **extra}, headers={"cache-control": "no-store"})


async def readyz(request: Request) -> Response:
    """The public, bare status: the reason may name internal hosts (issue 11 defect 13)."""
    rt: Runtime = request.app.state.bff
    problems = await readiness_problems(rt.sessions, rt.oidc, rt.lifecycle)
    return readiness_response(problems, detailed=False)
