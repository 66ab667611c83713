"""Every event HCRM's services publish, declared once, and the one way to build its message.

An outbound event type is its name, the service that publishes it, where it goes (that
service's topic exchange `<service>.events`, routing key = the type's name, through the
service's outbox: shared/outbox.py), the envelope's schema version and its `data` fields.
A service builds each message with `build()`, which checks the data against the declaration,
so a field cannot appear in (or vanish from) what consumers receive without this file saying
so. docs/asyncapi.yaml describes every type from here (shared/asyncapi.py); which of a type's
fields the analytics stream keeps is shared/minimise.py's allow-list.

The inbound contract, what hospital systems send, is shared/events.py. Intake republishes
each accepted inbound event with the same `data`, so its types take their fields from there.
"""

import dataclasses
import datetime
import functools
from collections.abc import Mapping
from typing import Any

from shared import contract_schema, events, minimise, topology
from shared.privacy import ERASED_EVENT


@dataclasses.dataclass(frozen=True)
class Field:
    """One field of an event's `data`. A required field is in every message of the type (its
    value may still be null where `schema` allows it); an optional one only in some.
    `schema`: its JSON Schema, for docs/asyncapi.yaml."""

    name: str
    schema: dict[str, Any] = dataclasses.field(hash=False)
    required: bool = True


@dataclasses.dataclass(frozen=True)
class EventType:
    """One type a service publishes: on `exchange`, under `routing_key`, with `fields`."""

    name: str
    service: str
    fields: tuple[Field, ...]
    description: str
    version: int = events.SCHEMA_VERSION
    # Intake's events name the system that sent the inbound event, and its id of it.
    sourced: bool = False

    @property
    def exchange(self) -> str:
        return exchange_of(self.service)

    @property
    def routing_key(self) -> str:
        return self.name

    @property
    def envelope(self) -> tuple[str, ...]:
        """The keys of its messages, in order."""
        return ENVELOPE if self.sourced else tuple(k for k in ENVELOPE if k not in _SOURCE_KEYS)

    @functools.cached_property
    def field_names(self) -> frozenset[str]:
        return frozenset(field.name for field in self.fields)

    @functools.cached_property
    def required_names(self) -> frozenset[str]:
        return frozenset(field.name for field in self.fields if field.required)

    def field(self, name: str) -> Field | None:
        return next((field for field in self.fields if field.name == name), None)


def exchange_of(service: str) -> str:
    exchange = f"{service}.events"
    if exchange not in topology.SERVICE_EXCHANGES:
        raise ValueError(
            f"{service!r} publishes nothing: no exchange {exchange!r} in shared/topology.py"
        )
    return exchange


# -- field declarations ---------------------------------------------------------------------
def _field(
    name: str,
    kind: str = "string",
    description: str = "",
    *,
    optional: bool = False,
    nullable: bool = False,
    **schema: Any,
) -> Field:
    body: dict[str, Any] = {"type": [kind, "null"] if nullable else kind, **schema}
    if description:
        body["description"] = description
    return Field(name, body, required=not optional)


def _time(name: str, description: str = "", **options: Any) -> Field:
    return _field(name, "string", description, format="date-time", **options)


def _date(name: str, description: str = "", **options: Any) -> Field:
    return _field(name, "string", description, format="date", **options)


# The envelope: every outbound message has these keys, in this order ("source" and
# "source_event_id" only on intake's types). They are the ids and times the analytics stream
# keeps (its allow-list, so a new envelope key is weighed for the stream there first), + data.
ENVELOPE = (*minimise.ENVELOPE, "data")
_SOURCE_KEYS = ("source", "source_event_id")
ENVELOPE_SCHEMAS: dict[str, dict[str, Any]] = {
    "event_id": {
        "type": "string",
        "description": "Deterministic (one cause, one id): consumers deduplicate on it.",
    },
    "event_type": {"type": "string"},
    "schema_version": {"type": "integer"},
    "occurred_at": {"type": "string", "format": "date-time"},
    "recorded_at": {"type": "string", "format": "date-time"},
    "service": {"type": "string", "description": "The publishing service."},
    "source": {
        "type": "string",
        "description": "The system that sent the inbound event (his, hl7; hcrm: intake's own).",
    },
    "source_event_id": {"type": "string", "description": "The sending system's id of the event."},
    "patient_id": {
        "type": ["string", "null"],
        "description": "HCRM's pseudonymous id of the person; null when about no one.",
    },
    "data": {"type": "object"},
}

_ACTOR = _field(
    "actor", nullable=True, description='The staff member, the source system, or "system".'
)


# -- intake: the hospital's facts as recorded, and the erasure ------------------------------
def _inbound_copy(name: str, extra: tuple[Field, ...] = ()) -> EventType:
    declared = events.DATA_SCHEMAS[name]._declared_fields
    fields = tuple(
        Field(key, contract_schema.field_schema(field), required=field.required)
        for key, field in declared.items()
    )
    return EventType(
        name,
        "intake",
        fields + extra,
        sourced=True,
        description=(
            f"The hospital's {name} as intake recorded it: the inbound event's data (channel "
            "hospitalEvents), under HCRM's patient_id."
        ),
    )


INTAKE = (
    *(_inbound_copy(name) for name in events.INBOUND_EVENT_TYPES if name != "PatientsMerged"),
    _inbound_copy(
        "PatientsMerged",
        (
            _field(
                "merged_patient_id",
                nullable=True,
                description="The retired record's patient_id: re-attribute what you hold under it.",
            ),
        ),
    ),
    EventType(
        ERASED_EVENT,
        "intake",
        (
            _field("erasure_id"),
            _field(
                "patient_ids",
                "array",
                "Every id the person had (merged records too): erase what you derived about them.",
                items={"type": "string"},
            ),
            _field(
                "mrns",
                "array",
                "The person's MRNs (the HL7 listener knows patients by MRN).",
                items={"type": "string"},
            ),
        ),
        sourced=True,
        description="An admin erased the person: every service erases what it holds of them.",
    ),
)


# -- followup -------------------------------------------------------------------------------
_TASK = (
    _field("followup_id"),
    _field("kind", description="The kind of follow-up task."),
    _field("department", nullable=True),
    _field("doctor_id", nullable=True),
    _time("due_at", "When the task is (was) due."),
)
_CALL = (
    _field("outcome", enum=["reached", "unreachable", "declined"]),
    _field("agent", nullable=True, description="The staff member's user name."),
    _field("completed_by", nullable=True),
    _field("attempts", "integer", "Which attempt it was."),
)
_SATISFACTION = _field("satisfaction", "integer", nullable=True, minimum=1, maximum=5)


def _followup(name: str, description: str, *extra: Field) -> EventType:
    return EventType(name, "followup", _TASK + extra, description=description)


FOLLOWUP = (
    _followup(
        "FollowUpScheduled",
        "A follow-up task was planned.",
        _field("reason", description="Why the task exists."),
    ),
    _followup(
        "FollowUpAttempted",
        "v1.1: an unreachable attempt; the task is tried again.",
        *_CALL,
        _time("recorded_at"),
        _time("next_due_at"),
    ),
    _followup(
        "FollowUpCompleted", "The task is done.", *_CALL, _SATISFACTION, _time("completed_at")
    ),
    _followup(
        "FollowUpCancelled",
        "The task was cancelled.",
        _field("reason", description="A code (visit_cancelled, no_consent, erased, ...)."),
    ),
    _followup(
        "SatisfactionRecorded",
        "A patient's satisfaction (1-5) was recorded on a call.",
        _SATISFACTION,
        _field("agent", nullable=True),
    ),
    _followup(
        "SurveyAnswered",
        "v1.1: the patient answered the survey (ids and scores only).",
        _field("scores", "object", "{item: 1-5}"),
        _field("channel", enum=["call", "link"]),
        _date("visit_date"),
        _time("answered_at"),
    ),
    _followup(
        "ServiceRecoveryRequested",
        "A low score or a complaint on a call, or a low survey item: complaints opens one.",
        _SATISFACTION,
        _field("complaint", nullable=True, description="Free text."),
        _field("notes", nullable=True, description="Free text."),
        _field("agent", nullable=True),
        _field("low_items", "object", "{item: score} of the low scores", optional=True),
    ),
)


# -- appointments ---------------------------------------------------------------------------
_APPOINTMENT = (
    _field("appointment_id"),
    _field("department"),
    _field("doctor_id", nullable=True),
    _time("starts_at"),
    _field("duration_minutes", "integer"),
    _field("status"),
    _field("channel", nullable=True),
)


def _appointment(name: str, description: str, *extra: Field) -> EventType:
    return EventType(name, "appointments", _APPOINTMENT + extra, description=description)


APPOINTMENTS = (
    _appointment(
        "AppointmentBooked",
        "An appointment was booked, or rescheduled (rescheduled).",
        _field("rescheduled", "boolean", optional=True),
    ),
    _appointment("AppointmentConfirmed", "The patient confirmed the appointment.", _ACTOR),
    _appointment(
        "AppointmentCancelled",
        "The appointment was cancelled.",
        _ACTOR,
        _field("reason", nullable=True),
    ),
    _appointment(
        "AppointmentReminderDue",
        "The appointment's reminder was due: sent, or skipped (and why).",
        _field("delivery", description="sent, or skipped_<why> (no_phone, no_consent, ...)."),
    ),
    _appointment("AppointmentCheckedIn", "The patient checked in.", _ACTOR),
    _appointment(
        "AppointmentAttended",
        "A visit showed the patient attended.",
        _field("visit_id", nullable=True),
    ),
    _appointment("AppointmentNoShow", "The patient did not come."),
)


# -- complaints -----------------------------------------------------------------------------
_COMPLAINT = (
    _field("complaint_id"),
    _field("category"),
    _field("department", nullable=True),
    _field("severity"),
    _field("channel"),
    _field("status"),
    _time("received_at"),
    _time("ack_due_at"),
    _time("resolve_due_at"),
    _field("followup_id", nullable=True, description="The follow-up call it came from."),
)
_NOTE = _field("note", nullable=True, description="Free text.")


def _complaint(name: str, description: str, *extra: Field) -> EventType:
    return EventType(name, "complaints", _COMPLAINT + extra, description=description)


COMPLAINTS = (
    _complaint("ComplaintOpened", "A complaint was recorded."),
    _complaint("ComplaintAcknowledged", "Staff acknowledged the complaint.", _ACTOR, _NOTE),
    _complaint(
        "ComplaintResolved",
        "The complaint was resolved.",
        _ACTOR,
        _NOTE,
        _field("resolution", nullable=True, description="Free text."),
    ),
    _complaint("ComplaintEscalated", "The complaint was escalated.", _ACTOR, _NOTE),
    _complaint(
        "ComplaintSlaBreached",
        "A deadline passed.",
        _field("deadline", enum=["acknowledge", "resolve"]),
    ),
    _complaint(
        "ComplaintCancelled",
        "The complaint was cancelled (its person was erased).",
        _ACTOR,
        _field("reason", nullable=True),
    ),
    EventType(
        "ServiceOpinionReportPublished",
        "complaints",
        (
            _date("week_start"),
            _date("week_end"),
            _field(
                "rows",
                "array",
                "Counts per category and department, and the complaints still open.",
                items={"type": "object"},
            ),
            _field("total_received", "integer"),
            _field("total_open", "integer"),
        ),
        description="The weekly service-opinion report (counts; no patient, no text).",
    ),
)


# -- campaigns ------------------------------------------------------------------------------
_DELIVERY = (_field("campaign_id"), _field("delivery_id"), _field("channel", enum=["sms", "call"]))

CAMPAIGNS = (
    EventType(
        "CampaignMessageSent",
        "campaigns",
        _DELIVERY + (_time("sent_at"),),
        description="A campaign's message was sent to the person (once per campaign).",
    ),
    EventType(
        "CampaignCallRequested",
        "campaigns",
        _DELIVERY
        + (
            _time("requested_at"),
            _field("campaign_name"),
            _field("department", nullable=True),
            _field("script", description="What the agent says."),
        ),
        description="A campaign asks for a call to the person (followup makes it a task).",
    ),
    EventType(
        "MarketingConsentWithdrawn",
        "campaigns",
        (_field("via", enum=["agent", "sms_reply"]), _time("withdrawn_at")),
        description="The person opted out of campaigns.",
    ),
    EventType(
        "MarketingConsentRestored",
        "campaigns",
        (_time("restored_at"),),
        description="v1.1: the person consented to campaigns again.",
    ),
)


def _registry(*groups: tuple[EventType, ...]) -> dict[str, EventType]:
    registry: dict[str, EventType] = {}
    for event_type in (t for group in groups for t in group):
        if event_type.name in registry:  # the routing key alone must say what a message is
            raise ValueError(f"outbound event type {event_type.name!r} is declared twice")
        exchange_of(event_type.service)
        registry[event_type.name] = event_type
    return registry


EVENT_TYPES = _registry(INTAKE, FOLLOWUP, APPOINTMENTS, COMPLAINTS, CAMPAIGNS)
PUBLISHING_SERVICES = tuple(dict.fromkeys(t.service for t in EVENT_TYPES.values()))


def types_of(service: str) -> tuple[EventType, ...]:
    return tuple(t for t in EVENT_TYPES.values() if t.service == service)


def declared(event_type: str) -> EventType:
    try:
        return EVENT_TYPES[event_type]
    except KeyError:
        raise ValueError(
            f"{event_type!r} is not a declared outbound event type "
            "(declare it in shared/outbound.py)"
        ) from None


def check(event_type: str, data: Mapping[str, Any]) -> EventType:
    """The declaration of `event_type`, once `data` has exactly its fields (every required
    one; none undeclared). Raises ValueError naming the type and the fields."""
    kind = declared(event_type)
    keys = data.keys()
    missing = kind.required_names - keys
    if missing:
        raise ValueError(
            f"{event_type}: data lacks the required field(s) {', '.join(sorted(missing))}"
        )
    unexpected = keys - kind.field_names
    if unexpected:
        raise ValueError(
            f"{event_type}: data has undeclared field(s) {', '.join(sorted(unexpected))} "
            "(declare them in shared/outbound.py)"
        )
    return kind


def build(
    event_type: str,
    data: dict[str, Any],
    *,
    event_id: str,
    patient_id: str | None,
    now: datetime.datetime,
    occurred_at: str | None = None,
    source: str | None = None,
    source_event_id: str | None = None,
) -> dict[str, Any]:
    """The message of one outbound event, `data` checked against its declaration.

    `now` is when it is recorded (recorded_at; occurred_at too unless given: intake passes
    the inbound event's). `source` and `source_event_id` are intake's and only intake's."""
    kind = check(event_type, data)
    named = [value is not None for value in (source, source_event_id)]
    if (kind.sourced and not all(named)) or (not kind.sourced and any(named)):
        raise ValueError(
            f"{event_type}: source and source_event_id are "
            + ("required" if kind.sourced else "only for intake's types")
        )
    recorded_at = now.isoformat()
    message: dict[str, Any] = {
        "event_id": event_id,
        "event_type": event_type,
        "schema_version": kind.version,
        "occurred_at": occurred_at if occurred_at is not None else recorded_at,
        "recorded_at": recorded_at,
        "service": kind.service,
    }
    if kind.sourced:
        message.update(source=source, source_event_id=source_event_id)
    message.update(patient_id=patient_id, data=data)
    return message
