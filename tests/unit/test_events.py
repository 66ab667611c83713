"""The inbound contract (docs/EVENTS.md) as the schemas enforce it."""

import pytest

from shared.events import EventInvalid, dump_event, load_event
from shared.phones import phone_digits
from tests import factories


def errors_of(event):
    with pytest.raises(EventInvalid) as caught:
        load_event(event)
    return caught.value.errors


@pytest.mark.parametrize(
    "make",
    [
        lambda: factories.visit("M1"),
        lambda: factories.registered("M1"),
        lambda: factories.consultation("139 0000 1111"),
        lambda: factories.admitted("M1", "A1"),
        lambda: factories.discharged("M1", "A1"),
    ],
)
def test_each_event_type_loads_and_dumps_to_the_same_contract(make):
    event = make()
    loaded = load_event(event)
    assert dump_event(loaded)["data"] == event["data"] | dump_event(loaded)["data"]
    assert loaded["schema_version"] == 1


def test_unknown_fields_are_ignored_in_envelope_and_data():
    event = factories.visit("M1")
    event["trace"] = "x"
    event["data"]["ward_bed"] = 12
    body = dump_event(load_event(event))
    assert "trace" not in body and "ward_bed" not in body["data"]


@pytest.mark.parametrize("label,raw,_key", factories.malformed_events()[3:])
def test_every_malformed_json_event_names_its_bad_field(label, raw, _key):
    import json

    assert errors_of(json.loads(raw)), label


def test_a_time_without_offset_is_rejected():
    event = factories.visit("M1")
    event["occurred_at"] = "2026-03-02T10:00:00"
    assert "occurred_at" in errors_of(event)


def test_wrong_types_are_errors_not_coercions():
    event = factories.visit("M1", contact_consent="true")
    event["schema_version"] = "1"
    errors = errors_of(event)
    assert set(errors) == {"data.patient.contact_consent", "schema_version"}


def test_consultation_needs_name_and_phone_but_no_mrn():
    event = factories.consultation("139 0000 1111")
    assert load_event(event)["data"]["patient"].get("mrn") is None
    del event["data"]["patient"]["phone"]
    assert "data.patient.phone" in errors_of(event)


def test_every_error_of_an_event_is_reported_at_once():
    errors = errors_of({"event_type": "PatientVisited", "data": {"patient": {}}})
    assert {"event_id", "occurred_at", "source", "data.patient.mrn", "data.visit_id"} <= set(errors)


@pytest.mark.parametrize(
    "phone,key",
    [
        ("+86 139 0000 1111", "13900001111"),
        ("0086-139-0000-1111", "13900001111"),
        ("139-0000-1111", "13900001111"),
        ("+1 415 555 0100", "14155550100"),
        ("010 8888 6666", "01088886666"),
    ],
)
def test_phone_key_is_the_national_digits(phone, key):
    assert phone_digits(phone) == key
