"""The minimal copy of a canonical event that goes on the analytics stream `hcrm.analytics`.

A stream cannot be edited afterwards: what is appended stays until its retention drops it
(x-max-age / x-max-length-bytes), and an erasure cannot reach it. So only what analysis
needs is appended, chosen by an ALLOW-list per event type (a type or a field not listed
here never reaches the stream, whatever a service starts to publish later): HCRM's
pseudonymous `patient_id`, ids, times, codes, department, scores, and of the person only
gender, region and an age band. Never a name, phone, MRN, birth date or free text (notes,
complaint descriptions, consultation topics, reasons, resolutions). docs/EVENTS.md and
docs/asyncapi.yaml list the fields per type (generated from STREAM_FIELDS).

Pure: the analytics service appends `minimal_copy(event)` of every canonical event it
records (services/analytics/stream_copy.py), through its outbox.
"""

import datetime
from collections.abc import Mapping
from typing import Any, TypeGuard

# The envelope fields a stream message keeps: ids and times. `source` is the sending system's
# name (his, hl7, ...) and `source_event_id` its id of the message, neither names a person.
ENVELOPE = (
    "event_id",
    "event_type",
    "schema_version",
    "occurred_at",
    "recorded_at",
    "service",
    "source",
    "source_event_id",
    "patient_id",
)

# What of `data.patient` a stream message keeps (age_band derived from the birth date on the
# day of the event, the same bands as the figures' docs/RULES.md).
PERSON = ("gender", "region", "age_band")

# Reason codes a service sets itself (never typed by a person): a `reason` field is kept only
# when it holds one of these, so a staff member's free-text reason never reaches the stream.
REASON_CODES = frozenset(
    (
        "visit_cancelled",
        "admission_cancelled",
        "discharge_cancelled",
        "merged",
        "visited",
        "no_phone",
        "no_consent",
        "deceased",
        "erased",
    )
)

# Event type -> the `data` fields kept (besides `patient`, see WITH_PERSON). One name per
# fact (docs/EVENTS.md v1.1): intake's inbound scheduling types (AppointmentScheduled /
# Withdrawn / Missed) are absent on purpose, the appointments service's events stand for them.
STREAM_FIELDS = {
    # intake (the hospital's facts)
    "PatientRegistered": (),
    "ConsultationLogged": ("consultation_id", "channel", "department", "agent_id"),
    "PatientVisited": (
        "visit_id",
        "department",
        "doctor_id",
        "visit_type",
        "source_channel",
        "visited_at",
    ),
    "PatientAdmitted": ("admission_id", "department", "ward", "admitted_at"),
    "PatientDischarged": ("admission_id", "department", "discharged_at", "disposition"),
    "VisitCancelled": ("visit_id",),
    "AdmissionCancelled": ("admission_id",),
    "DischargeCancelled": ("admission_id",),
    "PatientsMerged": ("merged_patient_id",),
    # intake: the person's data was erased (patient_ids: every id the person had)
    "PatientErased": ("erasure_id", "patient_ids"),
    # followup (`agent`: the staff member's user name, as the figures per agent need it)
    **{
        name: ("followup_id", "kind", "department", "doctor_id", "due_at") + extra
        for name, extra in (
            ("FollowUpScheduled", ()),
            (
                "FollowUpAttempted",
                ("outcome", "agent", "completed_by", "attempts", "recorded_at", "next_due_at"),
            ),
            (
                "FollowUpCompleted",
                ("outcome", "satisfaction", "agent", "completed_by", "completed_at", "attempts"),
            ),
            ("FollowUpCancelled", ()),
            ("SatisfactionRecorded", ("satisfaction", "agent")),
            ("ServiceRecoveryRequested", ("satisfaction", "agent", "low_items")),
            ("SurveyAnswered", ("scores", "channel", "visit_date", "answered_at")),
        )
    },
    # appointments
    **{
        name: (
            "appointment_id",
            "department",
            "doctor_id",
            "starts_at",
            "duration_minutes",
            "status",
            "channel",
        )
        + extra
        for name, extra in (
            ("AppointmentBooked", ("rescheduled",)),
            ("AppointmentConfirmed", ()),
            ("AppointmentCancelled", ()),
            ("AppointmentReminderDue", ("delivery",)),
            ("AppointmentCheckedIn", ()),
            ("AppointmentAttended", ("visit_id",)),
            ("AppointmentNoShow", ()),
        )
    },
    # complaints (`actor`: the staff member, or "system")
    **{
        name: (
            "complaint_id",
            "category",
            "department",
            "severity",
            "channel",
            "status",
            "received_at",
            "ack_due_at",
            "resolve_due_at",
            "followup_id",
            "actor",
        )
        + extra
        for name, extra in (
            ("ComplaintOpened", ()),
            ("ComplaintAcknowledged", ()),
            ("ComplaintResolved", ()),
            ("ComplaintEscalated", ()),
            ("ComplaintSlaBreached", ("deadline",)),
            ("ComplaintCancelled", ()),
        )
    },
    # complaints: the weekly service-opinion report (counts per category and department, the ids
    # of the complaints still open; no patient, no text)
    "ServiceOpinionReportPublished": (
        "week_start",
        "week_end",
        "rows",
        "total_received",
        "total_open",
    ),
    # campaigns: ids, the channel and times; never the campaign's name or text, nor the number
    "CampaignMessageSent": ("campaign_id", "delivery_id", "channel", "sent_at"),
    "CampaignCallRequested": ("campaign_id", "delivery_id", "channel", "requested_at"),
    "MarketingConsentWithdrawn": ("via", "withdrawn_at"),
    "MarketingConsentRestored": ("restored_at",),
}
# Kept only when the value is one of REASON_CODES.
CODED_FIELDS: dict[str, tuple[str, ...]] = {
    "FollowUpCancelled": ("reason",),
    "AppointmentCancelled": ("reason",),
    "ComplaintCancelled": ("reason",),
}
# Types whose stream copy carries the person's gender, region and age band.
WITH_PERSON = (
    "PatientRegistered",
    "ConsultationLogged",
    "PatientVisited",
    "PatientAdmitted",
    "PatientDischarged",
)
# The moment an age band is computed for: the event's own time field, else occurred_at.
MOMENT_FIELDS = ("visited_at", "admitted_at", "discharged_at")

AGE_BANDS = (
    (0, 17, "0-17"),
    (18, 39, "18-39"),
    (40, 59, "40-59"),
    (60, 79, "60-79"),
    (80, 200, "80+"),
)


def age_band(birth_date: datetime.date | str | None, on_day: datetime.date) -> str:
    """The patient's age band on `on_day` (docs/DOMAIN.md: age and region analysis)."""
    if not birth_date:
        return "unknown"
    born = (
        birth_date
        if isinstance(birth_date, datetime.date)
        else datetime.date.fromisoformat(str(birth_date))
    )
    age = on_day.year - born.year - ((on_day.month, on_day.day) < (born.month, born.day))
    return next((label for low, high, label in AGE_BANDS if low <= age <= high), "unknown")


def on_stream(event_type: object) -> TypeGuard[str]:
    return event_type in STREAM_FIELDS


def published_fields(event_type: str) -> tuple[str, ...]:
    """The `data` fields a stream message of this type may hold (documentation, tests)."""
    fields = STREAM_FIELDS[event_type] + CODED_FIELDS.get(event_type, ())
    return fields + (("patient",) if event_type in WITH_PERSON else ())


def minimal_data(
    event_type: str,
    data: Mapping[str, Any] | None,
    tz: datetime.tzinfo | None = None,
    moment: datetime.datetime | str | None = None,
) -> dict[str, Any]:
    """The allow-listed part of an event's `data` (the person's attributes only where the
    type has them). `tz` and `moment` give the day the age band is computed for."""
    data = data or {}
    kept = {key: data[key] for key in STREAM_FIELDS.get(event_type, ()) if key in data}
    for key in CODED_FIELDS.get(event_type, ()):
        if isinstance(data.get(key), str) and data[key] in REASON_CODES:
            kept[key] = data[key]
    if event_type in WITH_PERSON:
        kept["patient"] = person_attributes(data.get("patient") or {}, _day(moment, tz))
    return kept


def person_attributes(patient: Mapping[str, Any], on_day: datetime.date | None) -> dict[str, Any]:
    """What of a patient object analysis needs: gender, region, age band."""
    return {
        "gender": patient.get("gender") or "unknown",
        "region": patient.get("region") or None,
        "age_band": age_band(patient.get("birth_date"), on_day) if on_day else "unknown",
    }


def minimal_copy(
    event: Mapping[str, Any], tz: datetime.tzinfo = datetime.UTC
) -> dict[str, Any] | None:
    """The stream message for a canonical event, or None for a type not on the stream."""
    kind = event.get("event_type")
    if not on_stream(kind):
        return None
    data = event.get("data") or {}
    moment = next((data[f] for f in MOMENT_FIELDS if data.get(f)), None) or event.get("occurred_at")
    copy = {key: event[key] for key in ENVELOPE if key in event}
    copy["data"] = minimal_data(kind, data, tz, moment)
    return copy


def _day(
    moment: datetime.datetime | str | None, tz: datetime.tzinfo | None
) -> datetime.date | None:
    if not moment:
        return None
    try:
        parsed = (
            moment
            if isinstance(moment, datetime.datetime)
            else datetime.datetime.fromisoformat(str(moment))
        )
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=datetime.UTC)
    return parsed.astimezone(tz or datetime.UTC).date()
