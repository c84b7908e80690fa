"""One request to an upstream and its answer streamed back: the request body streamed
from the browser, the upstream's timing (metrics, access log) and span, one refresh and
retry when the upstream refuses our token (idempotent requests without a body only), a
`step_up_required` answer when its 401 asks for a stronger login (RFC 9470,
`bff.oidc.step_up`), and an answer from the table when the upstream fails before its
status line. Mid-body, the only honest signal left is to end the connection without
completing the response. A DPoP-bound token goes with a fresh proof per send
(`bff.proxy.dpop_upstream`), and a bodiless request the upstream answers with a
`use_dpop_nonce` challenge is sent once more."""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from typing import Any

from bff.answers import Kind, json_answer
from bff.errors import StoreUnavailable, UpstreamTimeout, UpstreamUnavailable
from bff.oidc.redirects import is_local_path
from bff.oidc.step_up import login_url, step_up_from
from bff.proxy.dpop_upstream import UpstreamProofs
from bff.proxy.forward_rules import ForwardRules
from bff.proxy.replies import BY_KIND, STALLED, Send, send_answer
from bff.proxy.response_stream import relay_response
from bff.proxy.routes import Route
from bff.session.live import LiveSessions
from bff.session.records import Session
from bff.session.service import SessionRef
from bff.telemetry.request_metrics import RequestMetrics
from bff.telemetry.tracing import Tracing
from bff.tokens.manager import TokenManager
from bff.tokens.results import STORE_DOWN, Bearer
from bff.upstream.browser import BodyStream, DisconnectWatch, LateWatches, Receive
from bff.upstream.origins import UpstreamPool
from bff.upstream.protocol import UpstreamExchange

__all__ = ["Exchange", "Hop"]

_log = logging.getLogger("bff.proxy")
_WATCH_DELAY = 1.0  # seconds before a request still waiting for its upstream watches for
# a browser disconnect: fast requests never pay for the extra task
_IDEMPOTENT = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})


@dataclass(frozen=True, slots=True)
class Hop:
    """What every exchange shares, prepared once by the proxy app."""

    upstreams: UpstreamPool
    tokens: TokenManager
    rules: ForwardRules
    body_timeout: float  # seconds a request body may pause between two chunks
    metrics: RequestMetrics | None = None
    tracing: Tracing | None = None
    public_origin: str = ""  # a Referer from here names the page a step-up returns to
    path_base: str = ""  # the frontend's ("/app"): its /bff/login and root are under it
    live: LiveSessions | None = None  # a streamed answer ends with its session
    proofs: UpstreamProofs = field(default_factory=UpstreamProofs)
    # a request still waiting for its upstream after this long watches for a disconnect
    watches: LateWatches = field(default_factory=lambda: LateWatches(_WATCH_DELAY))


@dataclass(slots=True)
class Exchange:
    """One request to an upstream and its response streamed back."""

    hop: Hop
    route: Route
    method: str
    target: str  # path and query, canonical: sent byte for byte after the route's origin
    has_body: bool
    headers: list[tuple[str, str]] = field(repr=False)  # holds the bearer
    ref: SessionRef | None
    session: Session | None
    bearer: str | None = field(repr=False)
    state: dict[str, Any] | None = None  # the request's scope state (route, timings)
    dpop_key: str | None = field(default=None, repr=False)  # the bearer is DPoP-bound

    async def run(self, receive: Receive, send: Send) -> None:
        task = asyncio.current_task()
        watch = DisconnectWatch(receive, task, late=self.hop.watches)
        stream: BodyStream | None = None
        if self.has_body:
            stream = BodyStream(receive, timeout=self.hop.body_timeout, on_done=watch.later)
        else:
            watch.later()
        try:
            await self._run(send, watch, stream)
        except asyncio.CancelledError:
            # Our watcher cancelled us: the browser is gone. Anyone else's cancel stands.
            if watch.gone and task is not None and task.uncancel() == 0:
                return
            raise
        except OSError:
            return  # an ASGI server whose send raises once the browser has gone (ASGI 2.4)
        finally:
            watch.stop()

    async def _send_request(self, stream: BodyStream | None, send: Send) -> UpstreamExchange | None:
        pool, origin = self.hop.upstreams, self.route.origin
        started = time.perf_counter()
        try:
            body = stream.chunks() if stream is not None else None
            sent = self.headers
            if self.dpop_key is not None and self.bearer is not None:
                proofs = self.hop.proofs
                sent = sent + proofs.headers(
                    self.dpop_key, self.bearer, self.method, origin, self.target
                )
            tracing = self.hop.tracing
            if tracing is None:
                return await pool.request(origin, self.method, self.target, sent, body)
            # ---- tracing on: the hop's span; our traceparent goes upstream ----
            prefix = self.route.config.prefix
            with tracing.upstream(self.method, prefix, sent) as (span, headers):
                response = await pool.request(origin, self.method, self.target, headers, body)
                span.set_attribute("http.response.status_code", response.status)
                return response
        except (UpstreamUnavailable, UpstreamTimeout) as exc:
            if stream is not None and stream.client_gone:
                return None  # nobody left to answer
            if stream is not None and stream.stalled:
                await send_answer(send, STALLED)
                return None
            _log.warning("%s: %s", self.route.config.prefix, exc)
            await send_answer(send, BY_KIND[exc.kind])
            return None
        finally:
            self._upstream_timing(time.perf_counter() - started)

    def _upstream_timing(self, seconds: float) -> None:
        """bff_upstream_duration_seconds, and `upstream_ms` of the access log."""
        if self.hop.metrics is not None:
            self.hop.metrics.upstream(self.route.config.prefix, seconds)
        if self.state is not None:
            self.state["upstream_s"] = self.state.get("upstream_s", 0.0) + seconds

    async def _run(self, send: Send, watch: DisconnectWatch, stream: BodyStream | None) -> None:
        response = await self._send_request(stream, send)
        if (
            response is not None
            and self.dpop_key is not None
            and self.hop.proofs.learn(self.route.origin, response.status, response.raw_headers)
            and stream is None  # a body is gone once sent: the nonce serves the next request
        ):
            response.release()
            response = await self._send_request(None, send)
            if response is not None:  # a nonce it sends along serves the next request
                self.hop.proofs.learn(self.route.origin, response.status, response.raw_headers)
        if response is not None and response.status == 401 and await self._step_up(response, send):
            return
        if (
            response is not None
            and response.status == 401  # the upstream's own answer, not one of ours
            and self.route.config.retry_on_401
            and stream is None  # a body is gone once sent: only bodiless requests retry
            and self.method in _IDEMPOTENT
        ):
            response = await self._retry(response, send)
        if response is None:
            return
        live, ref, session = self.hop.live, self.ref, self.session
        ending = live.ending(ref.hash, session.expires_at) if live and ref and session else None
        try:
            await relay_response(
                response, send, rules=self.hop.rules, watch=watch, stream=stream, ending=ending
            )
        except (UpstreamUnavailable, UpstreamTimeout) as exc:
            # Mid-body: the status line is gone, so the only honest signal is to end the
            # connection without completing the response (the server closes it).
            _log.warning("%s: response body aborted: %s", self.route.config.prefix, exc)
            response.close()
        finally:
            response.release()

    async def _step_up(self, response: UpstreamExchange, send: Send) -> bool:
        """The upstream's 401 asks for a stronger login (RFC 9470): answer 401
        `step_up_required` with the local login URL that asks for it (and release the
        upstream's answer). False: any other 401."""
        challenges = [
            value.decode("latin-1")
            for name, value in response.raw_headers
            if name.lower() == b"www-authenticate"
        ]
        step = step_up_from(challenges) if challenges else None
        if step is None:
            return False
        response.release()
        url = self.hop.path_base + login_url(step, self._return_url())
        _log.info("%s: the upstream asks for a step-up login", self.route.config.prefix)
        await send_answer(send, json_answer(Kind.STEP_UP_REQUIRED, extra={"login_url": url}))
        return True

    def _return_url(self) -> str:
        """Where the step-up login returns: the page that made the request (its Referer,
        when it is ours), else the frontend's root."""
        origin, root = self.hop.public_origin, f"{self.hop.path_base}/"
        for name, value in self.headers:
            if origin and name.lower() == "referer" and value.startswith(origin + "/"):
                path = value[len(origin) :].partition("#")[0]
                return path if is_local_path(path) else root
        return root

    async def _retry(self, response: UpstreamExchange, send: Send) -> UpstreamExchange | None:
        """The upstream refused our token: refresh once (unless someone already did) and
        send the request again; only idempotent requests without a body. Releases
        `response` unless it is returned."""
        ref, session, bearer = self.ref, self.session, self.bearer
        if ref is None or session is None or bearer is None:
            return response
        try:
            result = await self.hop.tokens.for_route(
                ref, session, self.route.config, stale_token=bearer
            )
        except StoreUnavailable:
            result = STORE_DOWN
        except BaseException:
            response.release()
            raise
        if isinstance(result, Bearer) and result.token == bearer:
            return response  # nothing newer: the upstream's 401 is the answer
        response.release()
        if not isinstance(result, Bearer):
            await send_answer(send, BY_KIND[result.kind])
            return None
        stale = ("Authorization", f"Bearer {bearer}")
        self.headers = [h for h in self.headers if h != stale]
        if result.dpop_key is None:  # DPoP headers are made per send
            self.headers.append(("Authorization", f"Bearer {result.token}"))
        self.bearer, self.dpop_key = result.token, result.dpop_key
        return await self._send_request(None, send)
