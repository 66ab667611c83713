"""The HL7 listener's per-message flow (services/hl7/receiving.py) with the real mapping and an
in-memory store: dedup, one insert with the outbox, AA/AE/AR, visits, oversized, replay; and
its configuration (services/hl7/config.py)."""

import datetime
import json
import zoneinfo

import pytest
from pymongo.errors import DuplicateKeyError

from services.hl7.config import Hl7Config, mapping_settings
from services.hl7.mapping import MappingSettings
from services.hl7.receiving import Receiver, _outbox_fields
from services.hl7.store import message_key
from shared.config import ConfigError, load_config

ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")
NOW = datetime.datetime(2026, 3, 2, 2, 0, tzinfo=datetime.UTC)


def a04(
    control_id="C1",
    mrn="M1001",
    visit_id="V1",
    patient_class="O",
    department="0301",
    charset="UNICODE UTF-8",
    name="陈^秀兰",
    version="2.5",
):
    msh18 = f"||||||{charset}" if charset else ""
    return (
        f"MSH|^~\\&|HIS|XHYY|HCRM|HCRM|20260302093000||ADT^A04^ADT_A01|{control_id}|P|{version}{msh18}\r"
        "EVN|A04|20260302093000||||20260302092500\r"
        f"PID|1||{mrn}^^^XHYY^MR||{name}||19580312|F|||||13900001111\r"
        f"PV1|1|{patient_class}|{department}^^^XHYY||||D017^刘^洋|||CARD|||||||||{visit_id}\r"
    )


class FakeOutbox:
    def __init__(self):
        self.handed = []

    def publish_or_leave(self, doc):
        self.handed.append(doc)


class FakeStore:
    """The Hl7Store's verbs over dicts; the unique key is enforced like the index."""

    def __init__(self):
        self.messages, self.visits, self.tallies = [], {}, {}
        self.outbox = FakeOutbox()
        self.hide_next_lookup = False  # simulate a concurrent duplicate (lookup misses it)

    def find_message(self, app, facility, control_id):
        if self.hide_next_lookup:
            self.hide_next_lookup = False
            return None
        return next(
            (
                m
                for m in self.messages
                if (m.get("sending_application"), m.get("sending_facility"), m.get("control_id"))
                == (app, facility, control_id)
            ),
            None,
        )

    def insert_message(self, doc):
        if doc.get("control_id") and any(
            (m.get("sending_application"), m.get("sending_facility"), m.get("control_id"))
            == (doc["sending_application"], doc["sending_facility"], doc["control_id"])
            for m in self.messages
        ):
            raise DuplicateKeyError("E11000")
        doc.setdefault("_id", f"{len(self.messages):024x}")
        self.messages.append(doc)
        return doc

    def has_earlier_visit(self, mrn, before, key):
        return any(
            v["mrn"] == mrn and v["received_at"] < before and v["message_key"] != key
            for v in self.visits.values()
        )

    def record_visits(self, key, mrns, received_at):
        for mrn in mrns:
            self.visits.setdefault(
                f"{key}\x1f{mrn}", {"mrn": mrn, "message_key": key, "received_at": received_at}
            )

    def tally(self, day, trigger, ack_code, duplicate=False):
        entry = self.tallies.setdefault((day, trigger, ack_code), {"messages": 0, "duplicates": 0})
        entry["duplicates" if duplicate else "messages"] += 1

    def messages_to_replay(self, since=None, control_id=None, after=None, limit=100):
        found = [
            m
            for m in self.messages
            if m.get("control_id") and (not control_id or m["control_id"] == control_id)
        ]
        return found[:limit]

    def record_replay(self, doc_id, changes, events, now):
        doc = next(m for m in self.messages if m["_id"] == doc_id)
        doc.update(changes)
        doc.setdefault("replayed_events", []).extend(events)
        return doc


def receiver(store=None, **settings):
    return Receiver(store or FakeStore(), MappingSettings(**settings), ZONE, 1024 * 1024)


def later(minutes):
    return NOW + datetime.timedelta(minutes=minutes)


def queue_of(doc):
    return [json.loads(entry) for entry in doc.get("outbox_queue", [])]


def test_an_a04_is_recorded_with_its_event_in_one_document_then_handed_to_the_sender():
    store = FakeStore()
    outcome = receiver(store).receive(a04().encode(), NOW)
    assert (outcome.ack_code, outcome.status, outcome.trigger, outcome.control_id) == (
        "AA",
        "accepted",
        "ADT^A04",
        "C1",
    )
    assert b"MSA|AA|C1" in outcome.ack and outcome.mrns == ("M1001",)
    [doc] = store.messages
    assert (
        doc["raw"] == a04().encode() and doc["status"] == "accepted" and doc["ack"] == outcome.ack
    )
    [entry] = queue_of(doc)
    assert (entry["exchange"], entry["routing_key"]) == ("hospital.events", "PatientVisited")
    assert entry["message"]["event_id"] == "HIS|XHYY|C1" and entry["message"]["source"] == "hl7"
    assert entry["message"]["data"]["visit_type"] == "first"
    assert doc["events"][0]["event_id"] == "HIS|XHYY|C1" and doc["outbox_state"] == "pending"
    assert store.outbox.handed == [] and outcome.doc is doc  # the service hands it over
    assert store.tallies == {("2026-03-02", "ADT^A04", "AA"): {"messages": 1, "duplicates": 0}}


def test_a_duplicate_control_id_is_answered_with_the_first_ack_and_recorded_once():
    store = FakeStore()
    first = receiver(store).receive(a04().encode(), NOW)
    again = receiver(store).receive(a04(department="9999").encode(), later(5))
    assert again.duplicate and again.ack == first.ack and again.doc is None
    assert len(store.messages) == 1
    assert store.tallies[("2026-03-02", "ADT^A04", "AA")] == {"messages": 1, "duplicates": 1}


def test_a_concurrent_duplicate_loses_the_insert_and_answers_the_winners_ack():
    store = FakeStore()
    first = receiver(store).receive(a04().encode(), NOW)
    store.hide_next_lookup = True  # the other connection's insert landed after our lookup
    racer = receiver(store).receive(a04().encode(), later(1))
    assert racer.duplicate and racer.ack == first.ack and len(store.messages) == 1


def test_a_later_visit_of_the_same_mrn_is_a_return_but_a_resend_is_not_its_own_earlier_visit():
    store = FakeStore()
    receiver(store).receive(a04("C1", visit_id="V1").encode(), NOW)
    second = receiver(store).receive(a04("C2", visit_id="V2").encode(), later(60))
    assert queue_of(second.doc)[0]["message"]["data"]["visit_type"] == "return"
    # A message whose visit was recorded but whose insert never happened (crash) is resent:
    # its own visit does not make it a return.
    store.record_visits(message_key("HIS", "XHYY", "C9"), ["M2"], later(61))
    resent = receiver(store).receive(a04("C9", mrn="M2", visit_id="V9").encode(), later(62))
    assert queue_of(resent.doc)[0]["message"]["data"]["visit_type"] == "first"


def test_content_that_breaks_the_contract_is_ae_kept_with_its_reason_and_publishes_nothing():
    store = FakeStore()
    outcome = receiver(store).receive(a04(mrn="").encode(), NOW)
    assert (outcome.ack_code, outcome.status, outcome.doc) == ("AE", "error", None)
    [doc] = store.messages
    assert "PID-3" in doc["reason"] and doc["error_location"] and "outbox_queue" not in doc
    assert b"MSA|AE|C1" in outcome.ack and b"\rERR|" in outcome.ack
    assert store.visits == {}


def test_another_message_type_is_ar_and_garbage_is_ar_without_a_key():
    store = FakeStore()
    oru = a04().replace("ADT^A04^ADT_A01", "ORU^R01^ORU_R01").encode()
    assert receiver(store).receive(oru, NOW).ack_code == "AR"
    garbage = receiver(store).receive(b"hello, is this the HIS?", NOW)
    assert (garbage.ack_code, garbage.trigger) == ("AR", "unreadable") and b"MSA|AR" in garbage.ack
    assert "control_id" not in store.messages[-1] and store.messages[-1]["status"] == "rejected"
    # Two garbage messages do not collide (no dedup key).
    receiver(store).receive(b"more garbage", NOW)
    assert len(store.messages) == 3


def test_an_ignored_trigger_is_aa_with_no_event():
    transfer = a04().replace("ADT^A04^ADT_A01", "ADT^A02^ADT_A02").replace("EVN|A04", "EVN|A02")
    outcome = receiver().receive(transfer.encode(), NOW)
    assert (outcome.ack_code, outcome.doc) == ("AA", None)


def test_gb18030_is_read_by_msh18_and_answered_in_gb18030():
    raw = a04(charset="GB 18030-2000").encode("gb18030")
    outcome = receiver().receive(raw, NOW)
    assert outcome.ack_code == "AA" and outcome.charset == "gb18030"
    assert queue_of(outcome.doc)[0]["message"]["data"]["patient"]["name"] == "陈秀兰"
    assert outcome.ack.decode("gb18030").startswith("MSH|^~\\&|HCRM|HCRM|HIS|XHYY|")


def test_an_oversized_frame_with_a_readable_header_is_ar_else_unanswered():
    store = FakeStore()
    head = a04().encode()[:120]  # cut inside a segment: the reader gets whole segments only
    outcome = receiver(store).receive(head, NOW, oversized_bytes=2_000_000)
    assert outcome.ack_code == "AR" and b"MSA|AR|C1" in outcome.ack
    assert store.messages[0]["raw_truncated"] and store.messages[0]["raw_size"] == 2_000_000
    assert receiver(store).receive(b"\x00" * 100, NOW, oversized_bytes=2_000_000).ack is None


def test_several_events_share_one_outbox_in_order():
    events = [
        {"event_id": "a", "event_type": "PatientsMerged"},
        {"event_id": "b", "event_type": "PatientRegistered"},
    ]
    fields = _outbox_fields(events, NOW)
    assert [json.loads(e)["routing_key"] for e in fields["outbox_queue"]] == [
        "PatientsMerged",
        "PatientRegistered",
    ]
    assert fields["outbox_sent"] == 0 and fields["outbox_state"] == "pending"


def test_replay_publishes_what_a_fixed_table_now_maps_and_tells_changed_from_unchanged():
    store = FakeStore()
    receiver(store).receive(a04("C1", patient_class="X").encode(), NOW)  # unknown class: AE
    receiver(store).receive(
        a04("C2", mrn="M2", visit_id="V2").encode(), NOW
    )  # accepted, department "0301"
    fixed = receiver(store, patient_classes={"X": "outpatient"}, departments={"0301": "心内科"})
    summary = fixed.replay(later(10))
    assert (summary["messages"], summary["new"], summary["changed"], summary["unchanged"]) == (
        2,
        1,
        1,
        0,
    )
    assert summary["changed_events"] == [
        {"control_id": "C2", "event_id": "HIS|XHYY|C2", "event_type": "PatientVisited"}
    ]
    ae = store.messages[0]
    assert ae["status"] == "accepted" and ae["status_before_replay"] == "error"
    assert ae["ack_code"] == "AE"  # the first ACK is what a resend gets, still
    assert [d["_id"] for d in store.outbox.handed] == [ae["_id"], store.messages[1]["_id"]]
    again = fixed.replay(later(20))
    assert (again["new"], again["changed"], again["unchanged"]) == (0, 0, 2)


def test_replay_dry_run_changes_nothing():
    store = FakeStore()
    receiver(store).receive(a04("C1").encode(), NOW)
    summary = receiver(store, departments={"0301": "心内科"}).replay(later(1), dry_run=True)
    assert (
        summary["changed"] == 1
        and store.outbox.handed == []
        and "replayed_at" not in store.messages[0]
    )


# -- configuration --------------------------------------------------------------------------------
def test_config_defaults_and_tables_from_the_environment():
    config = load_config(
        "hl7",
        Hl7Config,
        env={
            "HL7_MRN_TYPE_CODES": "MR,MEDREC",
            "HL7_DEPARTMENTS": '{"0301": "心内科"}',
            "HL7_PORT": "2576",
        },
        path="/dev/null",
    )
    assert (config["host"], config["port"], config["max_frame_bytes"]) == (
        "127.0.0.1",
        2576,
        1024 * 1024,
    )
    settings = mapping_settings(config)
    assert settings.mrn_type_codes == ("MR", "MEDREC") and settings.departments == {
        "0301": "心内科"
    }
    assert settings.dispositions["20"] == "deceased"  # the defaults stay under a table given


@pytest.mark.parametrize(
    "env, key",
    [
        ({"HL7_DISPOSITIONS": '{"99": "gone"}'}, "hl7.dispositions"),
        ({"HL7_DEFAULT_CHARSET": "klingon"}, "hl7.default_charset"),
        ({"HL7_DEPARTMENTS": "not json"}, "hl7.departments"),
        ({"HL7_PORT": "0"}, "hl7.port"),
        ({"HL7_MRN_TYPE_CODES": "[]"}, "hl7.mrn_type_codes"),
    ],
)
def test_config_refuses_bad_values_naming_the_key(env, key):
    with pytest.raises(ConfigError, match=key):
        load_config("hl7", Hl7Config, env=env, path="/dev/null")
