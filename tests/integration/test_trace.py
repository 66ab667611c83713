"""One trace id end to end (issue 19): an event POSTed with a traceparent is followed by the
same trace id through the gateway, intake, followup and analytics — in their JSON log lines
and on the events' AMQP headers — and `hcrm trace` prints its path."""

import json
import urllib.request

import pytest

from shared import cli, tracing
from tests import factories
from tests.support import wait_until

pytestmark = pytest.mark.integration

TRACE = "0af7651916cd43dd8448eb211c80319c"
TRACEPARENT = f"00-{TRACE}-b7ad6b7169203331-01"


def traced_lines(process):
    """The JSON lines of a process's log that belong to TRACE."""
    found = []
    for line in process.output().splitlines():
        if TRACE in line:
            try:
                entry = json.loads(line)
            except ValueError:
                continue
            if entry.get("trace_id") == TRACE or TRACE in (entry.get("trace_ids") or ()):
                found.append(entry)
    return found


def test_one_trace_id_from_the_gateway_through_every_service(platform, capsys):
    services = {name: platform.start_service(name) for name in ("intake", "followup", "analytics")}
    gateway = platform.start_gateway()
    platform.witness("intake.events", queue="witness-intake")
    platform.witness("followup.events", queue="witness-followup")
    token = platform.token()

    event = factories.visit("TRACE-1")
    request = urllib.request.Request(
        platform.gateway_url + "/api/v1/events",
        data=json.dumps(event).encode(),
        method="POST",
        headers={
            "Content-Type": "application/json",
            "Authorization": f"Bearer {token}",
            "traceparent": TRACEPARENT,
        },
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 202
        assert response.headers["X-Trace-Id"] == TRACE  # the sender can quote it to ops

    # Every service the event reaches logs its work under the sender's trace id.
    wait_until(
        lambda: all(
            any(entry.get("message") == "message handled" for entry in traced_lines(process))
            for process in services.values()
        ),
        timeout=60,
        message=lambda: (
            "a 'message handled' line of the trace in each of intake, followup, "
            f"analytics; seen: { {name: len(traced_lines(p)) for name, p in services.items()} }"
        ),
    )
    requests = [entry for entry in traced_lines(gateway) if entry.get("message") == "request"]
    assert [(entry["route"], entry["status"]) for entry in requests] == [("/api/v1/events", 202)]
    handled = {
        name: {
            entry["event_type"]
            for entry in traced_lines(process)
            if entry.get("message") == "message handled"
        }
        for name, process in services.items()
    }
    assert "PatientVisited" in handled["intake"] and "PatientVisited" in handled["followup"]
    assert (
        "FollowUpScheduled" in handled["analytics"] or "PatientVisited" in handled["analytics"]
    ), handled
    assert any(
        entry.get("message") == "event recorded" for entry in traced_lines(services["intake"])
    )

    # The canonical event, and the follow-up it caused, carry it in their AMQP headers.
    def header_traces(queue):
        return [
            tracing.trace_id_of(headers.get("traceparent")) for _, headers in platform.drain(queue)
        ]

    canonical = wait_until(
        lambda: header_traces("witness-intake"), message="intake's canonical event"
    )
    assert canonical == [TRACE]
    scheduled = wait_until(
        lambda: header_traces("witness-followup"), message="followup's FollowUpScheduled"
    )
    assert set(scheduled) == {TRACE}

    # `hcrm trace` prints the path: the gateway's request first, then each service's work.
    capsys.readouterr()
    assert cli.main(["trace", TRACEPARENT, "--logs", str(platform.log_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"trace {TRACE}: ")
    body = out.split("\n", 2)[2]
    assert body.index("POST /api/v1/events → 202") < body.index(
        "handled PatientVisited from intake.inbound"
    )
    for name in ("gateway", "intake", "followup", "analytics"):
        assert f" {name} " in body, out
