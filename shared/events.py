"""The inbound event contract (docs/EVENTS.md, version 1.1) as marshmallow schemas.

This module is the single definition of the contract: intake validates AMQP messages with
it, the gateway validates `POST /api/v1/events` with it, and docs/asyncapi.yaml is checked
against it by the tests. Unknown fields are ignored (tolerant reader), everything else is
strict: a wrong type is an error, never a silent coercion.
"""
import functools
import re

from marshmallow import EXCLUDE, Schema, ValidationError, fields, validate, validates_schema

from shared.errors import InvalidMessage, with_fixes

SCHEMA_VERSION = 1  # the envelope's schema_version: v1.1 is additive, so it stays 1
CONTRACT_VERSION = "1.1"

GENDERS = ("male", "female", "other", "unknown")
CONSULTATION_CHANNELS = ("phone", "web", "wechat", "qq", "email", "walk_in")
VISIT_TYPES = ("first", "return", "walk_in", "emergency")
SOURCE_CHANNELS = (
    "friend_referral", "nearby", "passing_by", "advertising", "online",
    "phone_consultation", "doctor_referral", "other",
)
DISPOSITIONS = ("home", "transfer", "against_advice", "deceased", "other")

PHONE_PATTERN = re.compile(r"^\+?[0-9][0-9 \-]*$")


# The hospital's country calling code (default CN). "+86 139 0000 1111", "0086 13900001111"
# and "139-0000-1111" are one phone: the key drops the home country prefix of an
# international form; numbers of other countries keep every digit.
HOME_COUNTRY_CODE = "86"


def phone_digits(phone, country_code=HOME_COUNTRY_CODE):
    """The phone's key: its digits, national form for home numbers. It links a prospect to
    the patient who later visits with the same phone, and finds patients by phone."""
    text = (phone or "").strip()
    digits = re.sub(r"\D", "", text)
    for prefix in ("+" + country_code, "00" + country_code):
        if text.startswith(prefix[0]) and digits.startswith(prefix.lstrip("+")):
            return digits[len(prefix.lstrip("+")):]
    return digits


class StrictBoolean(fields.Field):
    """JSON true/false only: "yes", 1 or "true" are type errors, not consent."""

    default_error_messages = {"invalid": "Not a valid boolean: use true or false."}

    def _deserialize(self, value, attr, data, **kwargs):
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class Phone(fields.String):
    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        digits = phone_digits(text)
        if not PHONE_PATTERN.match(text) or not 3 <= len(digits) <= 20:
            raise ValidationError(
                "Not a valid phone number: digits, an optional leading +, spaces and dashes.")
        return text


class StrictSchema(Schema):
    class Meta:
        unknown = EXCLUDE


def _name():
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


def _id_field():
    return fields.String(required=True, validate=validate.Length(min=1, max=128))


AWARE_DATETIME_HELP = ("Not a valid date-time: use ISO 8601 with an offset, "
                       "such as 2026-12-01T09:30:00+08:00.")


def _aware_datetime(required=True):
    # Every message says how to fix it: a time without an offset is the common mistake.
    return fields.AwareDateTime(format="iso", required=required, error_messages={
        "invalid": AWARE_DATETIME_HELP, "invalid_awareness": AWARE_DATETIME_HELP,
        "format": AWARE_DATETIME_HELP})


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
    visited_at = _aware_datetime()


class PatientAdmittedData(StrictSchema):
    patient = fields.Nested(PatientSchema, required=True)
    admission_id = _id_field()
    department = fields.String(required=True, validate=validate.Length(min=1, max=100))
    ward = fields.String(validate=validate.Length(min=1, max=100))
    admitted_at = _aware_datetime()


class PatientDischargedData(StrictSchema):
    patient = fields.Nested(PatientSchema, required=True)
    admission_id = _id_field()
    department = fields.String(required=True, validate=validate.Length(min=1, max=100))
    discharged_at = _aware_datetime()
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
    def merged_is_another(self, data, **kwargs):
        if data.get("merged_mrn") == (data.get("patient") or {}).get("mrn"):
            raise ValidationError("The retired MRN must differ from the surviving patient's mrn.",
                                  "merged_mrn")


class AppointmentScheduledData(StrictSchema):
    patient = fields.Nested(PatientSchema, required=True)
    appointment_id = _id_field()
    department = fields.String(required=True, validate=validate.Length(min=1, max=100))
    doctor_id = fields.String(validate=validate.Length(min=1, max=64))
    starts_at = _aware_datetime()
    duration_minutes = fields.Integer(strict=True, load_default=15, dump_default=15,
                                      validate=validate.Range(min=1, max=24 * 60))


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
        strict=True, load_default=SCHEMA_VERSION, dump_default=SCHEMA_VERSION,
        validate=validate.Equal(SCHEMA_VERSION, error="Only schema_version 1 exists."))
    occurred_at = _aware_datetime()
    source = fields.String(required=True, validate=validate.Length(min=1, max=64))
    data = fields.Dict(required=True)

    @validates_schema(skip_on_field_errors=False)
    def validate_data(self, envelope, **kwargs):
        schema_cls = DATA_SCHEMAS.get(envelope.get("event_type"))
        if schema_cls is None or "data" not in envelope:
            return
        try:
            envelope["data"] = schema_of(schema_cls).load(envelope["data"])
        except ValidationError as exc:
            raise ValidationError({"data": exc.messages}) from None


@functools.cache
def schema_of(schema_cls):
    """One instance per schema class: building one binds and copies every field, which cost
    a tenth of intake's CPU per event when done per call (bench/README.md); marshmallow 4
    schemas keep no state between loads, so one instance serves every worker."""
    return schema_cls()


class EventInvalid(InvalidMessage):
    """An inbound event breaks the contract. `errors` maps field paths to messages."""


def flatten_errors(messages, prefix=""):
    """marshmallow's nested error dict -> {"data.patient.name": ["..."]}."""
    flat = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            flat.update(flatten_errors(value, path))
    else:
        flat[prefix or "_schema"] = [str(m) for m in messages]
    return flat


def load_event(raw):
    """Validate one inbound event (a decoded JSON value) and return it with typed fields.

    Raises EventInvalid naming every bad field and how to fix it (the same messages reach an
    HTTP sender in the 400 and an AMQP sender in the rejected message's headers).
    """
    if not isinstance(raw, dict):
        raise EventInvalid({"_schema": ["The event must be a JSON object, such as "
                                        "{\"event_id\": \"...\", \"event_type\": \"PatientVisited\", ...}."]})
    try:
        return schema_of(EnvelopeSchema).load(raw)
    except ValidationError as exc:
        raise EventInvalid(with_fixes(flatten_errors(exc.messages))) from None


def dump_event(event):
    """The canonical JSON form of a loaded event: unknown fields gone, times in ISO 8601."""
    body = schema_of(EnvelopeSchema).dump({k: v for k, v in event.items() if k != "data"})
    body["data"] = schema_of(DATA_SCHEMAS[event["event_type"]]).dump(event["data"])
    return body


def event_time(event):
    """The moment the event is about, used for ranges: the visit / admission / discharge
    time where the type has one, else `occurred_at`."""
    data = event["data"]
    for key in ("visited_at", "admitted_at", "discharged_at"):
        if key in data:
            return data[key]
    return event["occurred_at"]
