"""The stream's minimal copies (shared/minimise.py): an allow-list per event type, so nothing
that names a person (name, phone, MRN, birth date, free text) ever reaches hcrm.analytics."""

import datetime
import json
import zoneinfo

import pytest

from shared import minimise
from shared.events import INBOUND_EVENT_TYPES, SCHEDULING_TYPES
from tests import factories

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
NAME, PHONE, MRN, BIRTH = "王芳", "138-0013-8000", "MRN-SECRET-1", "1961-05-04"
FREE_TEXT = "患者说医生态度不好 13800138000"


def canonical(inbound, patient_id="p1", **data):
    """An inbound event as intake publishes it."""
    return {
        "event_id": "e-" + inbound["event_id"],
        "event_type": inbound["event_type"],
        "schema_version": 1,
        "occurred_at": inbound["occurred_at"],
        "recorded_at": inbound["occurred_at"],
        "service": "intake",
        "source": inbound["source"],
        "source_event_id": inbound["event_id"],
        "patient_id": patient_id,
        "data": {**inbound["data"], **data},
    }


def person(**extra):
    return {
        "name": NAME,
        "phone": PHONE,
        "birth_date": BIRTH,
        "gender": "female",
        "region": "海淀区",
        "contact_consent": True,
        "marketing_consent": True,
        **extra,
    }


def no_secret_in(copy):
    text = json.dumps(copy, ensure_ascii=False)
    for secret in (
        NAME,
        "13800138000",
        "138-0013-8000",
        MRN,
        BIRTH,
        FREE_TEXT,
        "entered in error",
        "医生",
    ):
        assert secret not in text, (secret, text)


def service_event(event_type, service, **data):
    return {
        "event_id": "x1",
        "event_type": event_type,
        "schema_version": 1,
        "occurred_at": factories.at(5),
        "recorded_at": factories.at(5),
        "service": service,
        "patient_id": "p1",
        "data": data,
    }


def test_a_visit_keeps_ids_times_codes_department_and_the_persons_gender_region_and_age_band():
    inbound = factories.visit(MRN, day=2, **person())
    inbound["data"]["doctor_name"] = "张医生"
    copy = minimise.minimal_copy(canonical(inbound), TZ)
    assert copy["data"] == {
        "visit_id": inbound["data"]["visit_id"],
        "department": "心内科",
        "visit_type": "first",
        "source_channel": "friend_referral",
        "visited_at": inbound["data"]["visited_at"],
        "patient": {"gender": "female", "region": "海淀区", "age_band": "60-79"},
    }
    assert copy["patient_id"] == "p1" and copy["service"] == "intake" and copy["source"] == "his"
    assert set(copy) == set(minimise.ENVELOPE) | {"data"}
    no_secret_in(copy)
    assert "张医生" not in json.dumps(copy, ensure_ascii=False)


@pytest.mark.parametrize(
    "inbound",
    [
        factories.registered(MRN, **person()),
        factories.admitted(MRN, "A-1", **person()),
        factories.discharged(MRN, "A-1", **person()),
        factories.visit_cancelled(MRN, "V-1", **person()),
        factories.admission_cancelled(MRN, "A-1", **person()),
        factories.discharge_cancelled(MRN, "A-1", **person()),
    ],
    ids=lambda e: e["event_type"],
)
def test_each_intake_type_keeps_no_name_phone_mrn_birth_date_or_reason(inbound):
    copy = minimise.minimal_copy(canonical(inbound), TZ)
    no_secret_in(copy)
    assert set(copy["data"]) <= set(minimise.published_fields(inbound["event_type"]))


def test_a_consultation_keeps_its_channel_and_agent_not_its_topic_or_the_prospects_phone():
    inbound = factories.consultation("13800138000", name=NAME)
    inbound["data"].update(topic=FREE_TEXT, agent_id="agent-7")
    copy = minimise.minimal_copy(canonical(inbound), TZ)
    assert copy["data"]["channel"] == "phone" and copy["data"]["agent_id"] == "agent-7"
    assert copy["data"]["patient"] == {"gender": "unknown", "region": None, "age_band": "unknown"}
    no_secret_in(copy)


def test_a_merge_keeps_the_retired_records_id_not_its_mrn():
    inbound = factories.merged("SURVIVOR-1", MRN)
    copy = minimise.minimal_copy(canonical(inbound, merged_patient_id="p-retired"), TZ)
    assert copy["data"] == {"merged_patient_id": "p-retired"}


def test_intakes_inbound_scheduling_types_are_not_on_the_stream():
    for event_type in SCHEDULING_TYPES:
        assert minimise.minimal_copy({"event_type": event_type, "data": {}}) is None
    assert set(INBOUND_EVENT_TYPES) - set(SCHEDULING_TYPES) <= set(minimise.STREAM_FIELDS)


def test_an_unknown_type_or_field_never_reaches_the_stream():
    assert minimise.minimal_copy(service_event("SomethingNew", "followup", note=FREE_TEXT)) is None
    copy = minimise.minimal_copy(
        service_event(
            "FollowUpScheduled",
            "followup",
            followup_id="f1",
            kind="post_visit_call",
            due_at=factories.at(6),
            reason="visit V-1",
            new_field=NAME,
        )
    )
    assert copy["data"] == {
        "followup_id": "f1",
        "kind": "post_visit_call",
        "due_at": factories.at(6),
    }


def test_followup_events_keep_outcomes_and_scores_never_notes_or_complaints():
    completed = minimise.minimal_copy(
        service_event(
            "FollowUpCompleted",
            "followup",
            followup_id="f1",
            kind="post_visit_call",
            department="骨科",
            due_at=factories.at(6),
            outcome="reached",
            satisfaction=2,
            agent="li.na",
            attempts=1,
            notes=FREE_TEXT,
        )
    )
    assert completed["data"]["outcome"] == "reached" and completed["data"]["satisfaction"] == 2
    recovery = minimise.minimal_copy(
        service_event(
            "ServiceRecoveryRequested",
            "followup",
            followup_id="f1",
            kind="post_visit_call",
            due_at=factories.at(6),
            satisfaction=1,
            complaint=FREE_TEXT,
            notes=FREE_TEXT,
            agent="li.na",
        )
    )
    no_secret_in(completed), no_secret_in(recovery)
    assert recovery["data"]["satisfaction"] == 1


@pytest.mark.parametrize(
    "reason, kept",
    [
        ("erased", True),
        ("visit_cancelled", True),
        ("病人说" + NAME + "不来了", False),
        ("a13800138000", False),
    ],
)
def test_a_cancellation_keeps_its_reason_only_when_it_is_a_services_own_code(reason, kept):
    for event_type, service in (
        ("FollowUpCancelled", "followup"),
        ("AppointmentCancelled", "appointments"),
        ("ComplaintCancelled", "complaints"),
    ):
        copy = minimise.minimal_copy(service_event(event_type, service, reason=reason))
        assert ("reason" in copy["data"]) is kept


def test_appointment_and_complaint_events_keep_no_free_text_and_no_staff_notes():
    booked = minimise.minimal_copy(
        service_event(
            "AppointmentBooked",
            "appointments",
            appointment_id="a1",
            department="骨科",
            starts_at=factories.at(9),
            duration_minutes=15,
            status="booked",
            channel="phone",
            actor="li.na",
            reason=FREE_TEXT,
        )
    )
    assert booked["data"] == {
        "appointment_id": "a1",
        "department": "骨科",
        "starts_at": factories.at(9),
        "duration_minutes": 15,
        "status": "booked",
        "channel": "phone",
    }
    resolved = minimise.minimal_copy(
        service_event(
            "ComplaintResolved",
            "complaints",
            complaint_id="c1",
            category="attitude",
            severity="high",
            status="resolved",
            received_at=factories.at(5),
            note=FREE_TEXT,
            resolution=FREE_TEXT,
            description=FREE_TEXT,
            actor="wang",
        )
    )
    no_secret_in(booked), no_secret_in(resolved)
    assert resolved["data"]["category"] == "attitude"


def test_the_erasure_event_carries_ids_only():
    copy = minimise.minimal_copy(
        service_event(
            "PatientErased", "intake", erasure_id="er1", patient_ids=["p1", "p0"], mrns=[MRN]
        )
    )
    assert copy["data"] == {"erasure_id": "er1", "patient_ids": ["p1", "p0"]}


def test_the_age_band_is_the_one_on_the_day_of_the_event_in_the_hospitals_zone():
    day = datetime.date(2026, 3, 2)
    assert minimise.age_band("2008-03-02", day) == "18-39"
    assert minimise.age_band("2008-03-03", day) == "0-17"
    assert minimise.age_band(None, day) == "unknown"
    # 23:30 UTC on 1 March is 2 March in Shanghai: the 18th birthday counts.
    inbound = factories.visit(MRN, birth_date="2008-03-02")
    inbound["data"]["visited_at"] = "2026-03-01T23:30:00+00:00"
    assert minimise.minimal_copy(canonical(inbound), TZ)["data"]["patient"]["age_band"] == "18-39"


def test_the_asyncapi_document_lists_exactly_the_types_and_fields_of_the_allow_list():
    from shared import asyncapi, outbound

    listed = [t for types in asyncapi.STREAM_EVENT_TYPES.values() for t in types]
    assert sorted(listed) == sorted(minimise.STREAM_FIELDS)
    messages = asyncapi.document()["channels"]["analyticsStream"]["messages"]
    for event_type in minimise.STREAM_FIELDS:
        data = messages[f"stream{event_type}"]["payload"]["properties"]["data"]["properties"]
        # Of the allow-list, what the type publishes (shared/outbound.py): the list is written
        # per service, and ComplaintOpened, say, has no `actor`.
        declared = outbound.EVENT_TYPES[event_type].field_names
        assert set(data) == set(minimise.published_fields(event_type)) & declared
