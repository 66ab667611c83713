"""The AsyncAPI document of HCRM's events, generated from the code: the inbound contract
(shared/events.py) and what each service publishes (shared/outbound.py).

docs/asyncapi.yaml is this function's output (`hcrm asyncapi > docs/asyncapi.yaml`); a test
fails when the two differ, so the published document can never drift from the code.
"""

import copy
from typing import Any

import yaml

from shared import contract_schema, events, minimise, outbound, topology

DESCRIPTIONS = {
    "PatientRegistered": "A patient was registered by the HIS.",
    "ConsultationLogged": "A phone / web / chat inquiry; the person may be a prospect with no MRN.",
    "PatientVisited": "An outpatient visit took place.",
    "PatientAdmitted": "A patient was admitted.",
    "PatientDischarged": "A patient was discharged.",
    "VisitCancelled": "v1.1: an outpatient visit was entered in error; it no longer counts "
    "anywhere and its pending post-visit call is cancelled, whatever the arrival order.",
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
# (docs/EVENTS.md): the outbound types (shared/outbound.py) that shared/minimise.py's
# allow-list names. Intake's scheduling types are not among them (one name per fact).
STREAM_EVENT_TYPES = {
    service: tuple(t.name for t in outbound.types_of(service) if minimise.on_stream(t.name))
    for service in outbound.PUBLISHING_SERVICES
}
# The two fields minimise.py reduces: the person, and a reason kept only as a code.
STREAM_PERSON = {
    "type": "object",
    "description": "Of the person only these; never a name, phone, MRN or birth date.",
    "properties": {
        "gender": {"type": "string", "enum": list(events.GENDERS)},
        "region": {"type": ["string", "null"]},
        "age_band": {
            "type": "string",
            "enum": [band for _, _, band in minimise.AGE_BANDS] + ["unknown"],
        },
    },
}
STREAM_REASON = {"type": "string", "enum": sorted(minimise.REASON_CODES)}


def _stream_fields(event_type: str) -> dict[str, Any]:
    """The data fields a stream copy of the type may hold: those of the allow-list that the
    type has (shared/outbound.py), each as published unless minimise.py reduces it."""
    declared = outbound.EVENT_TYPES[event_type]
    fields: dict[str, Any] = {}
    for name in minimise.published_fields(event_type):
        field = declared.field(name)
        if field is None:  # listed for the service's types, but not a field of this one
            continue
        if name == "patient":
            fields[name] = STREAM_PERSON
        elif name in minimise.CODED_FIELDS.get(event_type, ()):
            fields[name] = STREAM_REASON
        else:
            fields[name] = field.schema
    return copy.deepcopy(fields)  # no YAML anchors


def _bare(schema: dict[str, Any]) -> dict[str, Any]:
    """A schema without its description: the stream's messages are many, the envelope is
    described once (components/schemas/OutboundEnvelope)."""
    return {key: value for key, value in schema.items() if key != "description"}


def _stream_messages() -> dict[str, Any]:
    """One message per type on the stream: the envelope and exactly the data fields it may hold."""
    messages = {}
    for service, types in STREAM_EVENT_TYPES.items():
        for event_type in types:
            envelope = {name: _bare(outbound.ENVELOPE_SCHEMAS[name]) for name in minimise.ENVELOPE}
            messages[f"stream{event_type}"] = {
                "name": event_type,
                "title": f"{event_type} (stream copy, {service})",
                "summary": f"The minimal copy of {service}'s {event_type}: "
                "nothing else is on the stream.",
                "contentType": "application/json",
                "payload": {
                    "type": "object",
                    "additionalProperties": False,
                    "properties": {
                        **copy.deepcopy(envelope),
                        "event_type": {"const": event_type},
                        "data": {
                            "type": "object",
                            "additionalProperties": False,
                            "properties": _stream_fields(event_type),
                        },
                    },
                },
            }
    return messages


def _outbound_envelope(sourced: bool) -> dict[str, Any]:
    """The envelope of what the services publish (intake's names its source too)."""
    keys = [key for key in outbound.ENVELOPE if sourced or key not in ("source", "source_event_id")]
    return copy.deepcopy(
        {
            "type": "object",
            "required": keys,
            "properties": {key: outbound.ENVELOPE_SCHEMAS[key] for key in keys},
        }
    )


def _outbound_message(kind: outbound.EventType) -> dict[str, Any]:
    """One type a service publishes (shared/outbound.py): its envelope and exactly its data."""
    data = {
        "type": "object",
        "additionalProperties": False,
        "properties": {field.name: field.schema for field in kind.fields},
    }
    required = [field.name for field in kind.fields if field.required]
    if required:
        data["required"] = required
    envelope = "SourcedOutboundEnvelope" if kind.sourced else "OutboundEnvelope"
    return {
        "name": kind.name,
        "title": f"{kind.name} ({kind.service})",
        "summary": kind.description,
        "contentType": "application/json",
        "payload": copy.deepcopy(
            {
                "allOf": [
                    {"$ref": f"#/components/schemas/{envelope}"},
                    {
                        "type": "object",
                        "properties": {
                            "event_type": {"const": kind.name},
                            "schema_version": {"const": kind.version},
                            "service": {"const": kind.service},
                            "data": data,
                        },
                    },
                ]
            }
        ),
        "bindings": {"amqp": {"deliveryMode": 2, "bindingVersion": "0.3.0"}},
    }


def _service_channel(service: str) -> dict[str, Any]:
    exchange = outbound.exchange_of(service)
    return {
        "address": exchange,
        "description": (
            f"Topic exchange, durable: the events the {service} service publishes, routing key = "
            "event_type (declared in shared/outbound.py). Persistent messages, published through "
            "the service's outbox once the change they report is stored: at least once, so a "
            "consumer deduplicates on event_id."
        ),
        "messages": {kind.name: _outbound_message(kind) for kind in outbound.types_of(service)},
        "bindings": {
            "amqp": {
                "is": "routingKey",
                "exchange": {
                    "name": exchange,
                    "type": "topic",
                    "durable": True,
                    "autoDelete": False,
                    "vhost": "/",
                },
                "bindingVersion": "0.3.0",
            }
        },
    }


def _service_operation(service: str) -> dict[str, Any]:
    return {
        "action": "receive",
        "channel": {"$ref": f"#/channels/{service}Events"},
        "summary": f"A consumer receives the {service} service's events.",
        "messages": [
            {"$ref": f"#/channels/{service}Events/messages/{kind.name}"}
            for kind in outbound.types_of(service)
        ],
    }


def _stream_channel() -> dict[str, Any]:
    listing = "; ".join(
        f"{service}: {', '.join(types)}" for service, types in STREAM_EVENT_TYPES.items()
    )
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
            "service: " + listing + "."
        ),
        "messages": _stream_messages(),
        "bindings": {
            "amqp": {
                "is": "queue",
                "queue": {
                    "name": topology.ANALYTICS_STREAM,
                    "durable": True,
                    "exclusive": False,
                    "autoDelete": False,
                    "vhost": "/",
                },
                "bindingVersion": "0.3.0",
            }
        },
    }


def document() -> dict[str, Any]:
    envelope = contract_schema.object_schema(events.EnvelopeSchema)
    messages, components = {}, {}
    for event_type, data_schema in events.DATA_SCHEMAS.items():
        payload = {
            "allOf": [
                {"$ref": "#/components/schemas/Envelope"},
                {
                    "type": "object",
                    "properties": {
                        "event_type": {"const": event_type},
                        "data": contract_schema.object_schema(data_schema),
                    },
                },
            ]
        }
        components[event_type] = {
            "name": event_type,
            "title": event_type,
            "summary": DESCRIPTIONS[event_type],
            "contentType": "application/json",
            "payload": payload,
            "bindings": {"amqp": {"deliveryMode": 2, "bindingVersion": "0.3.0"}},
        }
        messages[event_type] = {"$ref": f"#/components/messages/{event_type}"}
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "HCRM events",
            "version": f"{events.CONTRACT_VERSION}.0",
            "description": (
                "What other hospital systems (HIS, inpatient, call center) publish to HCRM "
                "(channel hospitalEvents), and what HCRM's services publish: one channel per "
                "service exchange, and the analytics stream's minimal copies (analyticsStream). "
                "Generated from shared/events.py and shared/outbound.py; the prose contract is "
                "docs/EVENTS.md. Inbound, unknown envelope fields are ignored. "
                "A message that is not JSON, lacks a "
                "required field, has a wrong type or an unknown event_type is moved to the "
                "queue hospital.events.rejected with the reason in the headers x-hcrm-reason "
                "and x-hcrm-errors (field path -> messages). A second event with the same "
                "(source, event_id) is a no-op; with other content it is a conflicting duplicate "
                "(v1.1): still a no-op, but a copy goes to hospital.events.rejected with the "
                "reason conflicting_duplicate. Over HTTP: POST /api/v1/events on the gateway, "
                "400 with the reasons per field, 409 for a conflicting duplicate."
            ),
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {"host": "127.0.0.1:5672", "protocol": "amqp", "protocolVersion": "0-9-1"}
        },
        "channels": {
            "hospitalEvents": {
                "address": "hospital.events",
                "description": "Topic exchange, durable. Routing key = event_type. "
                "Persistent messages; publishers should use confirms.",
                "messages": messages,
                "bindings": {
                    "amqp": {
                        "is": "routingKey",
                        "exchange": {
                            "name": "hospital.events",
                            "type": "topic",
                            "durable": True,
                            "autoDelete": False,
                            "vhost": "/",
                        },
                        "bindingVersion": "0.3.0",
                    }
                },
            },
            **{
                f"{service}Events": _service_channel(service)
                for service in outbound.PUBLISHING_SERVICES
            },
            "analyticsStream": _stream_channel(),
            "rejected": {
                "address": "hospital.events.rejected",
                "description": "Durable queue: every rejected inbound message, unchanged, with "
                "x-hcrm-reason and x-hcrm-errors headers.",
                "bindings": {
                    "amqp": {
                        "is": "queue",
                        "queue": {
                            "name": "hospital.events.rejected",
                            "durable": True,
                            "exclusive": False,
                            "autoDelete": False,
                            "vhost": "/",
                        },
                        "bindingVersion": "0.3.0",
                    }
                },
            },
        },
        "operations": {
            "publishHospitalEvent": {
                "action": "send",
                "channel": {"$ref": "#/channels/hospitalEvents"},
                "summary": "A hospital system publishes one event.",
                "messages": [
                    {"$ref": f"#/channels/hospitalEvents/messages/{name}"} for name in messages
                ],
            },
            **{
                f"receive{service.title()}Events": _service_operation(service)
                for service in outbound.PUBLISHING_SERVICES
            },
        },
        "components": {
            "schemas": {
                "Envelope": envelope,
                "OutboundEnvelope": _outbound_envelope(sourced=False),
                "SourcedOutboundEnvelope": _outbound_envelope(sourced=True),
            },
            "messages": components,
        },
    }


def render() -> str:
    header = (
        "# Generated by `hcrm asyncapi` from shared/events.py and shared/outbound.py: "
        "do not edit by hand.\n"
    )
    return header + yaml.safe_dump(document(), allow_unicode=True, sort_keys=False, width=100)
