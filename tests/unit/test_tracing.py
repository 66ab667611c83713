"""One trace id end to end (shared/tracing.py): the traceparent parsed and formatted, the log
lines carrying the trace id, the outbox keeping the trace of the work that wrote an event, a
worker continuing its message's trace, and `hcrm trace` reading the path back."""

import contextvars
import datetime
import io
import json
import logging
import types

import pytest

from shared import outbox, trace_path, tracing
from shared.log import JsonFormatter

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = f"00-{TRACE}-00f067aa0ba902b7-01"
NOW = datetime.datetime(2026, 3, 2, 8, 0, tzinfo=datetime.UTC)


@pytest.fixture(autouse=True)
def tracer():
    tracing.setup("tests")


def isolated(fn, *args):
    """Run `fn` in a context of its own, as a worker's green thread is."""
    return contextvars.copy_context().run(fn, *args)


def test_a_traceparent_is_parsed_and_formatted_back_by_the_w3c_rules():
    span_context = tracing.parse(PARENT)
    assert (
        tracing.trace_id_hex(span_context) == TRACE and span_context.span_id == 0x00F067AA0BA902B7
    )
    assert tracing.format_traceparent(span_context) == PARENT
    for invalid in (
        "",
        None,
        "garbage",
        f"00-{'0' * 32}-00f067aa0ba902b7-01",
        f"00-{TRACE}-{'0' * 16}-01",
        f"00-{TRACE[:-1]}-00f067aa0ba902b7-01",
        f"00-{TRACE}-00f067aa0ba902b7-01-extra",
    ):
        assert tracing.parse(invalid) is None, invalid
    assert tracing.trace_id_of(PARENT) == TRACE and tracing.trace_id_of(TRACE.upper()) == TRACE
    assert tracing.trace_id_of("not-a-trace") is None


def test_a_span_continues_the_trace_it_is_given_with_a_span_id_of_its_own():
    def run():
        with tracing.client_span("rpc intake.get_patient"):
            return (
                tracing.current_traceparent(),
                tracing.headers({"x": 1}),
                tracing.headers({"traceparent": PARENT}),
            )

    outside = isolated(run)
    assert (
        tracing.parse(outside[0])
        and outside[1]["traceparent"] == outside[0]
        and outside[1]["x"] == 1
    )
    assert outside[2]["traceparent"] == PARENT  # a retried or replayed message keeps its trace
    assert isolated(tracing.current_traceparent) is None and tracing.headers(None) == {}


def _format(record_extra=None, message="something happened"):
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter("test"))
    logger = logging.getLogger("test.tracing")
    logger.handlers[:] = [handler]
    logger.propagate = False
    logger.warning(message, extra=record_extra or {})
    return json.loads(stream.getvalue())


def _worker(data=None, entrypoint=None, args=()):
    """A stand-in nameko worker context and the service's WorkerTracing, set up."""
    provider = tracing.WorkerTracing()
    provider.container = types.SimpleNamespace(service_name="followup")
    provider.setup()
    entrypoint = entrypoint or types.SimpleNamespace(
        method_name="handle_event", span_kind=tracing.CONSUMER
    )
    worker_ctx = types.SimpleNamespace(
        service_name="followup", entrypoint=entrypoint, data=dict(data or {}), args=args
    )
    provider.worker_setup(worker_ctx)
    return provider, worker_ctx


def test_every_log_line_of_a_worker_names_its_trace():
    def run():
        provider, worker_ctx = _worker({"traceparent": PARENT})
        inside = _format()
        explicit = _format({"trace_id": "f" * 32})
        child = tracing.parse(worker_ctx.data["traceparent"])
        provider.worker_teardown(worker_ctx)
        return inside, explicit, child, _format()

    inside, explicit, child, after = isolated(run)
    assert inside["trace_id"] == TRACE
    assert explicit["trace_id"] == "f" * 32  # one message of a batch names its own
    # The worker's own RPCs carry its span (same trace, new span id) in the context data.
    assert tracing.trace_id_hex(child) == TRACE and child.span_id != 0x00F067AA0BA902B7
    assert "trace_id" not in after and "trace_ids" not in after
    assert "trace_id" not in isolated(_format)


def test_a_worker_without_a_traceparent_starts_a_trace():
    def run():
        provider, worker_ctx = _worker({})
        line = _format()
        provider.worker_teardown(worker_ctx)
        return line

    first, second = isolated(run), isolated(run)
    assert len(first["trace_id"]) == 32 and first["trace_id"] != second["trace_id"]


def test_the_outbox_keeps_the_trace_of_the_work_that_wrote_the_event():
    def run():
        provider, worker_ctx = _worker({"traceparent": PARENT})
        new = outbox.fields("followup.events", "FollowUpScheduled", {"event_id": "e1"}, NOW)
        update = outbox.append(
            {"$set": {"status": "done"}},
            [("followup.events", "FollowUpDone", {"event_id": "e2"})],
            NOW,
        )
        provider.worker_teardown(worker_ctx)
        return new, update, outbox.fields("x", "y", {"event_id": "e3"}, NOW)

    new, update, untraced = isolated(run)
    for text in (new["outbox_queue"][0], update["$push"]["outbox_queue"]["$each"][0]):
        entry = json.loads(text)
        assert tracing.trace_id_of(entry["traceparent"]) == TRACE, entry
    assert "traceparent" not in json.loads(untraced["outbox_queue"][0])  # no work, no trace


def test_a_batch_worker_gives_each_message_its_own_trace():
    other = f"00-{'a' * 32}-00f067aa0ba902b7-01"
    entrypoint = types.SimpleNamespace(
        method_name="handle_events",
        span_kind=tracing.CONSUMER,
        batch_traceparents=lambda args: [("e1", PARENT), ("e2", other), ("e3", None)],
    )

    def run():
        provider, worker_ctx = _worker({}, entrypoint, args=([],))
        line = _format()
        copies = [
            json.loads(outbox.fields("hcrm.stream", "T", {"event_id": e}, NOW)["outbox_queue"][0])
            for e in ("e1", "e2")
        ]
        by_event = tracing.trace_id_for("e1"), tracing.trace_id_for("e2")
        provider.worker_teardown(worker_ctx)
        return line, copies, by_event, tracing.current_trace_ids()

    line, copies, by_event, after = isolated(run)
    assert (
        TRACE in line["trace_ids"] and "a" * 32 in line["trace_ids"] and len(line["trace_ids"]) == 3
    )
    assert [tracing.trace_id_of(c["traceparent"]) for c in copies] == [TRACE, "a" * 32]
    assert by_event == (TRACE, "a" * 32) and after == []


def test_hcrm_trace_prints_the_path_through_the_services_logs(tmp_path, capsys):
    def line(process, ts, message, **extra):
        return json.dumps(
            {
                "ts": ts,
                "level": "INFO",
                "process": process,
                "logger": "x",
                "message": message,
                **extra,
            }
        )

    (tmp_path / "gateway.log").write_text(
        "\n".join(
            [
                "[2026-03-02 08:00:00 +0000] [1] [INFO] Booting worker",  # gunicorn's own text
                line(
                    "gateway",
                    "2026-03-02T08:00:00.030+00:00",
                    "request",
                    method="POST",
                    route="/api/v1/events",
                    status=202,
                    ms=25.0,
                    trace_id=TRACE,
                ),
                line(
                    "gateway",
                    "2026-03-02T08:00:00.031+00:00",
                    "request",
                    method="GET",
                    route="/healthz",
                    status=200,
                    ms=1.0,
                    trace_id="b" * 32,
                ),
            ]
        )
        + "\n"
    )
    (tmp_path / "intake.log").write_text(
        line(
            "intake",
            "2026-03-02T08:00:00.050+00:00",
            "message handled",
            queue="intake.inbound",
            event_type="PatientVisited",
            ms=12.0,
            outcome="ok",
            attempt=0,
            trace_id=TRACE,
        )
        + "\n"
    )
    (tmp_path / "analytics.log").write_text(
        line(
            "analytics",
            "2026-03-02T08:00:00.400+00:00",
            "facts voided",
            facts=2,
            trace_ids=["c" * 32, TRACE],
        )
        + "\n"
    )
    args = types.SimpleNamespace(id=PARENT, logs=str(tmp_path))
    assert trace_path.main(args) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(
        f"trace {TRACE}: 3 log line(s) from 3 process(es) (gateway, intake, analytics)"
    )
    body = "\n".join(out[2:])
    assert (
        body.index("POST /api/v1/events → 202")
        < body.index("handled PatientVisited from intake.inbound")
        < body.index("facts voided (facts=2)")
    )
    assert (
        "+0 ms" in out[2] and "25.0 ms" in out[2] and "+33 ms" in out[3]
    )  # each started `ms` before its line
    assert "/healthz" not in body
    assert out[-1] == "time spent (the lines' ms, by process): gateway 25.0 ms, intake 12.0 ms"
    assert trace_path.main(types.SimpleNamespace(id="e" * 32, logs=str(tmp_path))) == 1
    assert trace_path.main(types.SimpleNamespace(id="nope", logs=str(tmp_path))) == 2


def test_spans_go_to_a_collector_when_an_otlp_endpoint_is_configured(tmp_path):
    """Configuration only: with OTEL_EXPORTER_OTLP_ENDPOINT set, a process's spans are POSTed
    to <endpoint>/v1/traces (OTLP/HTTP); a child process, so this one's tracer stays as it is."""
    import http.server
    import os
    import subprocess
    import sys
    import threading

    received = []

    class Collector(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            received.append((self.path, self.rfile.read(int(self.headers["Content-Length"]))))
            self.send_response(200)
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Collector)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    script = (
        "from shared import tracing\n"
        "provider = tracing.setup('intake')\n"
        "with tracing.client_span('rpc analytics.summary'):\n"
        "    pass\n"
        "provider.force_flush()\n"
    )
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{server.server_port}")
    try:
        subprocess.run([sys.executable, "-c", script], env=env, check=True, timeout=60)
    finally:
        server.shutdown()
    assert [path for path, _ in received] == ["/v1/traces"]
    assert b"rpc analytics.summary" in received[0][1] and b"hcrm-intake" in received[0][1]
