"""Intake against the real RabbitMQ and a real NX-27017 process."""

import json

import pytest
from pymongo import MongoClient

from tests import factories
from tests.support import wait_until

pytestmark = pytest.mark.integration


def test_every_malformed_message_waits_in_rejected_with_its_reason(platform):
    platform.start_service("intake")
    cases = factories.malformed_events()
    for _label, raw, key in cases:
        platform.publish(None, routing_key=key, raw=raw)
    wait_until(
        lambda: platform.queue_depth("hospital.events.rejected") == len(cases),
        timeout=30,
        message="every malformed message in hospital.events.rejected",
    )
    copies = platform.drain_copies("hospital.events.rejected")
    rejected = [(body, headers) for body, headers, _ in copies]
    assert len(rejected) == len(cases)
    assert sorted(body for body, _ in rejected) == sorted(raw for _, raw, _ in cases)
    # Each copy under its own id (shared.messaging.copy_id): no crash, no repeat.
    assert len({copy for _, _, copy in copies} - {None}) == len(cases)
    for body, headers in rejected:
        assert headers["x-hcrm-reason"], body
        assert json.loads(headers["x-hcrm-errors"])
    reasons = {body: headers["x-hcrm-errors"] for body, headers in rejected}
    by_label = {label: reasons[raw] for label, raw, _ in cases}
    assert "data.patient.name" in by_label["5,000-character name"]
    assert "occurred_at" in by_label["time without offset"]
    assert "event_type" in by_label["unknown event type"]
    assert "_body" in by_label["not json"]
    # Nothing loops: the inbound queue is empty and nothing went to the dead letters.
    assert platform.queue_depth("intake.inbound") == 0
    assert platform.queue_depth("intake.dlq") == 0


def test_a_poison_message_is_rejected_alone_and_never_fails_a_batch(platform):
    """Malformed messages queued among good ones, so that they arrive together: each is
    refused as it arrives (BatchReliableConsumer's check), once, and no batch of good events
    fails for it (which would handle its neighbours a second time, one by one)."""
    platform.start_service("intake").stop()  # its queue exists; now fill it while it is down
    cases = factories.malformed_events()
    good = [factories.visit(f"B-{i:04d}", phone=f"1370009{i:04d}") for i in range(60)]
    messages = [(e["event_type"], json.dumps(e).encode()) for e in good]
    for index, (_label, raw, key) in enumerate(cases):
        messages.insert(index * 3, (key, raw))
    for key, raw in messages:
        platform.publish(None, routing_key=key, raw=raw)

    intake = platform.start_service("intake")
    wait_until(
        lambda: (
            platform.queue_depth("hospital.events.rejected") == len(cases)
            and platform.queue_depth("intake.inbound") == 0
        ),
        timeout=60,
        message="every malformed message rejected and the inbound queue empty",
    )
    db = MongoClient(
        platform.database_uri("intake"), serverSelectionTimeoutMS=3000, socketTimeoutMS=30000
    )
    wait_until(
        lambda: (
            db.get_default_database().patients.count_documents({"mrn": {"$regex": "^B-"}})
            == len(good)
        ),
        timeout=30,
        message="every good visit recorded",
    )
    rejected = platform.drain("hospital.events.rejected")
    assert sorted(body for body, _ in rejected) == sorted(raw for _, raw, _ in cases)
    assert '"message handled"' in intake.output()
    assert "a batch failed" not in intake.output()


def test_duplicates_count_once_and_the_profile_takes_the_latest_fields(platform):
    platform.start_service("intake")
    platform.start_gateway()
    token = platform.token()
    first = factories.visit("M-1", day=2, region="海淀区")
    later = factories.visit("M-1", day=5, visit_type="return", region="朝阳区")
    earlier = factories.registered("M-1", day=1, region="西城区", gender="female")
    for event in (later, first, first, earlier, later):
        platform.publish(event)

    def patient():
        status, body = platform.http("GET", "/api/v1/patients?mrn=M-1", token=token)
        items = body["items"] if status == 200 else []
        return items[0] if items and items[0]["visit_count"] == 2 and items[0]["gender"] else None

    record = wait_until(patient, timeout=30, message="patient M-1 with both visits")
    assert record["region"] == "朝阳区"  # the latest occurred_at wins, not the last to arrive
    assert record["gender"] == "female"  # a field only an older event states stays
    assert record["stage"] == "returning"
    status, timeline = platform.http(
        "GET", f"/api/v1/patients/{record['patient_id']}/timeline", token=token
    )
    assert status == 200
    assert [e["event_type"] for e in timeline["items"]] == [
        "PatientRegistered",
        "PatientVisited",
        "PatientVisited",
    ]


def test_a_prospect_is_linked_to_the_patient_who_later_visits(platform):
    platform.start_service("intake")
    platform.start_gateway()
    token = platform.token()
    platform.publish(factories.consultation("+86 139 0000 1111", name="赵敏"))
    wait_until(
        lambda: (
            platform.http("GET", "/api/v1/patients?phone=13900001111", token=token)[1]["total"] == 1
        ),
        message="the prospect",
    )
    _, body = platform.http("GET", "/api/v1/patients?phone=13900001111", token=token)
    prospect = body["items"][0]
    assert prospect["stage"] == "prospect" and prospect["mrn"] is None
    platform.publish(factories.visit("M-77", name="赵敏", phone="139-0000-1111", day=3))

    def linked():
        _, found = platform.http("GET", "/api/v1/patients?mrn=M-77", token=token)
        return found["items"][0] if found["total"] and found["items"][0]["visit_count"] else None

    patient = wait_until(linked, message="the visit linked to the prospect")
    assert patient["patient_id"] == prospect["patient_id"]
    assert patient["stage"] == "new"
    _, all_patients = platform.http("GET", "/api/v1/patients?phone=13900001111", token=token)
    assert all_patients["total"] == 1


def test_canonical_events_are_published_with_patient_id_on_the_stream(platform):
    platform.start_service("intake")
    platform.start_service("analytics")  # it appends the stream's (minimal) copies
    event = factories.admitted("M-9", "A-1")
    platform.publish(event)
    platform.publish(event)  # a duplicate is not published again
    wait_until(lambda: platform.queue_depth("hcrm.analytics") >= 1, message="the stream entry")
    from kombu import Connection

    with Connection(platform.amqp_uri) as connection:
        channel = connection.channel()
        channel.basic_qos(0, 10, False)
        received = []
        channel.basic_consume(
            "hcrm.analytics", callback=received.append, arguments={"x-stream-offset": "first"}
        )
        wait_until(
            lambda: connection.drain_events(timeout=1) or received,
            timeout=10,
            message="a message from the stream",
        )
    body = json.loads(received[0].body)
    assert body["event_type"] == "PatientAdmitted"
    assert body["service"] == "intake" and body["patient_id"]
    assert body["source_event_id"] == event["event_id"]
    assert platform.queue_depth("hcrm.analytics") == 1


def test_a_bad_config_value_stops_the_process_naming_the_key(platform):
    process = platform.start_service("intake", wait=False, INTAKE_RECOVERING_DAYS="soon")
    process.popen.wait(timeout=60)
    assert process.popen.returncode == 2
    assert "intake.recovering_days" in process.output()
