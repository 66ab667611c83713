"""One trace id end to end: W3C Trace Context (`traceparent`) through every hop.

Where a trace starts: the gateway's HTTP request (its `traceparent` header when the caller
sends one: services/gateway/wsgi.py wraps the app in OpenTelemetry's WSGI middleware), an
HL7 message (one per MLLP frame; over POST /api/v1/hl7 the request's), and an AMQP message
a sender published (its `traceparent` header, else a new trace). How it travels:
  RPC             nameko context data (`traceparent`): the gateway's RPC pool puts it there,
                  nameko carries a worker's context data to the services it calls
  events          a `traceparent` AMQP header: `shared.messaging.publish`, and the outbox,
                  which stores the trace of the work that wrote an event next to it, so the
                  relay publishes it later under the same trace
  consumers       `ReliableConsumer` reads the header into the worker's context data, and
                  `WorkerTracing` (every service has it through HealthMixin) makes it the
                  current span of the worker, so every log line carries its `trace_id`
                  (shared/log.py) and every event the worker writes carries it on.
A batch consumer's worker handles messages of many traces: each message gets its own span,
its log lines name all of them (`trace_ids`), and an event written for one of them (by
its event_id) keeps that message's trace.

OpenTelemetry's API and SDK do the work: the W3C propagator parses and formats the header,
the SDK makes the ids and the spans. Exporting the spans is configuration only: with
OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) set, each process sends
them to that OTLP/HTTP collector in batches, and pymongo's commands become spans too;
without it (the default) spans are made for their ids and dropped. README.md § Operations.
"""

import contextvars
import functools
import logging
import os
import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from nameko.extensions import DependencyProvider
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.context.context import Context
from opentelemetry.trace import NonRecordingSpan, Span, SpanContext, SpanKind
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

if TYPE_CHECKING:  # setup() imports the SDK itself; the type checker needs only the name
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)

TRACEPARENT, TRACESTATE = "traceparent", "tracestate"
TRACE_HEADER = "X-Trace-Id"  # the gateway's answer names the request's trace
_PROPAGATOR = TraceContextTextMapPropagator()
# In a batch worker: {event_id: the span of that message}.
_BATCH: contextvars.ContextVar[dict[str, Span] | None] = contextvars.ContextVar(
    "hcrm_trace_batch", default=None
)
_setup_lock = threading.Lock()
_provider: "TracerProvider | None" = None


# -- the process's tracer -------------------------------------------------------------------
def exporting() -> bool:
    """Whether spans go to a collector: an OTLP endpoint is configured."""
    return bool(
        os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
        or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    )


def setup(process_name: str) -> "TracerProvider":
    """Install the SDK's tracer provider once per process (idempotent). Spans are exported
    only when exporting() — to the endpoint the standard OTEL_EXPORTER_OTLP_* variables name."""
    global _provider
    with _setup_lock:
        if _provider is not None:
            return _provider
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider

        attributes = (
            {} if os.environ.get("OTEL_SERVICE_NAME") else {"service.name": f"hcrm-{process_name}"}
        )
        provider = TracerProvider(resource=Resource.create(attributes))
        if exporting():
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
            from opentelemetry.instrumentation.pymongo import PymongoInstrumentor
            from opentelemetry.sdk.trace.export import BatchSpanProcessor

            provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
            PymongoInstrumentor().instrument(tracer_provider=provider)
            log.info(
                "exporting traces",
                extra={
                    "endpoint": os.environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
                    or os.environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
                },
            )
        trace.set_tracer_provider(provider)
        _provider = provider
        return provider


@functools.cache
def tracer() -> trace.Tracer:
    # One tracer per process (making one per span is a quarter of a span's cost); made
    # before setup() it is OpenTelemetry's proxy, which follows the provider set later.
    return trace.get_tracer("hcrm")


# -- traceparent: parse and format (OpenTelemetry's W3C propagator) ---------------------------
def parse(traceparent: object, tracestate: str | None = None) -> SpanContext | None:
    """The SpanContext a `traceparent` header names, or None when it is absent or invalid
    (W3C rules: version, 32 + 16 hex digits, not all zero)."""
    if not traceparent or not isinstance(traceparent, str):
        return None
    carrier = {TRACEPARENT: traceparent}
    if tracestate:
        carrier[TRACESTATE] = tracestate
    span_context = trace.get_current_span(
        _PROPAGATOR.extract(carrier, Context())
    ).get_span_context()
    return span_context if span_context.is_valid else None


def format_traceparent(span_context: SpanContext) -> str | None:
    """The `traceparent` header of a SpanContext ("00-<trace id>-<span id>-<flags>")."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(
        carrier, trace.set_span_in_context(NonRecordingSpan(span_context), Context())
    )
    return carrier.get(TRACEPARENT)


def trace_id_hex(span_context: SpanContext) -> str:
    return trace.format_trace_id(span_context.trace_id)


def trace_id_of(text: str | None) -> str | None:
    """The trace id (32 hex digits) in a traceparent or a bare trace id; None otherwise."""
    text = (text or "").strip().lower()
    if len(text) == 32 and all(c in "0123456789abcdef" for c in text) and text != "0" * 32:
        return text
    span_context = parse(text)
    return trace_id_hex(span_context) if span_context else None


# -- the current trace --------------------------------------------------------------------------
def current_span_context() -> SpanContext | None:
    span_context = trace.get_current_span().get_span_context()
    return span_context if span_context.is_valid else None


def current_traceparent() -> str | None:
    span_context = current_span_context()
    return format_traceparent(span_context) if span_context else None


def current_trace_ids() -> list[str]:
    """The trace ids the running work belongs to: the current span's, or every message's of
    a batch worker. [] outside any traced work."""
    batch = _BATCH.get()
    if batch:
        return list(dict.fromkeys(trace_id_hex(span.get_span_context()) for span in batch.values()))
    span_context = current_span_context()
    return [trace_id_hex(span_context)] if span_context else []


def traceparent_for(message: object = None) -> str | None:
    """The traceparent an event written now carries: in a batch worker the one of the
    message with the same event_id (a copy of it), else the current one."""
    batch = _BATCH.get()
    if batch and isinstance(message, dict) and str(message.get("event_id")) in batch:
        return format_traceparent(batch[str(message["event_id"])].get_span_context())
    return current_traceparent()


def trace_id_for(event_id: object) -> str | None:
    """In a batch worker, the trace id of the message with this event_id (else the current)."""
    batch = _BATCH.get()
    if batch and str(event_id) in batch:
        return trace_id_hex(batch[str(event_id)].get_span_context())
    ids = current_trace_ids()
    return ids[0] if len(ids) == 1 else None


def headers(existing: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """`existing` AMQP headers plus the current traceparent, unless they carry one already
    (a replayed or retried message keeps the trace it had)."""
    merged = dict(existing or {})
    if TRACEPARENT not in merged:
        traceparent = current_traceparent()
        if traceparent:
            merged[TRACEPARENT] = traceparent
    return merged


def context_from_headers(amqp_headers: Mapping[str, Any] | None) -> dict[str, str]:
    """What of a message's headers goes into its worker's context data."""
    amqp_headers = amqp_headers or {}
    return {
        key: str(amqp_headers[key])[:512]
        for key in (TRACEPARENT, TRACESTATE)
        if amqp_headers.get(key)
    }


def into_context_data(data: dict[str, Any]) -> None:
    """Put the current traceparent into nameko context data (an RPC proxy's), or remove a
    stale one: a pooled proxy serves one request after another."""
    traceparent = current_traceparent()
    if traceparent:
        data[TRACEPARENT] = traceparent
    else:
        data.pop(TRACEPARENT, None)
    data.pop(TRACESTATE, None)


def _parent(carrier: Mapping[str, Any] | None) -> Context:
    return _PROPAGATOR.extract(
        {k: v for k, v in (carrier or {}).items() if isinstance(v, str)}, Context()
    )


class client_span:
    """A CLIENT span around an outgoing call (`with client_span("rpc intake.get_patient"):`),
    current while the call is made so that what it sends names it as the parent."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __enter__(self) -> Span:
        self.span = tracer().start_span(self.name, kind=SpanKind.CLIENT)
        self.token = otel_context.attach(trace.set_span_in_context(self.span))
        return self.span

    def __exit__(self, *exc: object) -> Literal[False]:
        otel_context.detach(self.token)
        self.span.end()
        return False


# -- nameko workers -----------------------------------------------------------------------------
class WorkerTracing(DependencyProvider):
    """Gives each worker of the service a span: the child of the `traceparent` in its context
    data (an RPC's, a consumed message's), or a new trace (a timer's run, an MLLP frame).
    worker_setup and worker_teardown run in the worker's own green thread, whose context
    (contextvars are per greenlet) holds the span for everything the worker does."""

    def setup(self) -> None:
        setup(self.container.service_name)

    def worker_setup(self, worker_ctx: Any) -> None:
        entrypoint = worker_ctx.entrypoint
        name = f"{worker_ctx.service_name}.{entrypoint.method_name}"
        kind = getattr(entrypoint, "span_kind", None) or (
            SpanKind.SERVER if TRACEPARENT in worker_ctx.data else SpanKind.INTERNAL
        )
        parents = getattr(entrypoint, "batch_traceparents", None)
        parents = parents(worker_ctx.args) if parents else None
        if parents and len(parents) > 1:
            spans = {
                str(event_id): tracer().start_span(
                    name, context=_parent({TRACEPARENT: traceparent}), kind=kind
                )
                for event_id, traceparent in parents
            }
            worker_ctx.hcrm_trace = (list(spans.values()), None, _BATCH.set(spans))
            return
        span = tracer().start_span(name, context=_parent(worker_ctx.data), kind=kind)
        token = otel_context.attach(trace.set_span_in_context(span))
        # The worker's own RPCs (nameko sends its context data along) name this span.
        if span.get_span_context().is_valid:
            worker_ctx.data[TRACEPARENT] = format_traceparent(span.get_span_context())
        worker_ctx.hcrm_trace = ([span], token, None)

    def worker_teardown(self, worker_ctx: Any) -> None:
        spans, token, batch_token = getattr(worker_ctx, "hcrm_trace", None) or ((), None, None)
        worker_ctx.hcrm_trace = None
        for span in spans:
            span.end()
        if token is not None:
            otel_context.detach(token)
        if batch_token is not None:
            _BATCH.reset(batch_token)


CONSUMER = SpanKind.CONSUMER  # the kind of a message consumer's span (shared/messaging.py)


def wsgi(app: Callable[..., Any], process_name: str) -> Callable[..., Any]:
    """`app` under OpenTelemetry's WSGI middleware: a SERVER span per request, child of the
    request's `traceparent` header when it has one; the response names the trace id."""
    from opentelemetry.instrumentation.wsgi import OpenTelemetryMiddleware

    setup(process_name)

    def name_the_trace(
        span: Span, environ: dict[str, Any], status: str, response_headers: list[tuple[str, str]]
    ) -> None:
        span_context = span.get_span_context()
        if span_context.is_valid:
            response_headers.append((TRACE_HEADER, trace_id_hex(span_context)))

    return OpenTelemetryMiddleware(app, response_hook=name_the_trace)
