"""Traces, logs and metrics of a whole flow over real sockets (uvicorn, a real upstream,
a respx-shaped provider): login, a refused callback, /bff/user, a proxied call that
refreshes, an upstream that is down, a CSRF refusal, logout, a second login whose
refresh is refused. Every span, JSON log line and metric is scanned for the flow's
secrets (codes, state, nonce, tokens, cookie values, session id and hash, client secret,
secret key) and for anything shaped like a JWT or a bearer token."""

from __future__ import annotations

import http.server
import io
import json
import logging
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind
from prometheus_client import REGISTRY, generate_latest

from bff.store.memory import MemoryStore
from bff.telemetry.logs import JsonFormatter
from bff.telemetry.request_metrics import flush_metrics
from bff.telemetry.tracing import Tracing
from tests.fake_idp import CLIENT_SECRET, ISSUER, SECRET_KEY, FakeIdp, query
from tests.integration.proxy_env import BffProcess, make_settings, serve, session_service
from tests.integration.upstream_server import UpstreamServer, running_upstream
from tests.secret_shapes import secret_shapes_in
from tests.support.procs import free_port

pytestmark = pytest.mark.anyio

CODE, BAD_CODE = "the-secret-code-4711", "a-replayed-code-0815"


@pytest.fixture(scope="module")
def up() -> Iterator[UpstreamServer]:
    with running_upstream() as server:
        yield server


@dataclass
class Flow:
    """What a flow's observer must never see, and what it should see."""

    secrets: set[str] = field(default_factory=set)
    session_hashes: list[str] = field(default_factory=list)  # full store-key hashes

    def check(self, text: str, *, short_hash_allowed: bool) -> None:
        for secret in self.secrets:
            assert secret not in text, f"secret leaked: {secret[:8]}..."
        for full in self.session_hashes:
            assert full not in text
            if not short_hash_allowed:
                assert full[:12] not in text
        assert secret_shapes_in(text) == []


class Client:
    """A browser over real sockets that keeps its cookies by hand."""

    def __init__(self, client: httpx.AsyncClient, flow: Flow) -> None:
        self.client, self.flow, self.cookies = client, flow, {}  # type: dict[str, str]

    async def get(self, url: str, *, csrf: bool = False, **kw: Any) -> httpx.Response:
        headers = {"X-CSRF": "1"} if csrf else {}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        r = await self.client.get(url, headers=headers, **kw)
        for header in r.headers.get_list("set-cookie"):
            name, _, rest = header.partition("=")
            value = rest.split(";", 1)[0]
            if value:
                self.flow.secrets.add(value)
                self.cookies[name] = value
            else:
                self.cookies.pop(name, None)
        return r

    async def login(self, idp: FakeIdp, store: MemoryStore, code: str) -> None:
        r = await self.get("/bff/login", params={"returnUrl": "/after"})
        assert r.status_code == 302
        params = query(r.headers["location"])
        self.flow.secrets.update({params["state"], params["nonce"], code})
        idp.next_nonce = params["nonce"]
        r = await self.get(
            "/bff/callback", params={"code": code, "state": params["state"], "iss": ISSUER}
        )
        assert r.status_code == 302, r.text
        ref = session_service(store).ref_from_cookie(self.cookies["bff-session"])
        assert ref is not None
        self.flow.secrets.add(ref.session_id)
        self.flow.session_hashes.append(ref.hash)


async def run_flow(url: str, idp: FakeIdp, store: MemoryStore) -> Flow:
    flow = Flow(secrets={CLIENT_SECRET, SECRET_KEY, BAD_CODE})
    idp.access_ttl = 10  # inside the 30 s refresh skew: the proxied call refreshes
    # By the public URL's host name (localhost): a login on another host is sent there.
    base = url.replace("//127.0.0.1:", "//localhost:")
    async with httpx.AsyncClient(base_url=base, timeout=10) as http:
        browser = Client(http, flow)
        r = await browser.get(
            "/bff/callback", params={"code": BAD_CODE, "state": "x", "iss": ISSUER}
        )
        assert r.status_code == 400
        await browser.login(idp, store, CODE)
        r = await browser.get("/bff/user", csrf=True)
        assert r.status_code == 200
        logout_url = r.json()["bff:logout_url"]
        flow.secrets.add(query(logout_url)["sid"])
        r = await browser.get("/api/data", csrf=True)
        assert r.status_code == 200, r.text
        assert idp.refresh_grants == 1
        assert (await browser.get("/down/x", csrf=True)).status_code == 502
        assert (await browser.get("/api/data")).status_code == 403
        assert (await browser.get(logout_url)).status_code == 302
        await browser.login(idp, store, CODE + "-2")
        idp.refresh_error = "invalid_grant"
        r = await browser.get("/api/data", csrf=True)
        assert r.status_code == 401 and r.json()["error"] == "session_expired"
    for n in range(1, len(idp.token_requests) + 1):
        flow.secrets.update({f"access-token-{n}-XYZ", f"refresh-token-{n}-XYZ"})
    for form in idp.token_requests:
        flow.secrets.update(v for values in form.values() for v in values if len(v) > 20)
    return flow


def routes(up: UpstreamServer) -> list[dict[str, Any]]:
    return [
        {"prefix": "/api", "upstream": up.url},
        {"prefix": "/down", "upstream": f"http://127.0.0.1:{free_port()}"},
        {"prefix": "/open", "upstream": up.url, "token": "none", "csrf": False},
    ]


@pytest.fixture
def tracing() -> Iterator[tuple[Tracing, InMemorySpanExporter]]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    yield Tracing(provider, trusted_proxies=["127.0.0.1/32"]), exporter
    provider.shutdown()


def dump(span: ReadableSpan) -> str:
    return json.dumps(
        {
            "name": span.name,
            "attributes": dict(span.attributes or {}),
            "events": [(e.name, dict(e.attributes or {})) for e in span.events],
            "status": str(span.status.description),
            "resource": dict(span.resource.attributes),
        },
        default=str,
    )


async def test_spans_of_a_whole_flow_nest_propagate_and_hold_no_secret(
    up: UpstreamServer, tracing: tuple[Tracing, InMemorySpanExporter]
) -> None:
    tracer, exporter = tracing
    store, idp = MemoryStore(), FakeIdp()
    up.received.clear()
    async with serve(make_settings(routes(up)), store, idp, tracing=tracer) as url:
        flow = await run_flow(url, idp, store)
    spans = exporter.get_finished_spans()
    for span in spans:
        flow.check(dump(span), short_hash_allowed=False)

    by_id = {s.context.span_id: s for s in spans}
    servers = [s for s in spans if s.kind is SpanKind.SERVER]
    names = [s.name for s in servers]
    assert "GET /bff/callback" in names and "GET /bff/logout" in names
    api = next(
        s
        for s in servers
        if s.name == "GET /api" and s.attributes["http.response.status_code"] == 200
    )

    def children(parent: ReadableSpan) -> list[ReadableSpan]:
        return [
            s for s in spans if s.parent is not None and s.parent.span_id == parent.context.span_id
        ]

    kids = {s.name: s for s in children(api)}
    assert {"store load_session", "bff.refresh", "GET"} <= set(kids)
    refresh = kids["bff.refresh"]
    assert refresh.attributes["bff.refresh.outcome"] == "success"
    grant = {s.name for s in children(refresh)}
    assert "oauth2 refresh_token grant" in grant and "store acquire_lock" in grant
    hop = kids["GET"]
    assert hop.kind is SpanKind.CLIENT and hop.attributes["http.response.status_code"] == 200
    # the upstream got the hop's W3C trace context
    sent = next(r for r in up.received if r.path == "/api/data")
    version, trace_id, span_id, _flags = sent.header("traceparent").split("-")
    assert version == "00"
    assert int(trace_id, 16) == api.context.trace_id and int(span_id, 16) == hop.context.span_id
    assert all(by_id.get(s.parent.span_id) is not None for s in spans if s.parent)
    # failures are marked, by class name only
    down = next(s for s in servers if s.name == "GET /down")
    assert down.attributes["http.response.status_code"] == 502
    assert any(s.attributes.get("error.type") == "UpstreamUnavailable" for s in children(down))


TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.mark.parametrize("trusted", [True, False])
async def test_inbound_traceparent_is_believed_only_from_a_trusted_proxy(
    trusted: bool, up: UpstreamServer
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    tracer = Tracing(provider, trusted_proxies=["127.0.0.1/32"] if trusted else [])
    up.received.clear()
    inbound = f"00-{TRACE_ID}-00f067aa0ba902b7-01"
    async with (
        serve(make_settings(routes(up)), MemoryStore(), tracing=tracer) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        r = await client.get("/open/t", headers={"traceparent": inbound, "tracestate": "k=v"})
        assert r.status_code == 200
    provider.shutdown()
    server = next(s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER)
    believed = format(server.context.trace_id, "032x") == TRACE_ID
    assert believed is trusted
    sent = up.received[-1].all("traceparent")
    assert len(sent) == 1 and sent[0] != inbound  # ours, a child of our hop's span
    assert sent[0].split("-")[1] == format(server.context.trace_id, "032x")
    assert (up.received[-1].header("tracestate") == "k=v") is trusted


@pytest.fixture
def json_logs() -> Iterator[io.StringIO]:
    """Every bff, uvicorn and root log line of the test as BFF_LOG_FORMAT=json writes
    it, at DEBUG: a stricter net than production's INFO."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(JsonFormatter())
    # a record reaches several of these loggers when they propagate: written once
    seen: dict[int, logging.LogRecord] = {}  # (kept alive, so no id is reused)

    def once(record: logging.LogRecord) -> bool:
        if id(record) in seen:
            return False
        seen[id(record)] = record
        return True

    handler.addFilter(once)
    names = ["", "bff", "bff.audit", "bff.access", "uvicorn", "uvicorn.error"]
    saved = {n: (logging.getLogger(n).level, logging.getLogger(n).handlers[:]) for n in names}
    for n in names:
        logging.getLogger(n).addHandler(handler)
    logging.getLogger("bff").setLevel(logging.DEBUG)
    logging.getLogger("bff.audit").setLevel(logging.INFO)
    try:
        yield out
    finally:
        for n, (level, handlers) in saved.items():
            logging.getLogger(n).setLevel(level)
            logging.getLogger(n).handlers[:] = handlers


async def test_json_logs_of_a_whole_flow_hold_no_secret(
    up: UpstreamServer, json_logs: io.StringIO
) -> None:
    store, idp = MemoryStore(), FakeIdp()
    up.received.clear()
    async with serve(make_settings(routes(up)), store, idp) as url:
        flow = await run_flow(url, idp, store)
    text = json_logs.getvalue()
    flow.check(text, short_hash_allowed=True)
    lines = [json.loads(line) for line in text.splitlines()]
    access = [line for line in lines if line["logger"] == "bff.access"]
    api = [a for a in access if a["route"] == "/api" and a["status"] == 200]
    assert api, access
    first = api[0]
    assert {"time", "level", "request_id", "method", "path", "duration_ms", "upstream_ms"} <= set(
        first
    )
    assert first["session"] == flow.session_hashes[0][:12]
    assert first["path"] == "/api/data" and first["upstream_ms"] > 0
    # the request id the upstream got is the one the access log shows
    assert up.received[0].header("x-request-id") == first["request_id"]
    assert any(a["route"] == "/bff/callback" and a["status"] == 400 for a in access)
    assert any(a["route"] == "/down" and a["status"] == 502 for a in access)
    # an application line written while serving a request carries its request id
    warning = next(line for line in lines if line["logger"] == "bff.proxy")
    down = next(a for a in access if a["route"] == "/down")
    assert warning["request_id"] == down["request_id"]
    audit = [line for line in lines if line["logger"] == "bff.audit"]
    events = [json.loads(a["message"])["event"] for a in audit]
    assert events.count("login") == 2 and "refresh" in events and "refresh_failed" in events


def sample(name: str, **labels: str) -> float:
    flush_metrics()
    return REGISTRY.get_sample_value(name, labels) or 0.0


def flow_samples() -> dict[str, float]:
    """The metrics the whole flow below moves, read before and after it."""
    return {
        "api_2xx": sample("bff_requests_total", route="/api", status_class="2xx"),
        "down_5xx": sample("bff_requests_total", route="/down", status_class="5xx"),
        "callback_4xx": sample("bff_requests_total", route="/bff/callback", status_class="4xx"),
        "upstream": sample("bff_upstream_duration_seconds_count", route="/api"),
        "request": sample("bff_request_duration_seconds_count", route="/api"),
        "success": sample("bff_refresh_total", outcome="success"),
        "ended": sample("bff_refresh_total", outcome="session_ended"),
        "wait": sample("bff_refresh_lock_wait_seconds_count"),
        "load": sample("bff_store_duration_seconds_count", operation="load_session"),
        "login": sample("bff_events_total", event="login", outcome="success"),
    }


async def test_metrics_of_a_whole_flow(up: UpstreamServer) -> None:
    before = flow_samples()
    store, idp = MemoryStore(), FakeIdp()
    async with serve(make_settings(routes(up)), store, idp) as url:
        flow = await run_flow(url, idp, store)
        async with (
            httpx.AsyncClient(base_url=url) as client,
            client.stream("GET", "/open/s", params={"_drip": "3", "_gap": "0.2"}) as r,
        ):
            open_while_streaming = []
            async for _ in r.aiter_raw():
                if not open_while_streaming:  # the first chunk: the stream is open
                    open_while_streaming.append(sample("bff_live_connections"))
                    open_while_streaming.append(sample("bff_inflight_requests"))
            assert open_while_streaming == [1, 1]
    after = flow_samples()
    delta = {k: after[k] - before[k] for k in before}
    assert delta == {
        "api_2xx": 1,
        "down_5xx": 1,
        "callback_4xx": 1,
        "upstream": 1,
        "request": 3,  # the 200, the CSRF refusal, the refused refresh
        "success": 2,  # /api, then /down (the new token is inside the skew too)
        "ended": 1,
        "wait": 3,
        "load": delta["load"],
        "login": 2,
    }
    assert delta["load"] >= 4
    assert sample("bff_inflight_requests") == 0
    assert sample("bff_live_connections") == 0
    text = generate_latest().decode()
    flow.check(text, short_hash_allowed=False)
    assert "alice" not in text


class _Collector(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP trace receiver: records (service name, span name, kind)."""

    spans: ClassVar[list[tuple[str, str, int]]] = []

    def do_POST(self) -> None:
        from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
            ExportTraceServiceRequest,
            ExportTraceServiceResponse,
        )

        body = self.rfile.read(int(self.headers["content-length"]))
        request = ExportTraceServiceRequest()
        request.ParseFromString(body)
        for resource_spans in request.resource_spans:
            attributes = {a.key: a.value.string_value for a in resource_spans.resource.attributes}
            for scope_spans in resource_spans.scope_spans:
                for span in scope_spans.spans:
                    self.spans.append((attributes.get("service.name", ""), span.name, span.kind))
        answer = ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args: Any) -> None:
        pass


def test_bff_serve_exports_spans_over_otlp(up: UpstreamServer) -> None:
    collector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Collector)
    thread = threading.Thread(target=collector.serve_forever, daemon=True)
    thread.start()
    _Collector.spans.clear()
    env = {
        "BFF_ISSUER": f"http://127.0.0.1:{free_port()}",  # no provider: not needed here
        "BFF_CLIENT_ID": "c",
        "BFF_CLIENT_SECRET": CLIENT_SECRET,
        "BFF_SECRET_KEY": SECRET_KEY,
        "BFF_ROUTES": f"/open={up.url}",
        "BFF_TRACING": "otlp",
        "BFF_SHUTDOWN_DRAIN_DELAY": "0",
        "OTEL_EXPORTER_OTLP_ENDPOINT": f"http://127.0.0.1:{collector.server_port}",
        "OTEL_SERVICE_NAME": "bff-otlp-test",
    }
    bff = BffProcess(env)
    try:
        r = httpx.get(f"{bff.url}/open/x", headers={"X-CSRF": "1"}, timeout=10)
        assert r.status_code == 401  # token = user, no session: no upstream call
        bff.process.send_signal(signal.SIGTERM)
        assert bff.process.wait(30) == 0  # the lifespan's end flushed the batch
    finally:
        output = bff.output()
        bff.stop()
        collector.shutdown()
        collector.server_close()
    names = {(service, name) for service, name, _ in _Collector.spans}
    assert ("bff-otlp-test", "GET /open") in names, (names, output)
    assert ("bff-otlp-test", "store load_session") not in names  # no cookie: no lookup
    assert ("bff-otlp-test", "GET /healthz") in names  # BffProcess's start-up probes
