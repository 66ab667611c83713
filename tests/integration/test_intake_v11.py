"""Intake and contract v1.1 against the real RabbitMQ and a real store: corrections, merges,
the new scheduling types and conflicting duplicates, over AMQP and HTTP."""

import json
import urllib.parse

import pytest

from tests import factories
from tests.support import wait_until

pytestmark = pytest.mark.integration


def _patient(platform, token, mrn, check=lambda p: True):
    status, body = platform.http("GET", f"/api/v1/patients?mrn={mrn}", token=token)
    items = body["items"] if status == 200 else []
    return items[0] if items and check(items[0]) else None


def test_a_cancelled_visit_and_discharge_no_longer_count_in_any_order(platform):
    platform.start_service("intake")
    platform.start_gateway()
    token = platform.token()
    # The cancel arrives before the visit it cancels; the discharge's cancel after it.
    for event in (
        factories.visit_cancelled("M-1", "V-2", day=5, hour=20),
        factories.visit("M-1", day=2, visit_id="V-1"),
        factories.visit("M-1", day=5, visit_id="V-2", visit_type="return"),
        factories.admitted("M-1", "A-1", day=6),
        factories.discharged("M-1", "A-1", day=8),
        factories.discharge_cancelled("M-1", "A-1", day=8, hour=20),
    ):
        platform.publish(event)
    record = wait_until(
        lambda: _patient(platform, token, "M-1", lambda p: p["stage"] == "inpatient"),
        timeout=30,
        message="M-1 an inpatient again, its cancelled visit not counted",
    )
    assert record["visit_count"] == 1
    _status, timeline = platform.http(
        "GET", f"/api/v1/patients/{record['patient_id']}/timeline", token=token
    )
    assert "VisitCancelled" in [e["event_type"] for e in timeline["items"]]  # history keeps it
    platform.publish(factories.discharged("M-1", "A-1", day=12))  # discharged again, later
    wait_until(
        lambda: _patient(
            platform, token, "M-1", lambda p: p["stage"] == "recovered" and p["visit_count"] == 1
        ),
        timeout=30,
        message="the later discharge counts",
    )


def test_a_merge_leaves_one_patient_found_by_either_mrn_in_any_order(platform):
    platform.start_service("intake")
    platform.start_gateway()
    platform.witness("intake.events")
    token = platform.token()
    platform.publish(
        factories.visit("M-S", day=2, visit_id="V-S", name="陈秀兰", phone="139-0000-0001")
    )
    platform.publish(
        factories.visit("M-R", day=3, visit_id="V-R", name="陈秀兰", phone="139-0000-0002")
    )
    wait_until(lambda: _patient(platform, token, "M-R"), timeout=30, message="both recorded")
    platform.publish(factories.merged("M-S", "M-R", name="陈秀兰", phone="139-0000-0001"))
    # An event of the retired MRN that comes after the merge joins the survivor.
    platform.publish(
        factories.visit("M-R", day=10, visit_id="V-R2", name="陈秀兰", phone="139-0000-0001")
    )
    survivor = wait_until(
        lambda: _patient(platform, token, "M-S", lambda p: p["visit_count"] == 3),
        timeout=30,
        message="the survivor with the union of visits",
    )
    assert survivor["merged_mrns"] == ["M-R"]
    by_retired = _patient(platform, token, "M-R")
    assert by_retired["patient_id"] == survivor["patient_id"]
    _status, listed = platform.http(
        "GET", "/api/v1/patients?q=" + urllib.parse.quote("陈秀兰"), token=token
    )
    assert listed["total"] == 1  # one person
    merges = wait_until(
        lambda: [
            m
            for m in (json.loads(b) for b, _ in platform.drain("witness"))
            if m["event_type"] == "PatientsMerged"
        ],
        timeout=30,
        message="PatientsMerged on intake.events",
    )
    assert merges[0]["patient_id"] == survivor["patient_id"]
    assert (
        merges[0]["data"]["merged_patient_id"]
        and merges[0]["data"]["merged_patient_id"] != survivor["patient_id"]
    )
    # A merge that arrives before the retired MRN was ever seen: its events go to the survivor.
    platform.publish(factories.merged("M-T", "M-U", day=4))
    platform.publish(factories.visit("M-U", day=5, visit_id="V-U"))
    platform.publish(factories.visit("M-T", day=3, visit_id="V-T"))
    merged = wait_until(
        lambda: _patient(platform, token, "M-T", lambda p: p["visit_count"] == 2),
        timeout=30,
        message="the early merge's survivor with both visits",
    )
    assert _patient(platform, token, "M-U")["patient_id"] == merged["patient_id"]


def test_a_conflicting_duplicate_is_reported_and_an_exact_one_is_silent(platform):
    platform.start_service("intake")
    platform.start_gateway()
    token = platform.token()
    first = factories.visit("M-D", event_id="E-1", department="心内科")
    platform.publish(first)
    wait_until(lambda: _patient(platform, token, "M-D"), timeout=30, message="the first event")
    changed = dict(first, data=dict(first["data"], department="骨科"))
    platform.publish(first)  # exact: nothing to say
    platform.publish(changed)  # conflicting: a copy in the rejected queue with the reason
    wait_until(
        lambda: platform.queue_depth("hospital.events.rejected") == 1,
        timeout=30,
        message="the conflicting duplicate in hospital.events.rejected",
    )
    ((body, headers),) = platform.drain("hospital.events.rejected")
    assert json.loads(body)["data"]["department"] == "骨科"
    assert headers["x-hcrm-reason"].startswith("event_id: conflicting_duplicate")
    # Over HTTP: 409 naming the first event's time; the exact duplicate is still 202.
    status, answer = platform.http("POST", "/api/v1/events", body=changed, token=token)
    assert status == 409 and answer["error"]["code"] == "conflicting_duplicate"
    assert answer["error"]["details"]["first_recorded_at"]
    status, _ = platform.http("POST", "/api/v1/events", body=first, token=token)
    assert status == 202
    record = _patient(platform, token, "M-D")
    assert record["visit_count"] == 1
    assert platform.queue_depth("intake.dlq") == 0


def test_scheduling_types_are_accepted_and_kept_off_the_stream_under_their_inbound_name(platform):
    platform.start_service("intake")
    platform.start_gateway()
    token = platform.token()
    platform.witness("intake.events")
    event = factories.appointment_scheduled("M-A", "S-1", factories.at(20, 9), day=10)
    event["data"].pop("duration_minutes")
    status, _ = platform.http("POST", "/api/v1/events", body=event, token=token)
    assert status == 202
    out = wait_until(lambda: platform.drain("witness"), timeout=30, message="the canonical event")
    canonical = json.loads(out[0][0])
    assert canonical["event_type"] == "AppointmentScheduled"
    assert canonical["data"]["duration_minutes"] == 15
    status, answer = platform.http(
        "POST",
        "/api/v1/events",
        token=token,
        body=dict(event, event_id="bad", data=dict(event["data"], starts_at="2026-03-20 09:00")),
    )
    assert status == 400 and "+08:00" in answer["error"]["details"]["data.starts_at"][0]
