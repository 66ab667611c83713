"""Realistic inbound events for tests and the simulator (shared.simulate uses the same)."""

import datetime
import uuid

TZ = datetime.timezone(datetime.timedelta(hours=8))


def at(day, hour=9, minute=0):
    return datetime.datetime(2026, 3, day, hour, minute, tzinfo=TZ).isoformat()


def patient(mrn, name="王芳", phone="138-0013-8000", **extra):
    body = {"mrn": mrn, "name": name, "phone": phone}
    body.update(extra)
    return body


def visit(
    mrn,
    event_id=None,
    day=2,
    visit_type="first",
    department="心内科",
    source="his",
    visit_id=None,
    **patient_fields,
):
    event_id = event_id or uuid.uuid4().hex
    return {
        "event_id": event_id,
        "event_type": "PatientVisited",
        "occurred_at": at(day, 10),
        "source": source,
        "data": {
            "patient": patient(mrn, **patient_fields),
            "visit_id": visit_id or f"V-{event_id}",
            "department": department,
            "visit_type": visit_type,
            "source_channel": "friend_referral",
            "visited_at": at(day, 9),
        },
    }


def consultation(phone, event_id=None, day=1, name="赵敏"):
    event_id = event_id or uuid.uuid4().hex
    return {
        "event_id": event_id,
        "event_type": "ConsultationLogged",
        "occurred_at": at(day, 15),
        "source": "call-center",
        "data": {
            "consultation_id": f"C-{event_id}",
            "channel": "phone",
            "patient": {"name": name, "phone": phone},
            "department": "骨科",
        },
    }


def registered(mrn, event_id=None, day=1, **patient_fields):
    event_id = event_id or uuid.uuid4().hex
    return {
        "event_id": event_id,
        "event_type": "PatientRegistered",
        "occurred_at": at(day, 8),
        "source": "his",
        "data": {"patient": patient(mrn, **patient_fields)},
    }


def admitted(mrn, admission_id, event_id=None, day=3, **patient_fields):
    event_id = event_id or uuid.uuid4().hex
    return {
        "event_id": event_id,
        "event_type": "PatientAdmitted",
        "occurred_at": at(day, 11),
        "source": "his",
        "data": {
            "patient": patient(mrn, **patient_fields),
            "admission_id": admission_id,
            "department": "普外科",
            "ward": "5A",
            "admitted_at": at(day, 11),
        },
    }


def discharged(mrn, admission_id, event_id=None, day=8, disposition="home", **patient_fields):
    event_id = event_id or uuid.uuid4().hex
    return {
        "event_id": event_id,
        "event_type": "PatientDischarged",
        "occurred_at": at(day, 16),
        "source": "his",
        "data": {
            "patient": patient(mrn, **patient_fields),
            "admission_id": admission_id,
            "department": "普外科",
            "discharged_at": at(day, 16),
            "disposition": disposition,
        },
    }


# -- version 1.1: corrections, merges and scheduling ---------------------------------------
def _correction(event_type, mrn, id_field, id_value, event_id, day, hour, **patient_fields):
    event_id = event_id or uuid.uuid4().hex
    return {
        "event_id": event_id,
        "event_type": event_type,
        "occurred_at": at(day, hour),
        "source": "his",
        "data": {
            "patient": patient(mrn, **patient_fields),
            id_field: id_value,
            "reason": "entered in error",
        },
    }


def visit_cancelled(mrn, visit_id, event_id=None, day=2, hour=18, **patient_fields):
    return _correction(
        "VisitCancelled", mrn, "visit_id", visit_id, event_id, day, hour, **patient_fields
    )


def admission_cancelled(mrn, admission_id, event_id=None, day=3, hour=18, **patient_fields):
    return _correction(
        "AdmissionCancelled",
        mrn,
        "admission_id",
        admission_id,
        event_id,
        day,
        hour,
        **patient_fields,
    )


def discharge_cancelled(mrn, admission_id, event_id=None, day=8, hour=18, **patient_fields):
    return _correction(
        "DischargeCancelled",
        mrn,
        "admission_id",
        admission_id,
        event_id,
        day,
        hour,
        **patient_fields,
    )


def merged(survivor_mrn, retired_mrn, event_id=None, day=9, **patient_fields):
    event_id = event_id or uuid.uuid4().hex
    return {
        "event_id": event_id,
        "event_type": "PatientsMerged",
        "occurred_at": at(day, 12),
        "source": "his",
        "data": {"patient": patient(survivor_mrn, **patient_fields), "merged_mrn": retired_mrn},
    }


def appointment_scheduled(
    mrn,
    appointment_id,
    starts_at,
    event_id=None,
    day=1,
    hour=12,
    department="心内科",
    doctor_id="D-1",
    duration_minutes=15,
    **patient_fields,
):
    event_id = event_id or uuid.uuid4().hex
    return {
        "event_id": event_id,
        "event_type": "AppointmentScheduled",
        "occurred_at": at(day, hour),
        "source": "his",
        "data": {
            "patient": patient(mrn, **patient_fields),
            "appointment_id": appointment_id,
            "department": department,
            "doctor_id": doctor_id,
            "starts_at": starts_at,
            "duration_minutes": duration_minutes,
        },
    }


def appointment_withdrawn(mrn, appointment_id, event_id=None, day=1, hour=13, **patient_fields):
    return _correction(
        "AppointmentWithdrawn",
        mrn,
        "appointment_id",
        appointment_id,
        event_id,
        day,
        hour,
        **patient_fields,
    )


def appointment_missed(mrn, appointment_id, event_id=None, day=2, hour=18, **patient_fields):
    event = _correction(
        "AppointmentMissed",
        mrn,
        "appointment_id",
        appointment_id,
        event_id,
        day,
        hour,
        **patient_fields,
    )
    del event["data"]["reason"]
    return event


def malformed_events():
    """Twenty bodies that break the contract, each differently: (label, raw bytes, routing key)."""
    import json

    good = visit("M-BAD", event_id="bad-base")

    def variant(label, mutate, key="PatientVisited"):
        body = json.loads(json.dumps(good))
        mutate(body)
        return label, json.dumps(body, ensure_ascii=False).encode(), key

    def drop(*path):
        def mutate(body):
            target = body
            for part in path[:-1]:
                target = target[part]
            del target[path[-1]]

        return mutate

    def put(value, *path):
        def mutate(body):
            target = body
            for part in path[:-1]:
                target = target[part]
            target[path[-1]] = value

        return mutate

    cases = [
        ("not json", b"{not json at all", "PatientVisited"),
        ("json array", b"[1, 2, 3]", "PatientVisited"),
        ("invalid utf-8", b'\xff\xfe{"event_id": 1}', "PatientVisited"),
        variant("missing event_id", drop("event_id")),
        variant("missing occurred_at", drop("occurred_at")),
        variant("missing source", drop("source")),
        variant("missing data", drop("data")),
        variant("missing patient", drop("data", "patient")),
        variant("missing mrn", drop("data", "patient", "mrn")),
        variant("missing visit_id", drop("data", "visit_id")),
        variant("event_id not a string", put(12345, "event_id")),
        variant("data not an object", put("visit", "data")),
        variant("visit_type not allowed", put("vip", "data", "visit_type")),
        variant("consent not a boolean", put("yes", "data", "patient", "contact_consent")),
        variant(
            "unknown event type", put("PatientTeleported", "event_type"), key="PatientTeleported"
        ),
        variant("time without offset", put("2026-03-02T10:00:00", "occurred_at")),
        variant("visited_at without offset", put("2026-03-02T09:00:00", "data", "visited_at")),
        variant("5,000-character name", put("张" * 5000, "data", "patient", "name")),
        variant("bad phone", put("call me maybe", "data", "patient", "phone")),
        variant("schema_version 2", put(2, "schema_version")),
    ]
    return cases
