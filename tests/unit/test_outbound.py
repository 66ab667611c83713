"""shared/outbound.py: every event a service publishes is declared once, and built by it."""

import ast
import datetime
import importlib
import pathlib
import re

import pytest

from services.intake import domain as intake_domain
from shared import events, minimise, outbound, topology
from shared.privacy import ERASED_EVENT
from tests import factories

SERVICES = pathlib.Path(__file__).resolve().parents[2] / "services"
NOW = datetime.datetime(2026, 12, 1, 9, 30, tzinfo=datetime.UTC)
# What every consumer reads of a service's message (docs/EVENTS.md), in the order services
# have always written it; intake's also name the sender and its id of the event.
ENVELOPE = (
    "event_id",
    "event_type",
    "schema_version",
    "occurred_at",
    "recorded_at",
    "service",
    "patient_id",
    "data",
)
INTAKE_ENVELOPE = (
    "event_id",
    "event_type",
    "schema_version",
    "occurred_at",
    "recorded_at",
    "service",
    "source",
    "source_event_id",
    "patient_id",
    "data",
)
# A string constant names an event type when it is CamelCase and states a fact (past tense,
# or ...Due / ...NoShow / ...CheckedIn): "FollowUp" (a prefix) or "Hl7Error" (a class) do not.
EVENT_TYPE_NAME = re.compile(r"^(?:[A-Z][a-z0-9]+){2,}$")
FACT = re.compile(r"(?:ed|Sent|Withdrawn|Due|NoShow|CheckedIn)$")


def data_of(event_type, **values):
    """Data with every declared field of the type (None where no value is given)."""
    declared = outbound.EVENT_TYPES[event_type]
    return {field.name: values.get(field.name) for field in declared.fields}


def build(event_type, data, **options):
    kind = outbound.EVENT_TYPES.get(event_type)
    if kind is not None and kind.sourced:
        options = {"source": "his", "source_event_id": "s1", **options}
    return outbound.build(event_type, data, event_id="e1", patient_id="p1", now=NOW, **options)


# -- declarations ---------------------------------------------------------------------------
def test_every_service_exchange_has_its_declared_types_and_nothing_else_publishes():
    assert {outbound.exchange_of(s) for s in outbound.PUBLISHING_SERVICES} == set(
        topology.SERVICE_EXCHANGES
    )
    for service in outbound.PUBLISHING_SERVICES:
        store = importlib.import_module(f"services.{service}.store")
        assert outbound.exchange_of(service) == store.EXCHANGE  # where its outbox publishes
        assert outbound.types_of(service), service
    for kind in outbound.EVENT_TYPES.values():
        assert (kind.exchange, kind.routing_key) == (f"{kind.service}.events", kind.name)
        assert kind.version == events.SCHEMA_VERSION
    with pytest.raises(ValueError, match="analytics"):
        outbound.exchange_of("analytics")


def test_intake_republishes_every_inbound_type_with_its_fields_and_the_erasure():
    intake = {kind.name: kind for kind in outbound.types_of("intake")}
    assert set(intake) == set(events.INBOUND_EVENT_TYPES) | {ERASED_EVENT}
    for name, schema in events.DATA_SCHEMAS.items():
        declared = schema._declared_fields
        assert set(declared) <= intake[name].field_names
        assert {f for f, field in declared.items() if field.required} <= intake[name].required_names
    assert intake["PatientsMerged"].field_names - set(
        events.DATA_SCHEMAS["PatientsMerged"]._declared_fields
    ) == {"merged_patient_id"}
    assert all(kind.sourced for kind in intake.values())
    assert not any(
        kind.sourced for kind in outbound.EVENT_TYPES.values() if kind.service != "intake"
    )


def test_what_consumers_subscribe_to_is_declared_on_that_exchange():
    for subscription in topology.SUBSCRIPTIONS:
        for exchange, key in subscription.bindings:
            if exchange in topology.SERVICE_EXCHANGES and key != "#":
                kind = outbound.EVENT_TYPES.get(key)
                assert kind is not None and kind.exchange == exchange, (subscription.queue, key)


def test_every_type_on_the_stream_is_declared_with_the_fields_the_allow_list_names():
    assert set(minimise.STREAM_FIELDS) <= set(outbound.EVENT_TYPES)
    for event_type in minimise.STREAM_FIELDS:
        service = outbound.EVENT_TYPES[event_type].service
        of_service = set().union(*(kind.field_names for kind in outbound.types_of(service)))
        # The allow-list is written per service: each field it names is one the service sends.
        assert set(minimise.published_fields(event_type)) <= of_service, event_type


# -- building -------------------------------------------------------------------------------
def test_a_message_has_exactly_the_envelope_consumers_read():
    message = build(
        "FollowUpCancelled", data_of("FollowUpCancelled", followup_id="f1", reason="visited")
    )
    assert tuple(message) == ENVELOPE
    assert message["event_type"] == "FollowUpCancelled" and message["service"] == "followup"
    assert message["schema_version"] == events.SCHEMA_VERSION == 1
    assert message["occurred_at"] == message["recorded_at"] == NOW.isoformat()
    assert (message["event_id"], message["patient_id"]) == ("e1", "p1")
    assert message["data"]["reason"] == "visited"
    # The stream's copy keeps the ids and times of it (shared/minimise.py).
    assert set(minimise.minimal_copy(message)) == set(ENVELOPE)


def test_intake_names_the_sender_and_keeps_the_inbound_occurred_at():
    inbound = events.dump_event(events.load_event(factories.visit("M1", event_id="v1")))
    message = intake_domain.canonical_message("c1", inbound, "p1", NOW)
    assert tuple(message) == INTAKE_ENVELOPE
    assert (message["source"], message["source_event_id"]) == ("his", "v1")
    assert message["occurred_at"] == inbound["occurred_at"] != message["recorded_at"]
    assert message["data"] is inbound["data"]


def test_every_inbound_event_intake_accepts_can_be_republished():
    samples = [
        factories.visit("M1"),
        factories.consultation("13800138000"),
        factories.registered("M1"),
        factories.admitted("M1", "A1"),
        factories.discharged("M1", "A1"),
        factories.visit_cancelled("M1", "V1"),
        factories.admission_cancelled("M1", "A1"),
        factories.discharge_cancelled("M1", "A1"),
        factories.appointment_scheduled("M1", "AP1", factories.at(5)),
        factories.appointment_withdrawn("M1", "AP1"),
        factories.appointment_missed("M1", "AP1"),
    ]
    assert {s["event_type"] for s in samples} == set(events.INBOUND_EVENT_TYPES) - {
        "PatientsMerged"
    }
    for sample in samples:
        inbound = events.dump_event(events.load_event(sample))
        assert intake_domain.canonical_message("c1", inbound, "p1", NOW)["data"] == inbound["data"]
    merge = events.dump_event(events.load_event(factories.merged("M1", "M2")))
    merge["data"] = dict(merge["data"], merged_patient_id="p2")
    assert (
        intake_domain.canonical_message("c1", merge, "p1", NOW)["data"]["merged_patient_id"] == "p2"
    )


def test_an_undeclared_type_is_refused():
    with pytest.raises(
        ValueError, match="'FollowUpForgotten' is not a declared outbound event type"
    ):
        build("FollowUpForgotten", {})


def test_a_missing_field_is_refused_by_name():
    data = data_of("ComplaintSlaBreached")
    del data["deadline"], data["severity"]
    with pytest.raises(ValueError, match=r"ComplaintSlaBreached: data lacks .* deadline, severity"):
        build("ComplaintSlaBreached", data)


def test_an_undeclared_field_is_refused_by_name():
    data = dict(data_of("CampaignMessageSent"), phone="13800138000")
    with pytest.raises(
        ValueError, match=r"CampaignMessageSent: data has undeclared field\(s\) phone"
    ):
        build("CampaignMessageSent", data)


def test_an_optional_field_may_be_left_out_and_a_required_one_may_be_null():
    data = data_of("ServiceRecoveryRequested")
    del data["low_items"]
    assert build("ServiceRecoveryRequested", data)["data"]["satisfaction"] is None
    assert (
        "rescheduled"
        in build("AppointmentBooked", data_of("AppointmentBooked", rescheduled=True))["data"]
    )


def test_only_intake_names_a_source_and_intake_must():
    with pytest.raises(ValueError, match="FollowUpScheduled: source and source_event_id are only"):
        build("FollowUpScheduled", data_of("FollowUpScheduled"), source="his", source_event_id="x")
    with pytest.raises(ValueError, match="PatientErased: source and source_event_id are required"):
        outbound.build(ERASED_EVENT, data_of(ERASED_EVENT), event_id="e1", patient_id="p1", now=NOW)


# -- the code ---------------------------------------------------------------------------------
def _named_types(package):
    """The event type names a service's code spells out."""
    names = set()
    for source in (SERVICES / package).rglob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(encoding="utf-8"))):
            if (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and EVENT_TYPE_NAME.match(node.value)
                and FACT.search(node.value)
            ):
                names.add(node.value)
    return names


def test_every_event_type_the_services_name_is_declared_or_inbound():
    known = set(outbound.EVENT_TYPES) | set(events.INBOUND_EVENT_TYPES)
    for package in (
        p.name for p in SERVICES.iterdir() if p.is_dir() and not p.name.startswith("_")
    ):
        assert _named_types(package) <= known, (package, _named_types(package) - known)


def test_every_declared_type_is_one_its_service_publishes():
    # Intake republishes the inbound types by variable, and PatientErased (shared.privacy).
    for service in set(outbound.PUBLISHING_SERVICES) - {"intake"}:
        declared = {kind.name for kind in outbound.types_of(service)}
        assert declared <= _named_types(service), (service, declared - _named_types(service))


def test_the_asyncapi_document_has_a_channel_per_service_with_the_declared_types():
    from shared import asyncapi

    doc = asyncapi.document()
    for service in outbound.PUBLISHING_SERVICES:
        channel = doc["channels"][f"{service}Events"]
        assert channel["address"] == outbound.exchange_of(service)
        assert list(channel["messages"]) == [kind.name for kind in outbound.types_of(service)]
        for kind in outbound.types_of(service):
            envelope, body = channel["messages"][kind.name]["payload"]["allOf"]
            schema = doc["components"]["schemas"][envelope["$ref"].rsplit("/", 1)[1]]
            assert schema["required"] == list(kind.envelope)
            data = body["properties"]["data"]
            assert set(data["properties"]) == kind.field_names
            assert set(data.get("required", ())) == kind.required_names
        assert doc["operations"][f"receive{service.title()}Events"]["action"] == "receive"
