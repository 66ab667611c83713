"""ComplaintsService's entrypoints on its real store (in memory): opening, the state machine
with its history, service recovery from followup, deadlines and escalation, merges, the
weekly report."""

import datetime
import uuid

import pytest

from services.complaints.service import ComplaintsService
from shared.errors import BadRequest, Conflict, InvalidMessage, NotFound
from tests.service.fakes import inbound

UTC = datetime.UTC


@pytest.fixture
def complaints(make_service):
    return make_service(ComplaintsService)


def open_one(complaints, **overrides):
    fields = {
        "channel": "phone",
        "category": "waiting_time",
        "severity": "medium",
        "description": "waited three hours",
        "patient_id": "P-1",
        "department": "心内科",
        "opened_by": "ann",
        **overrides,
    }
    return complaints.worker.open_complaint(**fields)


def recovery_request(followup_id, satisfaction=1, patient_id="P-1"):
    """A ServiceRecoveryRequested as followup publishes it."""
    now = datetime.datetime.now(UTC).isoformat()
    return {
        "event_id": str(uuid.uuid4()),
        "event_type": "ServiceRecoveryRequested",
        "schema_version": 1,
        "occurred_at": now,
        "recorded_at": now,
        "service": "followup",
        "patient_id": patient_id,
        "data": {
            "followup_id": followup_id,
            "kind": "post_visit_call",
            "department": "心内科",
            "doctor_id": None,
            "due_at": now,
            "satisfaction": satisfaction,
            "complaint": None,
            "notes": "rude at the desk",
            "agent": "ann",
        },
    }


def test_opening_a_complaint_stores_it_with_its_deadlines_and_publishes_it(complaints):
    opened = open_one(complaints)
    assert opened["status"] == "open" and opened["ack_breach"] == "no"
    received = datetime.datetime.fromisoformat(opened["received_at"])
    assert datetime.datetime.fromisoformat(opened["ack_due_at"]) - received == datetime.timedelta(
        hours=24
    )

    assert complaints.worker.get_complaint(opened["complaint_id"])["history"][0]["action"] == "open"
    assert complaints.worker.list_complaints(status="open")["total"] == 1
    [envelope] = complaints.published.envelopes
    assert (envelope.exchange, envelope.routing_key) == (
        "complaints.events",
        "ComplaintOpened",
    )
    assert envelope.body["data"]["complaint_id"] == opened["complaint_id"]


def test_bad_input_is_refused_naming_every_field(complaints):
    future = (datetime.datetime.now(UTC) + datetime.timedelta(days=1)).isoformat()
    with pytest.raises(BadRequest) as raised:
        open_one(
            complaints,
            channel="pigeon",
            category="weather",
            severity="dire",
            received_at=future,
        )
    assert set(raised.value.details) == {
        "channel",
        "category",
        "severity",
        "received_at",
    }
    assert (
        complaints.db.complaints.count_documents({}) == 0 and complaints.published.envelopes == []
    )


def test_the_state_machine_keeps_its_history_and_refuses_illegal_steps(complaints):
    complaint_id = open_one(complaints)["complaint_id"]
    complaints.worker.assign(complaint_id, "lead", "bob")
    assert (
        complaints.worker.acknowledge(complaint_id, "bob", note="called back")["status"]
        == "acknowledged"
    )
    with pytest.raises(Conflict):
        complaints.worker.acknowledge(complaint_id, "bob")
    resolved = complaints.worker.resolve(complaint_id, "bob", resolution="apologised")
    assert resolved["status"] == "resolved" and resolved["resolution"] == "apologised"
    with pytest.raises(Conflict):
        complaints.worker.escalate(complaint_id, "bob")
    with pytest.raises(Conflict):
        complaints.worker.assign(complaint_id, "lead", "carol")

    history = complaints.worker.get_complaint(complaint_id)["history"]
    assert [h["action"] for h in history] == [
        "open",
        "assign",
        "acknowledge",
        "resolve",
    ]
    assert complaints.published.types() == [
        "ComplaintOpened",
        "ComplaintAcknowledged",
        "ComplaintResolved",
    ]
    with pytest.raises(NotFound):
        complaints.worker.get_complaint("no-such-complaint")


def test_a_service_recovery_request_opens_one_complaint_however_often_it_comes(
    complaints,
):
    request = recovery_request("FU-1", satisfaction=1)
    complaints.worker.handle_inbound(inbound(request))
    complaints.worker.handle_inbound(inbound(dict(request)))

    [complaint] = complaints.worker.list_complaints()["items"]
    assert complaint["followup_id"] == "FU-1" and complaint["channel"] == "follow_up"
    assert complaint["severity"] == "high"  # the worst score is urgent
    assert complaints.published.types() == ["ComplaintOpened"]


@pytest.mark.parametrize(
    "body",
    [
        ["not", "an", "event"],
        {"event_id": "E-1"},  # no event_type
        {
            "event_id": "E-2",
            "event_type": "ServiceRecoveryRequested",
            "occurred_at": "2026-03-02T10:00:00+08:00",
            "data": {},
        },  # no followup_id
    ],
)
def test_a_message_that_is_not_a_usable_event_is_invalid(complaints, body):
    with pytest.raises(InvalidMessage):
        complaints.worker.handle_inbound(inbound(body))
    assert complaints.db.complaints.count_documents({}) == 0


def test_other_event_types_are_ignored(complaints):
    complaints.worker.handle_inbound(inbound({"event_id": "E-3", "event_type": "PatientVisited"}))
    assert (
        complaints.db.complaints.count_documents({}) == 0 and complaints.published.envelopes == []
    )


def test_a_complaint_received_three_days_ago_is_breached_and_escalated_once(complaints):
    received = datetime.datetime.now(UTC) - datetime.timedelta(days=3)
    complaint_id = open_one(complaints, received_at=received.isoformat())["complaint_id"]
    now = datetime.datetime.now(UTC)
    assert complaints.worker.escalate_breaches(now) == 2  # both deadlines passed
    assert complaints.worker.escalate_breaches(now) == 0

    complaint = complaints.worker.get_complaint(complaint_id)
    assert complaint["status"] == "escalated"
    assert (complaint["ack_breach"], complaint["resolve_breach"]) == (
        "breached",
        "breached",
    )
    breaches = complaints.published.bodies("ComplaintSlaBreached")
    assert sorted(b["data"]["deadline"] for b in breaches) == ["acknowledge", "resolve"]
    assert complaints.published.types().count("ComplaintEscalated") == 1


def test_a_merge_files_the_retired_patients_complaints_under_the_survivor(complaints):
    complaint_id = open_one(complaints, patient_id="P-OLD")["complaint_id"]
    merge = {
        "event_id": "E-M",
        "event_type": "PatientsMerged",
        "occurred_at": "2026-03-09T12:00:00+08:00",
        "patient_id": "P-NEW",
        "data": {"merged_patient_id": "P-OLD"},
    }
    complaints.worker.handle_inbound(inbound(merge))

    assert complaints.worker.get_complaint(complaint_id)["patient_id"] == "P-NEW"
    # The survivor's.
    assert complaints.worker.list_complaints(patient_id="P-OLD")["total"] == 1
    assert open_one(complaints, patient_id="P-OLD")["patient_id"] == "P-NEW"


def test_the_weekly_report_counts_last_week_and_is_published_once(complaints):
    now = datetime.datetime.now(UTC)
    last_week = now - datetime.timedelta(days=7)
    open_one(complaints, received_at=last_week.isoformat())
    assert complaints.worker.publish_weekly_report(now) is True
    # Stored once: never sent twice.
    assert complaints.worker.publish_weekly_report(now) is False

    [report] = complaints.published.bodies("ServiceOpinionReportPublished")
    assert report["data"]["total_received"] == 1 and report["data"]["total_open"] == 1
    assert report["data"] == complaints.worker.weekly_report(report["data"]["week_start"])
    assert complaints.worker.weekly_report(format="csv").startswith("category,department,received")
    with pytest.raises(BadRequest):
        complaints.worker.weekly_report("last week")
