"""Intake's rules as pure functions: identity, the patient profile, lifecycle stage, segment.

Everything the patient record shows is *derived from the patient's recorded events*, never
accumulated message by message. That makes the record the same whatever order the events
arrive in, a duplicate changes nothing, and a crash halfway through is repaired by simply
projecting again.

Lifecycle stage (docs/DOMAIN.md: prospects, first-visit, return-visit and recovered patients;
inpatients and discharge follow-up), first rule that holds wins:
  inpatient   the latest admission is later than the latest discharge (or has none)
  recovering  discharged, and the discharge is at most `recovering_days` (default 30) ago
  recovered   discharged more than `recovering_days` ago
  returning   two or more outpatient visits, or any visit of type "return"
  new         one outpatient visit, or registered by the hospital without a visit yet
  prospect    known only from consultations (no visit, registration or admission)

Segment (shared/segments.py; docs/DOMAIN.md: a fifth of patients bring most of the value):
  key         5+ visits or 2+ admissions
  regular     2-4 visits, or 1 admission
  one_time    exactly one visit
  registered  registered, never visited or admitted
  prospect    consultations only
"""

import datetime
import uuid
from collections.abc import Iterable
from typing import Any

from shared import outbound
from shared.corrections import CORRECTION_TYPES, Voids
from shared.phones import phone_digits

# The profile fields: the same ones an erasure reads from a person's events.
from shared.privacy import PROFILE_FIELDS

# The segment rule is shared with campaigns' targeting (shared/segments.py).
from shared.segments import segment

CANONICAL_NAMESPACE = uuid.UUID("6f1b7c0e-3a52-4c1e-9d6e-0b5b8f3d2a11")


def canonical_event_id(source: str, event_id: str) -> str:
    """Deterministic: the same inbound event always becomes the same canonical event, so a
    re-publish after a crash is recognised downstream as a duplicate."""
    return str(uuid.uuid5(CANONICAL_NAMESPACE, f"{source}\x1f{event_id}"))


def identity(patient: dict[str, Any]) -> tuple[str | None, str | None]:
    """(mrn, phone digits) of an event's patient object; either may be None."""
    return patient.get("mrn") or None, phone_digits(patient.get("phone")) or None


def _parse(value: datetime.datetime | str | None) -> datetime.datetime | None:
    if isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.fromisoformat(value) if value else None


def _latest(
    current: datetime.datetime | None, candidate: datetime.datetime | None
) -> datetime.datetime | None:
    return candidate if current is None or (candidate and candidate > current) else current


def project(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The patient record from the patient's recorded events (any order, no duplicates).

    `events` are dicts with `event_type`, `occurred_at` (aware datetime), `event_id` and the
    canonical `data`. Returns the profile, counters and the facts `stage()` needs.

    Corrections (v1.1) leave the events they void out of the counters and the stage, in any
    arrival order (shared/corrections.py); the profile still takes what every event states.
    """
    ordered = sorted(events, key=lambda e: (e["occurred_at"], e["event_id"]))
    voids = Voids(e for e in ordered if e["event_type"] in CORRECTION_TYPES)
    merged_mrns: set[str] = set()
    profile: dict[str, Any] = {}
    visit_ids: set[str] = set()
    admission_ids: set[str] = set()
    facts: dict[str, Any] = {
        "registered": False,
        "return_visit": False,
        "deceased": False,
        "last_admitted_at": None,
        "last_discharged_at": None,
        "last_visit_at": None,
    }
    mrn = None
    for event in ordered:
        data, kind = event["data"], event["event_type"]
        person = data.get("patient") or {}
        for field in PROFILE_FIELDS:
            if field in person:  # absent = not stated, the last stated value stays
                profile[field] = person[field]
        mrn = person.get("mrn") or mrn
        # Any hospital event with an MRN means the hospital registered the person, even when
        # the visit it reported was later cancelled: such a person is no prospect.
        facts["registered"] |= bool(person.get("mrn")) and kind != "ConsultationLogged"
        if voids and voids.voids(event):
            continue
        if kind == "PatientsMerged":
            merged_mrns.add(data["merged_mrn"])
        elif kind == "PatientRegistered":
            facts["registered"] = True
        elif kind == "PatientVisited":
            visit_ids.add(data["visit_id"])
            facts["return_visit"] |= data["visit_type"] == "return"
            facts["last_visit_at"] = _latest(facts["last_visit_at"], _parse(data["visited_at"]))
        elif kind == "PatientAdmitted":
            admission_ids.add(data["admission_id"])
            facts["last_admitted_at"] = _latest(
                facts["last_admitted_at"], _parse(data["admitted_at"])
            )
        elif kind == "PatientDischarged":
            admission_ids.add(data["admission_id"])
            facts["last_discharged_at"] = _latest(
                facts["last_discharged_at"], _parse(data["discharged_at"])
            )
            facts["deceased"] |= data["disposition"] == "deceased"
    profile.setdefault("contact_consent", True)
    profile.setdefault("marketing_consent", False)
    facts["visit_count"] = len(visit_ids)
    facts["admission_count"] = len(admission_ids)
    return {
        **{field: profile.get(field) for field in PROFILE_FIELDS},
        "mrn": mrn,
        "phone_digits": phone_digits(profile.get("phone")) or None,
        "visit_count": len(visit_ids),
        "admission_count": len(admission_ids),
        "first_seen_at": ordered[0]["occurred_at"] if ordered else None,
        "last_seen_at": ordered[-1]["occurred_at"] if ordered else None,
        "deceased": facts["deceased"],
        "segment": segment(facts),
        "facts": facts,
        "merged_mrns": sorted(merged_mrns),
        "event_count": len(ordered),
    }


def stage(facts: dict[str, Any], now: datetime.datetime, recovering_days: float = 30) -> str:
    admitted, discharged = facts.get("last_admitted_at"), facts.get("last_discharged_at")
    if admitted and (discharged is None or admitted > discharged):
        return "inpatient"
    if discharged:
        recovering = now - discharged <= datetime.timedelta(days=recovering_days)
        return "recovering" if recovering else "recovered"
    if facts.get("visit_count", 0) >= 2 or facts.get("return_visit"):
        return "returning"
    if facts.get("visit_count", 0) == 1 or facts.get("registered"):
        return "new"
    return "prospect"


def canonical_message(
    event_id: str, inbound: dict[str, Any], patient_id: str, recorded_at: datetime.datetime
) -> dict[str, Any]:
    """The event intake emits on intake.events and the analytics stream (docs/EVENTS.md)."""
    return outbound.build(
        inbound["event_type"],
        inbound["data"],
        event_id=event_id,
        patient_id=patient_id,
        now=recorded_at,
        occurred_at=inbound["occurred_at"],
        source=inbound["source"],
        source_event_id=inbound["event_id"],
    )


# What the intake adds to an event's data of its own (left out when comparing duplicates).
DERIVED_DATA_FIELDS = ("merged_patient_id",)


def conflicts_with(recorded: dict[str, Any], inbound: dict[str, Any]) -> bool:
    """True when `inbound` repeats the (source, event_id) of the `recorded` event with other
    content: docs/EVENTS.md v1.1 calls it a conflicting duplicate. It changes nothing, but the
    sender is told, so it learns that a correction needs an event of its own. An event whose
    personal data was erased or outlived its retention (services/intake/privacy.py) no
    longer shows what it said: a resend of it is a plain duplicate."""
    if recorded.get("erased") or recorded.get("retained_at"):
        return False
    data = {k: v for k, v in (recorded.get("data") or {}).items() if k not in DERIVED_DATA_FIELDS}
    occurred = recorded.get("occurred_at")
    occurred = occurred.isoformat() if isinstance(occurred, datetime.datetime) else occurred
    return (
        recorded.get("event_type") != inbound["event_type"]
        or data != inbound["data"]
        or _parse(occurred) != _parse(inbound["occurred_at"])
    )
