"""OpenTelemetry tracing, off by default (BFF_TRACING=off|otlp).

When off, nothing here is imported or called: every instrumented place holds
`tracing: Tracing | None` and skips on None, so the hot path does no per-request work.
When on (the `otel` extra: opentelemetry-sdk and the OTLP exporter), each request gets a
server span with child spans for the session store, the refresh grant and the upstream
hop. The upstream gets our W3C `traceparent`; the client's `traceparent` is the parent
only when the socket peer is a trusted proxy (BFF_TRUSTED_PROXIES), otherwise the
request starts a fresh trace.

Attributes come from fixed sets: method, path (never the query), route label, status,
store operation, outcome. No token, code, cookie, session id or session hash ever
becomes an attribute.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, MutableMapping
from typing import TYPE_CHECKING, Any

from bff.errors import ConfigError
from bff.proxy.forward_rules import ForwardRules

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.trace import Span

__all__ = ["TRACE_HEADERS", "Tracing", "check_tracing", "create_tracing"]

TRACE_HEADERS = frozenset({"traceparent", "tracestate"})
_TRACE_HEADERS_BYTES = frozenset(h.encode() for h in TRACE_HEADERS)
_MAX_PATH = 256


class Tracing:
    """The tracer, the W3C propagator and the trust rule for inbound trace context."""

    def __init__(self, provider: TracerProvider, *, trusted_proxies: Iterable[str] = ()) -> None:
        from opentelemetry import context, trace
        from opentelemetry.trace import SpanKind, StatusCode
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        self.provider = provider
        self._tracer = provider.get_tracer("bff")
        self._propagator = TraceContextTextMapPropagator()
        self._context = context
        self._trace = trace
        self._server, self._client = SpanKind.SERVER, SpanKind.CLIENT
        self._internal = SpanKind.INTERNAL
        self._error = StatusCode.ERROR
        self._trusted = ForwardRules.create((), trusted_proxies)

    # --- the server span (middleware) -----------------------------------------------
    def start_request(
        self, scope: MutableMapping[str, Any], peer: str | None
    ) -> tuple[Span, object]:
        """Start the request's span and make it current; `finish_request` ends it."""
        parent = self._context.Context()  # a fresh trace ...
        if self._trusted.trusts(peer):  # ... unless a trusted proxy sent one
            carrier = {
                k.decode("latin-1"): v.decode("latin-1")
                for k, v in scope["headers"]
                if k in _TRACE_HEADERS_BYTES
            }
            if carrier:
                parent = self._propagator.extract(carrier, context=parent)
        method = scope["method"]
        span = self._tracer.start_span(
            method,
            context=parent,
            kind=self._server,
            attributes={
                "http.request.method": method,
                "url.path": scope["path"][:_MAX_PATH],
                "url.scheme": scope.get("scheme", "http"),
            },
        )
        token = self._context.attach(self._trace.set_span_in_context(span, parent))
        return span, token

    def finish_request(
        self, span: Span, token: object, *, method: str, route: str, status: int
    ) -> None:
        span.update_name(f"{method} {route}")
        span.set_attribute("http.route", route)
        if status:
            span.set_attribute("http.response.status_code", status)
        if status >= 500:  # (0: the client left before any answer, not our failure)
            span.set_status(self._error)
        span.end()
        self._context.detach(token)  # type: ignore[arg-type]

    # --- child spans ----------------------------------------------------------------
    @contextlib.contextmanager
    def span(
        self,
        name: str,
        attributes: dict[str, str | int],
        *,
        client: bool = False,
        leaf: bool = False,
    ) -> Iterator[Span]:
        """A child of the current span; made current itself unless it is a `leaf` (no
        children: a store call, the upstream hop), which saves the context switch. A
        failure sets the status and `error.type` to the exception's class name only:
        an exception's text (a provider's error description, say) never becomes part of
        a span."""
        span = self._tracer.start_span(
            name,
            kind=self._client if client else self._internal,
            attributes=attributes,
            record_exception=False,
            set_status_on_exception=False,
        )
        token = None if leaf else self._context.attach(self._trace.set_span_in_context(span))
        try:
            yield span
        except BaseException as exc:
            span.set_attribute("error.type", type(exc).__name__)
            span.set_status(self._error)
            raise
        finally:
            span.end()
            if token is not None:
                self._context.detach(token)

    @contextlib.contextmanager
    def upstream(
        self, method: str, route: str, headers: list[tuple[str, str]]
    ) -> Iterator[tuple[Span, list[tuple[str, str]]]]:
        """The upstream hop's client span, and `headers` carrying its `traceparent`
        instead of anything the browser sent under that name."""
        attributes: dict[str, str | int] = {"http.request.method": method, "http.route": route}
        with self.span(method, attributes, client=True, leaf=True) as span:
            carrier: dict[str, str] = {}
            self._propagator.inject(carrier, context=self._trace.set_span_in_context(span))
            out = [h for h in headers if h[0].lower() not in TRACE_HEADERS]
            out.extend(carrier.items())
            yield span, out

    def shutdown(self) -> None:
        """Flush what is still batched (lifespan end)."""
        self.provider.shutdown()


def _exporter_class(protocol: str | None) -> Any:
    """The OTLP span exporter (http/protobuf unless `protocol` is grpc); ConfigError
    when the `otel` extra is not installed."""
    try:
        if protocol == "grpc":
            from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (  # type: ignore[assignment]
                OTLPSpanExporter,
            )
        import opentelemetry.sdk.trace  # noqa: F401
    except ImportError:
        raise ConfigError(
            ["BFF_TRACING: otlp needs the otel extra (pip install 'bff[otel]')"]
        ) from None
    return OTLPSpanExporter


def check_tracing(mode: str, *, protocol: str | None = None) -> None:
    """At start-up, before any worker starts: ConfigError if `otlp` cannot work here."""
    if mode != "off":
        _exporter_class(protocol)


def create_tracing(
    mode: str,
    *,
    trusted_proxies: Iterable[str] = (),
    service_name: str = "bff",
    protocol: str | None = None,
) -> Tracing | None:
    """None when off. For `otlp`: a batching OTLP exporter that reads the standard
    OTEL_EXPORTER_OTLP_* variables (endpoint, headers, timeout) itself."""
    if mode == "off":
        return None
    exporter = _exporter_class(protocol)
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
    provider.add_span_processor(BatchSpanProcessor(exporter()))
    return Tracing(provider, trusted_proxies=trusted_proxies)
