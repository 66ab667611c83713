"""Every process exposes its metrics (docs/ARCHITECTURE.md rule 7), and the exposition passes
`promtool check metrics` (Debian's prometheus package, installed by `make test`)."""

import shutil
import subprocess
import urllib.request

import pytest

from tests import factories
from tests.support import free_port, wait_until

pytestmark = pytest.mark.integration

SERVICES = ("intake", "followup", "appointments", "complaints", "analytics")
# Rule 7: events in, out, failed, dead-lettered, handler time; the work that waits.
REQUIRED = {
    "intake": (
        "hcrm_events_in_total",
        "hcrm_events_out_total",
        "hcrm_events_failed_total",
        "hcrm_events_dead_lettered_total",
        "hcrm_handler_seconds",
        "hcrm_outbox_pending",
    ),
    "followup": (
        "hcrm_events_in_total",
        "hcrm_followups_due",
        "hcrm_followups_overdue",
        "hcrm_followups_created_total",
    ),
    "appointments": ("hcrm_appointments_booked_total", "hcrm_appointments_no_show_rate"),
    "complaints": (
        "hcrm_complaints_open",
        "hcrm_complaints_breached",
        "hcrm_complaint_ack_seconds",
    ),
    "analytics": ("hcrm_events_in_total", "hcrm_handler_seconds"),
}


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def promtool(text):
    done = subprocess.run(
        [shutil.which("promtool") or "promtool", "check", "metrics"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return done.returncode, done.stdout + done.stderr


def test_every_process_exposes_metrics_that_promtool_accepts(platform):
    ports = {}
    for service in SERVICES:
        ports[service] = free_port()
        platform.start_service(service, HCRM_METRICS_PORT=str(ports[service]))
    platform.start_gateway()
    platform.publish(factories.visit("MET-1"))
    platform.publish(factories.discharged("MET-2", "ADM-MET"))
    url = {s: f"http://127.0.0.1:{p}/metrics" for s, p in ports.items()}
    wait_until(
        lambda: "hcrm_events_in_total{" in scrape(url["followup"]),
        timeout=60,
        message="events through followup",
    )
    platform.http("GET", "/api/v1/patients", token=platform.token())
    url["gateway"] = f"{platform.gateway_url}/metrics"
    for process, address in url.items():
        text = scrape(address)
        for name in REQUIRED.get(
            process, ("hcrm_http_requests_total", "hcrm_http_request_seconds")
        ):
            assert f"# TYPE {name.removesuffix('_total')} " in text or f"# TYPE {name} " in text, (
                process,
                name,
            )
        code, problems = promtool(text)
        assert code == 0, f"{process}: {problems}"
