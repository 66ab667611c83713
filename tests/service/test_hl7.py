"""Hl7Service's entrypoints on its real store (in memory): an MLLP frame or the gateway's POST
in, its ACK out, the contract's events published to hospital.events; duplicates, content
errors, replay, the admin page's reads and erasure."""

import base64
import uuid

import pytest

from services.hl7.config import mapping_settings
from services.hl7.service import Hl7Service
from services.intake.service import IntakeService
from shared.errors import BadRequest, InvalidMessage
from shared.events import load_event
from tests.service.fakes import config_for, inbound


@pytest.fixture
def hl7(make_service):
    # The mapping's settings, as the MappingTables dependency builds them from the config.
    return make_service(Hl7Service, mapping=mapping_settings(config_for(Hl7Service)))


def unique(prefix):
    return f"{prefix}{uuid.uuid4().hex[:8].upper()}"


def a04(control_id, mrn, visit_id=None, message_type="ADT^A04^ADT_A01", version="2.5"):
    return (
        f"MSH|^~\\&|HIS|XHYY|HCRM|HCRM|20260302093000||{message_type}|{control_id}|P|{version}"
        "||||||UNICODE UTF-8\r"
        "EVN|A04|20260302093000||||20260302092500\r"
        f"PID|1||{mrn}^^^XHYY^MR||陈^秀兰||19580312|F|||^^北京市^北京市^^CHN^H^^东城区||13900001111\r"
        f"PV1|1|O|0301^^^XHYY||||D017^刘^洋|||CARD|||||||||{visit_id or 'V' + control_id}\r"
    ).encode()


def msa(ack):
    """(MSA-1, MSA-2) of an ACK."""
    segment = next(s for s in ack.decode("utf-8", "replace").split("\r") if s.startswith("MSA"))
    return tuple(segment.split("|")[1:3])


def test_an_a04_is_acknowledged_stored_and_published_as_a_contract_event(hl7):
    control_id, mrn = unique("C"), unique("M")
    ack = hl7.worker.handle_frame(a04(control_id, mrn))
    assert msa(ack) == ("AA", control_id)

    stored = hl7.db.messages.find_one({"control_id": control_id})
    assert stored["status"] == "accepted" and stored["mrns"] == [mrn]
    [envelope] = hl7.published.envelopes
    assert (envelope.exchange, envelope.routing_key) == (
        "hospital.events",
        "PatientVisited",
    )
    event = load_event(envelope.body)  # what intake accepts, or raises
    assert event["source"] == "hl7" and event["data"]["patient"]["mrn"] == mrn
    assert hl7.db.messages.find_one({"control_id": control_id})["outbox_state"] == "published"


def test_the_published_event_makes_the_patient_in_intake(hl7, make_service):
    intake = make_service(IntakeService)
    mrn = unique("M")
    hl7.worker.handle_frame(a04(unique("C"), mrn))
    [envelope] = hl7.published.envelopes
    intake.worker.handle_hospital_events([inbound(envelope.body, envelope.routing_key)])
    [patient] = intake.worker.find_patients(mrn=mrn)["items"]
    assert patient["name"] == "陈秀兰" and patient["visit_count"] == 1


def test_a_duplicate_is_answered_with_the_first_ack_and_nothing_doubles(hl7):
    message = a04(unique("C"), unique("M"))
    first = hl7.worker.handle_frame(message)
    assert hl7.worker.handle_frame(message) == first
    answer = hl7.worker.receive(base64.b64encode(message).decode())
    assert answer["duplicate"] is True and base64.b64decode(answer["ack_base64"]) == first
    assert hl7.db.messages.count_documents({}) == 1
    assert len(hl7.published.envelopes) == 1


def test_a_duplicate_racing_in_on_another_connection_is_stopped_by_the_unique_index(
    hl7, monkeypatch
):
    message = a04(unique("C"), unique("M"))
    first = hl7.worker.handle_frame(message)
    found, lookups = hl7.store.find_message, []

    def misses_once(*key):
        # The second connection looks before the first one's insert is visible.
        lookups.append(key)
        return None if len(lookups) == 1 else found(*key)

    monkeypatch.setattr(hl7.store, "find_message", misses_once)
    assert hl7.worker.handle_frame(message) == first
    # Its insert hit the unique index, and the first message's ACK was read back.
    assert len(lookups) == 2
    assert hl7.db.messages.count_documents({}) == 1
    assert len(hl7.published.envelopes) == 1


def test_a_second_visit_of_the_same_mrn_is_a_return(hl7):
    mrn = unique("M")
    hl7.worker.handle_frame(a04(unique("C"), mrn))
    hl7.worker.handle_frame(a04(unique("C"), mrn))
    assert [e.body["data"]["visit_type"] for e in hl7.published.envelopes] == [
        "first",
        "return",
    ]


@pytest.mark.parametrize(
    "message, code, status",
    [
        (a04("NO-MRN", ""), "AE", "error"),  # content error: no PID-3
        (
            a04("ORU", "M-1", message_type="ORU^R01"),
            "AR",
            "rejected",
        ),  # a type not taken
        (a04("OLD", "M-2", version="2.1"), "AR", "rejected"),  # a version not taken
    ],
)
def test_content_errors_are_ae_and_other_types_ar_with_nothing_published(
    hl7, message, code, status
):
    ack = hl7.worker.handle_frame(message)
    assert msa(ack)[0] == code
    stored = hl7.db.messages.find_one({})
    assert stored["status"] == status and stored["reason"] and "outbox_queue" not in stored
    assert hl7.published.envelopes == []


def test_garbage_and_oversized_messages_are_rejected(hl7):
    assert msa(hl7.worker.handle_frame(b"GET / HTTP/1.1\r\nHost: hl7\r\n\r\n"))[0] == "AR"
    padding = b"NTE|1||" + b"x" * hl7.config["max_frame_bytes"] + b"\r"
    answer = hl7.worker.receive(base64.b64encode(a04(unique("C"), unique("M")) + padding).decode())
    assert answer["ack_code"] == "AR" and answer["status"] == "rejected"
    with pytest.raises(BadRequest):
        hl7.worker.receive("not base64!")
    assert hl7.published.envelopes == []


def test_recent_and_counts_show_the_messages_without_their_text(hl7):
    hl7.worker.handle_frame(a04(unique("C"), unique("M")))
    hl7.worker.handle_frame(a04("NO-MRN", ""))
    recent = hl7.worker.recent()
    assert recent["total"] == 2 and {i["ack_code"] for i in recent["items"]} == {
        "AA",
        "AE",
    }
    assert all("raw" not in item for item in recent["items"])
    counts = hl7.worker.counts()
    assert counts["by_ack_code"] == {"AA": 1, "AE": 1} and counts["by_trigger"] == {"ADT^A04": 2}


def test_replay_publishes_the_same_events_again(hl7):
    control_id = unique("C")
    hl7.worker.handle_frame(a04(control_id, unique("M")))
    dry = hl7.worker.replay(control_id=control_id, dry_run=True)
    assert (dry["messages"], dry["unchanged"], dry["new"]) == (1, 1, 0)
    assert len(hl7.published.envelopes) == 1

    done = hl7.worker.replay(control_id=control_id)
    assert done["events"] == 1
    first, again = hl7.published.envelopes
    assert again.body["event_id"] == first.body["event_id"]  # intake sees a duplicate
    assert hl7.db.messages.find_one({"control_id": control_id})["replays"] == 1
    with pytest.raises(BadRequest):
        hl7.worker.replay(since="2026-03-02T00:00:00")  # no offset


def test_an_erasure_removes_the_text_of_the_persons_messages(hl7):
    mrn = unique("M")
    control_id = unique("C")
    hl7.worker.handle_frame(a04(control_id, mrn))
    hl7.worker.handle_intake_event(
        inbound({"event_id": "E-1", "event_type": "PatientErased", "data": {"mrns": [mrn]}})
    )
    stored = hl7.db.messages.find_one({"control_id": control_id})
    assert stored["raw"] is None and stored["raw_removed"] == "erased" and stored["mrns"] == []
    assert hl7.db.visits.count_documents({"mrn": mrn}) == 0
    # A resend: its first ACK.
    assert msa(hl7.worker.handle_frame(a04(control_id, mrn)))[0] == "AA"
    with pytest.raises(InvalidMessage):
        hl7.worker.handle_intake_event(inbound(["not", "an", "event"]))
