"""The inbound event contract (docs/EVENTS.md, version 1.1) as marshmallow schemas.

This module is the single definition of the contract: intake validates AMQP messages with
it, the gateway validates `POST /api/v1/events` with it, and docs/asyncapi.yaml is checked
against it by the tests. Unknown fields are ignored (tolerant reader), everything else is
strict: a wrong type is an error, never a silent coercion.
"""

from typing import Any

from marshmallow import ValidationError, fields, validate, validates_schema

from shared.errors import InvalidMessage, flatten_errors, with_fixes
from shared.schema_fields import Phone, StrictBoolean, StrictSchema, aware_datetime, schema_of

SCHEMA_VERSION = 1  # the envelope's schema_version: v1.1 is additive, so it stays 1
CONTRACT_VERSION = "1.1"

GENDERS = ("male", "female", "other", "unknown")
CONSULTATION_CHANNELS = ("phone", "web", "wechat", "qq", "email", "walk_in")
VISIT_TYPES = ("first", "return", "walk_in", "emergency")
SOURCE_CHANNELS = (
    "friend_referral",
    "nearby",
    "passing_by",
    "advertising",
    "online",
    "phone_consultation",
    "doctor_referral",
    "other",
)
DISPOSITIONS = ("home", "transfer", "against_advice", "deceased", "other")


def _name() -> fields.String:
    return fields.String(required=True, validate=validate.Length(min=1, max=100))


class PatientSchema(StrictSchema):
    mrn = fields.String(required=True, validate=validate.Length(min=1, max=64))
    name = _name()
    phone = Phone()
    gender = fields.String(validate=validate.OneOf(GENDERS))
    birth_date = fields.Date()
    region = fields.String(validate=validate.Length(min=1, max=100))
    # Absent means "not stated": the profile keeps the last stated value (default true).
    contact_consent = StrictBoolean()
    # v1.1: campaigns need their own consent (PIPL); absent = not stated (default false).
    marketing_consent = StrictBoolean()


class ProspectSchema(PatientSchema):
    """ConsultationLogged: the person may be a prospect with no MRN, but must be callable."""

    mrn = fields.String(validate=validate.Length(min=1, max=64))
    phone = Phone(required=True)


def _id_field() -> fields.String:
    return fields.String(required=True, validate=validate.Length(min=1, max=128))


class PatientRegisteredData(StrictSchema):
    patient = fields.Nested(PatientSchema, required=True)


class ConsultationLoggedData(StrictSchema):
    consultation_id = _id_field()
    channel = fields.String(required=True, validate=validate.OneOf(CONSULTATION_CHANNELS))
    patient = fields.Nested(ProspectSchema, required=True)
    department = fields.String(validate=validate.Length(min=1, max=100))
    topic = fields.String(validate=validate.Length(max=2000))
    agent_id = fields.String(validate=validate.Length(min=1, max=64))


class PatientVisitedData(StrictSchema):
    patient = fields.Nested(PatientSchema, required=True)
    visit_id = _id_field()
    department = fields.String(required=True, validate=validate.Length(min=1, max=100))
    doctor_id = fields.String(validate=validate.Length(min=1, max=64))
    doctor_name = fields.String(validate=validate.Length(min=1, max=100))
    visit_type = fields.String(required=True, validate=validate.OneOf(VISIT_TYPES))
    source_channel = fields.String(validate=validate.OneOf(SOURCE_CHANNELS))
    visited_at = aware_datetime()


class PatientAdmittedData(StrictSchema):
    patient = fields.Nested(PatientSchema, required=True)
    admission_id = _id_field()
    department = fields.String(required=True, validate=validate.Length(min=1, max=100))
    ward = fields.String(validate=validate.Length(min=1, max=100))
    admitted_at = aware_datetime()


class PatientDischargedData(StrictSchema):
    patient = fields.Nested(PatientSchema, required=True)
    admission_id = _id_field()
    department = fields.String(required=True, validate=validate.Length(min=1, max=100))
    discharged_at = aware_datetime()
    disposition = fields.String(required=True, validate=validate.OneOf(DISPOSITIONS))


# -- version 1.1: corrections, merges and scheduling from hospital systems ------------------
class VisitCancelledData(StrictSchema):
    patient = fields.Nested(PatientSchema, required=True)
    visit_id = _id_field()
    reason = fields.String(validate=validate.Length(max=500))


class AdmissionCancelledData(StrictSchema):
    patient = fields.Nested(PatientSchema, required=True)
    admission_id = _id_field()
    reason = fields.String(validate=validate.Length(max=500))


class DischargeCancelledData(AdmissionCancelledData):
    pass


class PatientsMergedData(StrictSchema):
    patient = fields.Nested(PatientSchema, required=True)  # the surviving record
    merged_mrn = fields.String(required=True, validate=validate.Length(min=1, max=64))

    @validates_schema
    def merged_is_another(self, data: dict[str, Any], **kwargs: Any) -> None:
        if data.get("merged_mrn") == (data.get("patient") or {}).get("mrn"):
            raise ValidationError(
                "The retired MRN must differ from the surviving patient's mrn.", "merged_mrn"
            )


class AppointmentScheduledData(StrictSchema):
    patient = fields.Nested(PatientSchema, required=True)
    appointment_id = _id_field()
    department = fields.String(required=True, validate=validate.Length(min=1, max=100))
    doctor_id = fields.String(validate=validate.Length(min=1, max=64))
    starts_at = aware_datetime()
    duration_minutes = fields.Integer(
        strict=True, load_default=15, dump_default=15, validate=validate.Range(min=1, max=24 * 60)
    )


class AppointmentWithdrawnData(StrictSchema):
    patient = fields.Nested(PatientSchema, required=True)
    appointment_id = _id_field()
    reason = fields.String(validate=validate.Length(max=500))


class AppointmentMissedData(StrictSchema):
    patient = fields.Nested(PatientSchema, required=True)
    appointment_id = _id_field()


DATA_SCHEMAS = {
    "PatientRegistered": PatientRegisteredData,
    "ConsultationLogged": ConsultationLoggedData,
    "PatientVisited": PatientVisitedData,
    "PatientAdmitted": PatientAdmittedData,
    "PatientDischarged": PatientDischargedData,
    "VisitCancelled": VisitCancelledData,
    "AdmissionCancelled": AdmissionCancelledData,
    "DischargeCancelled": DischargeCancelledData,
    "PatientsMerged": PatientsMergedData,
    "AppointmentScheduled": AppointmentScheduledData,
    "AppointmentWithdrawn": AppointmentWithdrawnData,
    "AppointmentMissed": AppointmentMissedData,
}
CORRECTION_TYPES = ("VisitCancelled", "AdmissionCancelled", "DischargeCancelled")
SCHEDULING_TYPES = ("AppointmentScheduled", "AppointmentWithdrawn", "AppointmentMissed")
INBOUND_EVENT_TYPES = tuple(DATA_SCHEMAS)


class EnvelopeSchema(StrictSchema):
    event_id = _id_field()
    event_type = fields.String(required=True, validate=validate.OneOf(INBOUND_EVENT_TYPES))
    schema_version = fields.Integer(
        strict=True,
        load_default=SCHEMA_VERSION,
        dump_default=SCHEMA_VERSION,
        validate=validate.Equal(SCHEMA_VERSION, error="Only schema_version 1 exists."),
    )
    occurred_at = aware_datetime()
    source = fields.String(required=True, validate=validate.Length(min=1, max=64))
    data = fields.Dict(required=True)

    @validates_schema(skip_on_field_errors=False)
    def validate_data(self, envelope: dict[str, Any], **kwargs: Any) -> None:
        schema_cls = DATA_SCHEMAS.get(envelope.get("event_type", ""))
        if schema_cls is None or "data" not in envelope:
            return
        try:
            envelope["data"] = schema_of(schema_cls).load(envelope["data"])
        except ValidationError as exc:
            raise ValidationError({"data": exc.messages}) from None


class EventInvalid(InvalidMessage):
    """An inbound event breaks the contract. `errors` maps field paths to messages."""


def load_event(raw: object) -> dict[str, Any]:
    """Validate one inbound event (a decoded JSON value) and return it with typed fields.

    Raises EventInvalid naming every bad field and how to fix it (the same messages reach an
    HTTP sender in the 400 and an AMQP sender in the rejected message's headers).
    """
    if not isinstance(raw, dict):
        raise EventInvalid(
            {
                "_schema": [
                    "The event must be a JSON object, such as "
                    '{"event_id": "...", "event_type": "PatientVisited", ...}.'
                ]
            }
        )
    try:
        return schema_of(EnvelopeSchema).load(raw)
    except ValidationError as exc:
        raise EventInvalid(with_fixes(flatten_errors(exc.messages))) from None


def dump_event(event: dict[str, Any]) -> dict[str, Any]:
    """The canonical JSON form of a loaded event: unknown fields gone, times in ISO 8601."""
    body = schema_of(EnvelopeSchema).dump({k: v for k, v in event.items() if k != "data"})
    body["data"] = schema_of(DATA_SCHEMAS[event["event_type"]]).dump(event["data"])
    return body
