"""The AsyncAPI document of the inbound contract, generated from shared.events.

docs/asyncapi.yaml is this function's output (`hcrm asyncapi > docs/asyncapi.yaml`); a test
fails when the two differ, so the published document can never drift from the code.
"""
import copy

import yaml
from marshmallow import fields, validate

from shared import events, minimise, topology

DESCRIPTIONS = {
    "PatientRegistered": "A patient was registered by the HIS.",
    "ConsultationLogged": "A phone / web / chat inquiry; the person may be a prospect with no MRN.",
    "PatientVisited": "An outpatient visit took place.",
    "PatientAdmitted": "A patient was admitted.",
    "PatientDischarged": "A patient was discharged.",
    "VisitCancelled": "v1.1: an outpatient visit was entered in error; it no longer counts anywhere "
                      "and its pending post-visit call is cancelled, whatever the arrival order.",
    "AdmissionCancelled": "v1.1: an admission was entered in error; it and any discharge of it no "
                          "longer count, and the tasks derived from them are cancelled.",
    "DischargeCancelled": "v1.1: a discharge was cancelled; the patient is an inpatient again. A "
                          "discharge of the same admission that occurred later counts again.",
    "PatientsMerged": "v1.1: two records were one person. `patient` is the surviving record; "
                      "`merged_mrn` the retired MRN, which afterwards finds the survivor.",
    "AppointmentScheduled": "v1.1: an appointment booked in the hospital's scheduling system; the "
                            "same appointment_id again is a reschedule or change, never a duplicate.",
    "AppointmentWithdrawn": "v1.1: an appointment cancelled in the scheduling system; no reminder "
                            "is sent afterwards.",
    "AppointmentMissed": "v1.1: the scheduling system recorded a no-show; it is treated as the "
                         "platform's own no-show (a call to rebook).",
}


# What the replayable stream hcrm.analytics carries, by the service whose event it copies
# (docs/EVENTS.md); the fields of each type are shared/minimise.py's allow-list. The intake
# types are the inbound ones minus the scheduling types (one name per fact), and PatientErased.
STREAM_EVENT_TYPES = {
    "intake": topology.INTAKE_STREAM_TYPES + ("PatientErased",),
    "followup": ("FollowUpScheduled", "FollowUpAttempted", "FollowUpCompleted", "FollowUpCancelled",
                 "SatisfactionRecorded", "ServiceRecoveryRequested", "SurveyAnswered"),
    "appointments": ("AppointmentBooked", "AppointmentConfirmed", "AppointmentCancelled",
                     "AppointmentReminderDue", "AppointmentCheckedIn", "AppointmentAttended",
                     "AppointmentNoShow"),
    "complaints": ("ComplaintOpened", "ComplaintAcknowledged", "ComplaintResolved",
                   "ComplaintEscalated", "ComplaintSlaBreached", "ComplaintCancelled",
                   "ServiceOpinionReportPublished"),
    "campaigns": ("CampaignMessageSent", "CampaignCallRequested", "MarketingConsentWithdrawn",
                  "MarketingConsentRestored"),
}
# The JSON type of a stream field (string when not listed).
STREAM_FIELD_TYPES = {
    "satisfaction": {"type": "integer", "minimum": 1, "maximum": 5}, "attempts": {"type": "integer"},
    "duration_minutes": {"type": "integer"}, "rescheduled": {"type": "boolean"},
    "schema_version": {"type": "integer"}, "scores": {"type": "object"},
    "rows": {"type": "array", "items": {"type": "object"}}, "total_received": {"type": "integer"},
    "total_open": {"type": "integer"}, "week_start": {"type": "string", "format": "date"},
    "week_end": {"type": "string", "format": "date"},
    "patient_ids": {"type": "array", "items": {"type": "string"}},
    "low_items": {"type": "object", "description": "{item: score} of the low scores"},
    "reason": {"type": "string", "enum": sorted(minimise.REASON_CODES)},
    "via": {"type": "string", "enum": ["agent", "sms_reply"]},
    "patient": {"type": "object", "description": "Of the person only these; never a name, phone, MRN or "
                                                 "birth date.",
                "properties": {"gender": {"type": "string", "enum": list(events.GENDERS)},
                               "region": {"type": ["string", "null"]},
                               "age_band": {"type": "string", "enum": [band for _, _, band in minimise.AGE_BANDS]
                                            + ["unknown"]}}},
}
TIME_FIELDS = ("occurred_at", "recorded_at", "visited_at", "admitted_at", "discharged_at", "due_at",
               "completed_at", "starts_at", "received_at", "ack_due_at", "resolve_due_at", "answered_at",
               "next_due_at", "sent_at", "requested_at", "withdrawn_at", "restored_at")


def _stream_field(name):
    if name in TIME_FIELDS:
        return {"type": "string", "format": "date-time"}
    return copy.deepcopy(STREAM_FIELD_TYPES.get(name, {"type": "string"}))  # no YAML anchors


def _stream_messages():
    """One message per type on the stream: the envelope and exactly the data fields it may hold."""
    messages = {}
    for service, types in STREAM_EVENT_TYPES.items():
        for event_type in types:
            data = {name: _stream_field(name) for name in minimise.published_fields(event_type)}
            messages[f"stream{event_type}"] = {
                "name": event_type, "title": f"{event_type} (stream copy, {service})",
                "summary": f"The minimal copy of {service}'s {event_type}: nothing else is on the stream.",
                "contentType": "application/json",
                "payload": {"type": "object", "additionalProperties": False,
                            "properties": {**{name: _stream_field(name) for name in minimise.ENVELOPE},
                                           "event_type": {"const": event_type},
                                           "data": {"type": "object", "additionalProperties": False,
                                                    "properties": data}}}}
    return messages


def _stream_channel():
    listing = "; ".join(f"{service}: {', '.join(types)}" for service, types in STREAM_EVENT_TYPES.items())
    return {
        "address": topology.ANALYTICS_STREAM,
        "description": (
            "RabbitMQ stream (x-queue-type: stream) for analytics consumers: attach with AMQP "
            "0-9-1 and x-stream-offset (first, last, next, an offset or a timestamp) to replay. "
            "Since issue 18 it carries a MINIMAL copy of each canonical event, appended by the "
            "analytics service to the exchange hcrm.stream (its only binding) through an outbox: "
            "HCRM's pseudonymous patient_id, ids, times, codes, departments, scores, and of the "
            "person only gender, region and age band; never a name, phone, MRN, birth date or "
            "free text. The fields of each type are listed below (an allow-list: a field not "
            "listed is never published). Retention: x-max-age (stream_max_age, default 400D) and "
            "x-max-length-bytes (stream_max_bytes, default 20 GiB), fixed at the stream's first "
            "declaration (a RabbitMQ policy changes them later). Since v1.1 an appointment booked "
            "in the hospital's scheduling system appears once, as the appointments service's "
            "AppointmentBooked (rescheduled: AppointmentBooked with data.rescheduled true), "
            "AppointmentCancelled or AppointmentNoShow; corrections (VisitCancelled, "
            "AdmissionCancelled, DischargeCancelled) and PatientsMerged (data.merged_patient_id: "
            "the retired record) tell a consumer what to undo or re-attribute, and PatientErased "
            "(data.patient_ids) which persons' data a consumer must erase too. Event types by "
            "service: " + listing + "."),
        "messages": _stream_messages(),
        "bindings": {"amqp": {"is": "queue", "queue": {
            "name": topology.ANALYTICS_STREAM, "durable": True, "exclusive": False,
            "autoDelete": False, "vhost": "/"}, "bindingVersion": "0.3.0"}},
    }


def _field_schema(field):
    if isinstance(field, fields.Nested):
        return _object_schema(field.nested if isinstance(field.nested, type) else type(field.nested))
    schema = {}
    if isinstance(field, events.StrictBoolean):
        schema["type"] = "boolean"
    elif isinstance(field, fields.Integer):
        schema["type"] = "integer"
    elif isinstance(field, fields.AwareDateTime):
        schema.update(type="string", format="date-time",
                      description="ISO 8601 with a UTC offset; a time without offset is rejected")
    elif isinstance(field, fields.Date):
        schema.update(type="string", format="date")
    elif isinstance(field, fields.Dict):
        schema["type"] = "object"
    else:
        schema["type"] = "string"
    if isinstance(field, events.Phone):
        schema["pattern"] = events.PHONE_PATTERN.pattern
    for validator in field.validators:
        if isinstance(validator, validate.Length):
            if validator.min is not None:
                schema["minLength"] = validator.min
            if validator.max is not None:
                schema["maxLength"] = validator.max
        elif isinstance(validator, validate.OneOf):
            schema["enum"] = list(validator.choices)
        elif isinstance(validator, validate.Equal):
            schema["const"] = validator.comparable
    return schema


def _object_schema(schema_cls):
    declared = schema_cls._declared_fields
    body = {"type": "object",
            "properties": {name: _field_schema(field) for name, field in declared.items()}}
    required = [name for name, field in declared.items() if field.required]
    if required:
        body["required"] = required
    return body


def document():
    envelope = _object_schema(events.EnvelopeSchema)
    messages, components = {}, {}
    for event_type, data_schema in events.DATA_SCHEMAS.items():
        payload = {
            "allOf": [{"$ref": "#/components/schemas/Envelope"},
                      {"type": "object",
                       "properties": {"event_type": {"const": event_type},
                                      "data": _object_schema(data_schema)}}]}
        components[event_type] = {
            "name": event_type, "title": event_type, "summary": DESCRIPTIONS[event_type],
            "contentType": "application/json", "payload": payload,
            "bindings": {"amqp": {"deliveryMode": 2, "bindingVersion": "0.3.0"}}}
        messages[event_type] = {"$ref": f"#/components/messages/{event_type}"}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "HCRM inbound hospital events",
            "version": f"{events.CONTRACT_VERSION}.0",
            "description": (
                "What other hospital systems (HIS, inpatient, call center) publish to HCRM. "
                "Generated from shared/events.py; the prose contract is docs/EVENTS.md. "
                "Unknown envelope fields are ignored. A message that is not JSON, lacks a "
                "required field, has a wrong type or an unknown event_type is moved to the "
                "queue hospital.events.rejected with the reason in the headers x-hcrm-reason "
                "and x-hcrm-errors (field path -> messages). A second event with the same "
                "(source, event_id) is a no-op; with other content it is a conflicting duplicate "
                "(v1.1): still a no-op, but a copy goes to hospital.events.rejected with the "
                "reason conflicting_duplicate. Over HTTP: POST /api/v1/events on the gateway, "
                "400 with the reasons per field, 409 for a conflicting duplicate."),
        },
        "defaultContentType": "application/json",
        "servers": {"local": {"host": "127.0.0.1:5672", "protocol": "amqp",
                              "protocolVersion": "0-9-1"}},
        "channels": {
            "hospitalEvents": {
                "address": "hospital.events",
                "description": "Topic exchange, durable. Routing key = event_type. "
                               "Persistent messages; publishers should use confirms.",
                "messages": messages,
                "bindings": {"amqp": {"is": "routingKey", "exchange": {
                    "name": "hospital.events", "type": "topic", "durable": True,
                    "autoDelete": False, "vhost": "/"}, "bindingVersion": "0.3.0"}},
            },
            "analyticsStream": _stream_channel(),
            "rejected": {
                "address": "hospital.events.rejected",
                "description": "Durable queue: every rejected inbound message, unchanged, with "
                               "x-hcrm-reason and x-hcrm-errors headers.",
                "bindings": {"amqp": {"is": "queue", "queue": {
                    "name": "hospital.events.rejected", "durable": True, "exclusive": False,
                    "autoDelete": False, "vhost": "/"}, "bindingVersion": "0.3.0"}},
            },
        },
        "operations": {
            "publishHospitalEvent": {
                "action": "send", "channel": {"$ref": "#/channels/hospitalEvents"},
                "summary": "A hospital system publishes one event.",
                "messages": [{"$ref": f"#/channels/hospitalEvents/messages/{name}"}
                             for name in messages],
            },
        },
        "components": {"schemas": {"Envelope": envelope}, "messages": components},
    }


def render():
    header = "# Generated by `hcrm asyncapi` from shared/events.py: do not edit by hand.\n"
    return header + yaml.safe_dump(document(), allow_unicode=True, sort_keys=False, width=100)
