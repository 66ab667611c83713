"""IntakeService's entrypoints on its real store (in memory): hospital events in, patients
kept, canonical events out through the outbox."""

import datetime
import json
import sys

import hypothesis
import pytest
from hypothesis import strategies

from services.intake.service import IntakeService
from shared.errors import ConflictingDuplicate, InvalidMessage, NotFound
from tests import factories
from tests.service.fakes import inbound


@pytest.fixture
def intake(make_service):
    return make_service(IntakeService)


def deliver(intake, event, routing_key=None):
    intake.worker.handle_hospital_events([inbound(event, routing_key)])


def test_a_visit_creates_the_patient_and_publishes_its_canonical_event(intake):
    event = factories.visit("M-1", phone="138-0013-8000", region="海淀区")
    deliver(intake, event)

    found = intake.worker.find_patients(mrn="M-1")
    assert found["total"] == 1
    patient = found["items"][0]
    assert (
        patient["name"] == "王芳" and patient["visit_count"] == 1 and patient["region"] == "海淀区"
    )
    assert (
        intake.worker.find_patients(phone="13800138000")["items"][0]["patient_id"]
        == patient["patient_id"]
    )
    assert intake.worker.get_patient(patient["patient_id"])["mrn"] == "M-1"

    [envelope] = intake.published.envelopes
    assert (envelope.exchange, envelope.routing_key) == (
        "intake.events",
        "PatientVisited",
    )
    assert envelope.body["patient_id"] == patient["patient_id"]
    assert (
        envelope.body["source_event_id"] == event["event_id"]
        and envelope.body["service"] == "intake"
    )
    assert envelope.message_id == envelope.body["event_id"]
    # Published and marked so: the relay has nothing left to send.
    assert intake.db.events.find_one({"outbox_state": "pending"}) is None


def test_a_duplicate_is_recorded_and_published_once(intake):
    event = factories.admitted("M-9", "A-1")
    deliver(intake, event)
    deliver(intake, json.loads(json.dumps(event)))  # the same event, redelivered

    assert intake.db.events.count_documents({}) == 1
    assert intake.published.types() == ["PatientAdmitted"]
    assert intake.worker.find_patients(mrn="M-9")["total"] == 1


def test_a_duplicate_with_other_content_is_refused_and_changes_nothing(intake):
    event = factories.visit("M-2", region="海淀区")
    deliver(intake, event)
    changed = json.loads(json.dumps(event))
    changed["data"]["patient"]["region"] = "朝阳区"

    with pytest.raises(ConflictingDuplicate):
        deliver(intake, changed)
    patient = intake.worker.find_patients(mrn="M-2")["items"][0]
    assert patient["region"] == "海淀区"
    assert len(intake.published.envelopes) == 1
    # The RPC the gateway asks before accepting an HTTP event says the same.
    canonical_form = intake.db.events.find_one({})
    assert intake.worker.conflicting_duplicate(
        {
            "source": canonical_form["source"],
            "event_id": event["event_id"],
            "event_type": "PatientVisited",
            "occurred_at": event["occurred_at"],
            "data": changed["data"],
        }
    )
    assert (
        intake.worker.conflicting_duplicate(
            {
                "source": "his",
                "event_id": "never-seen",
                "event_type": "PatientVisited",
                "occurred_at": event["occurred_at"],
                "data": event["data"],
            }
        )
        is None
    )


# Bodies that are not JSON never reach the handler: the consumer rejects them first.
MALFORMED = [
    case for case in factories.malformed_events() if case[0] not in ("not json", "invalid utf-8")
]


@pytest.mark.parametrize("label, raw, routing_key", MALFORMED, ids=[case[0] for case in MALFORMED])
def test_an_event_that_breaks_the_contract_is_invalid_and_stores_nothing(
    intake, label, raw, routing_key
):
    with pytest.raises(InvalidMessage):
        deliver(intake, json.loads(raw), routing_key)
    assert intake.db.events.count_documents({}) == 0
    assert intake.published.envelopes == []


@pytest.mark.parametrize("label, raw, routing_key", MALFORMED, ids=[case[0] for case in MALFORMED])
def test_the_consumer_check_refuses_what_the_handler_refuses(label, raw, routing_key):
    """The entrypoint's `check` (run as each message arrives, so a poison message never joins
    a batch) refuses every malformed event, and hands a good one on already validated."""
    (entrypoint,) = IntakeService.handle_hospital_events.nameko_entrypoints
    with pytest.raises(InvalidMessage):
        entrypoint.check(inbound(json.loads(raw), routing_key))
    good = entrypoint.check(inbound(factories.visit("M-CHECK")))
    assert (good.mrn, good.event_type) == ("M-CHECK", "PatientVisited")


def test_a_checked_message_is_recorded_as_an_unchecked_one(intake):
    (entrypoint,) = IntakeService.handle_hospital_events.nameko_entrypoints
    message = inbound(factories.visit("M-4"))
    message.checked = entrypoint.check(message)
    intake.worker.handle_hospital_events([message])
    assert intake.db.patients.find_one({"mrn": "M-4"})["view"]["visit_count"] == 1


def test_an_event_type_other_than_its_routing_key_is_invalid(intake):
    with pytest.raises(InvalidMessage) as raised:
        deliver(intake, factories.visit("M-3"), routing_key="PatientAdmitted")
    assert "event_type" in raised.value.errors
    assert intake.db.patients.count_documents({}) == 0


def test_a_prospect_becomes_the_patient_who_later_visits(intake):
    deliver(intake, factories.consultation("+86 139 0000 1111", name="赵敏"))
    prospect = intake.worker.find_patients(phone="13900001111")["items"][0]
    assert prospect["stage"] == "prospect" and prospect["mrn"] is None

    deliver(intake, factories.visit("M-77", name="赵敏", phone="139-0000-1111", day=3))
    patient = intake.worker.find_patients(mrn="M-77")["items"][0]
    assert patient["patient_id"] == prospect["patient_id"] and patient["stage"] == "new"
    assert intake.worker.find_patients(phone="13900001111")["total"] == 1
    assert {e.body["patient_id"] for e in intake.published.envelopes} == {prospect["patient_id"]}


def test_the_profile_takes_the_latest_fields_and_the_timeline_is_in_time_order(intake):
    first = factories.visit("M-1", day=2, region="海淀区")
    later = factories.visit("M-1", day=5, visit_type="return", region="朝阳区")
    earlier = factories.registered("M-1", day=1, region="西城区", gender="female")
    for event in (later, first, first, earlier, later):
        deliver(intake, event)

    patient = intake.worker.find_patients(mrn="M-1")["items"][0]
    assert patient["region"] == "朝阳区" and patient["gender"] == "female"
    assert patient["visit_count"] == 2 and patient["stage"] == "returning"
    timeline = intake.worker.timeline(patient["patient_id"])
    assert [e["event_type"] for e in timeline["items"]] == [
        "PatientRegistered",
        "PatientVisited",
        "PatientVisited",
    ]
    assert timeline["total"] == 3


def test_a_merge_retires_one_record_and_publishes_the_retired_id(intake):
    deliver(intake, factories.visit("M-OLD", phone="13711112222", day=2))
    retired_id = intake.worker.find_patients(mrn="M-OLD")["items"][0]["patient_id"]
    deliver(intake, factories.visit("M-NEW", phone="13733334444", day=3))
    deliver(intake, factories.merged("M-NEW", "M-OLD", phone="13733334444"))

    survivor = intake.worker.find_patients(mrn="M-NEW")["items"][0]
    assert (
        intake.worker.find_patients(mrn="M-OLD")["items"][0]["patient_id"] == survivor["patient_id"]
    )
    assert intake.worker.get_patient(retired_id)["patient_id"] == survivor["patient_id"]
    [merge] = intake.published.bodies("PatientsMerged")
    assert merge["patient_id"] == survivor["patient_id"]
    assert merge["data"]["merged_patient_id"] == retired_id


def test_unknown_patients_are_not_found(intake):
    with pytest.raises(NotFound):
        intake.worker.get_patient("no-such-patient")
    with pytest.raises(NotFound):
        intake.worker.timeline("no-such-patient")
    assert intake.worker.find_patients(mrn="nobody") == {"items": [], "total": 0}


def test_an_event_left_pending_by_a_failed_publish_is_sent_by_the_relay(intake, monkeypatch):
    def broker_down(messages):
        raise ConnectionError("broker down")

    monkeypatch.setattr(intake.published, "publish_all", broker_down)
    deliver(intake, factories.visit("M-5"))  # recorded: the handler does not fail
    assert intake.db.events.find_one({})["outbox_state"] == "pending"
    monkeypatch.undo()

    # The relay takes over once the writer's claim has run out.
    later = datetime.datetime.now(datetime.UTC) + datetime.timedelta(minutes=5)
    assert intake.store.outbox.relay(now=later) == 1
    assert intake.published.types() == ["PatientVisited"]
    assert intake.db.events.find_one({})["outbox_state"] == "published"


# -- batches: the events that arrived together are recorded in bulk ---------------------------
def deliver_batch(intake, events):
    intake.worker.handle_hospital_events([inbound(event) for event in events])


def _views(intake):
    """Every patient as the API shows it, by MRN, without the record ids (they are random)."""
    found = intake.worker.find_patients(limit=100)["items"]
    return {p["mrn"]: {k: v for k, v in p.items() if k != "patient_id"} for p in found}


def _history():
    """A history of several people: visits, a stay, a prospect who comes, a merge."""
    return [
        factories.consultation("139-0000-0001", event_id="c-1"),
        factories.visit("M-1", phone="138-0000-0001", event_id="v-1"),
        factories.admitted("M-2", "A-1", event_id="a-1"),
        factories.visit("M-3", phone="139-0000-0001", event_id="v-3", day=2),
        factories.discharged("M-2", "A-1", event_id="d-1"),
        factories.visit("M-1", phone="138-0000-0001", event_id="v-2", day=4),
        factories.registered("M-4", event_id="r-4"),
        factories.merged("M-1", "M-4", event_id="m-1"),
        factories.visit("M-4", event_id="v-4", day=10),
    ]


def test_a_batch_records_what_the_same_events_one_by_one_record(intake, make_service, lookups):
    one_by_one = make_service(IntakeService)
    for event in _history():
        deliver(one_by_one, event)
    deliver_batch(intake, _history())

    assert _views(intake) == _views(one_by_one)
    assert sorted(intake.published.types()) == sorted(one_by_one.published.types())
    assert intake.db.events.count_documents({}) == len(_history())
    assert intake.db.events.find_one({"outbox_state": "pending"}) is None


def test_a_batch_costs_a_few_store_round_trips_not_a_few_per_event(intake):
    counted = []
    for collection, method in (
        ("patients", "find"),
        ("patients", "insert_many"),
        ("events", "find"),
        ("events", "insert_many"),
    ):
        real = getattr(intake.db[collection], method)
        setattr(intake.db[collection], method, _counting(real, f"{collection}.{method}", counted))

    # 20 people new to intake: one read of their MRNs, one of prospects with their phones, one
    # insert of their records, one of the events, one read of their phones (the events in hand
    # are not read back).
    deliver_batch(
        intake,
        [factories.visit(f"M-{i}", phone=f"138{i:08d}", event_id=f"v-{i}") for i in range(20)],
    )
    assert sorted(counted) == sorted(
        ["patients.find"] * 3 + ["patients.insert_many", "events.insert_many"]
    )
    counted.clear()

    # The same 20 people again: one read of them, one insert, one read of their events (and
    # one bulk write of their projections).
    deliver_batch(intake, [factories.visit(f"M-{i}", event_id=f"w-{i}", day=3) for i in range(20)])

    assert counted == ["patients.find", "events.insert_many", "events.find"]
    assert intake.worker.find_patients(mrn="M-7")["items"][0]["visit_count"] == 2


def _counting(method, name, counted):
    """`method`, counting its calls by intake's store and insert_new. The outbox's own writes
    are not counted: in these tests no sender thread gathers them, so they go per document."""

    def call(*args, **kwargs):
        if sys._getframe(1).f_code.co_filename.endswith(("intake/store.py", "shared/store.py")):
            counted.append(name)
        return method(*args, **kwargs)

    return call


def test_a_duplicate_inside_a_batch_is_recorded_and_published_once(intake):
    event = factories.visit("M-5", event_id="v-5")
    deliver_batch(intake, [event, json.loads(json.dumps(event)), factories.visit("M-6")])

    assert intake.db.events.count_documents({}) == 2
    assert sorted(intake.published.types()) == ["PatientVisited", "PatientVisited"]
    assert intake.worker.find_patients(mrn="M-5")["items"][0]["visit_count"] == 1


def test_a_bad_event_fails_its_batch_before_anything_is_written(intake):
    bad = factories.visit("M-8")
    del bad["data"]["visited_at"]

    with pytest.raises(InvalidMessage):
        deliver_batch(intake, [factories.visit("M-7"), bad])
    # Nothing written: the consumer now handles each message alone, and only `bad` is refused.
    assert intake.db.events.count_documents({}) == 0 and intake.published.envelopes == []


def test_a_conflicting_duplicate_in_a_batch_fails_it_after_the_others_are_recorded(intake):
    first = factories.visit("M-9", event_id="v-9", region="海淀区")
    deliver(intake, first)
    changed = json.loads(json.dumps(first))
    changed["data"]["patient"]["region"] = "朝阳区"

    with pytest.raises(ConflictingDuplicate):
        deliver_batch(intake, [changed, factories.visit("M-10", event_id="v-10")])
    # The other event is recorded; handled alone again, it is a plain duplicate.
    assert intake.worker.find_patients(mrn="M-10")["total"] == 1
    deliver_batch(intake, [factories.visit("M-10", event_id="v-10")])
    assert intake.worker.find_patients(mrn="M-9")["items"][0]["region"] == "海淀区"


# Each make_service call makes a service on a database of its own: nothing is shared between
# the generated examples, so the fixture being function-scoped does not matter.
@hypothesis.settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(order=strategies.permutations(range(len(_history()))), cuts=strategies.data())
def test_any_order_and_any_batching_give_the_same_patients(make_service, order, cuts):
    """The consumer hands over what arrived together, in the order it arrived: whatever both
    are, the patients are those of the events handled one by one in their own order."""
    one_by_one, batched = make_service(IntakeService), make_service(IntakeService)
    for event in _history():
        deliver(one_by_one, event)
    events = [_history()[i] for i in order]
    while events:
        size = cuts.draw(strategies.integers(1, len(events)))
        deliver_batch(batched, events[:size])
        events = events[size:]

    assert _views(batched) == _views(one_by_one)
    assert batched.db.events.count_documents({}) == len(_history())
