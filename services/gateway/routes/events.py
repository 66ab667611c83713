"""Inbound events over HTTP: the same contract as AMQP, validated here, then published to
hospital.events with a broker confirm, so intake handles both transports alike."""

from services.gateway import openapi
from services.gateway.http import PUBLISHERS, ApiError, json_response, route
from services.gateway.rpc import ServiceUnavailable
from shared.events import EventInvalid, dump_event, load_event
from shared.messaging import publish
from shared.topology import HOSPITAL_EXCHANGE


@route(
    "POST", "/api/v1/events", roles=PUBLISHERS, audit=True, status=202, body=openapi.event_body()
)
def post_event(gw, ctx):
    """Publish one inbound event (docs/EVENTS.md): a write of patient data, so it is audited.

    A conflicting duplicate (the same source and event_id with other content) is answered 409
    naming the first event's time, so the sender learns that a correction needs an event of
    its own; an exact duplicate is accepted again and changes nothing (v1.1)."""
    raw = ctx.json_body()
    try:
        event = load_event(raw)
    except EventInvalid as exc:
        raise ApiError(
            400,
            "validation_failed",
            "The event breaks the contract: see details per field and docs/EVENTS.md.",
            exc.errors,
        ) from None
    mrn = (event["data"].get("patient") or {}).get("mrn")
    ctx.patient_id = f"mrn:{mrn}" if mrn else None
    first_recorded_at = gw.rpc.call("intake", "conflicting_duplicate", event=dump_event(event))
    if first_recorded_at:
        raise ApiError(
            409,
            "conflicting_duplicate",
            (
                f"An event with source {event['source']!r} and event_id {event['event_id']!r} was "
                f"recorded at {first_recorded_at} with other content; "
                "this one would change nothing. "
                "Send the correction as a new event with its own event_id."
            ),
            {"first_recorded_at": first_recorded_at},
        )
    try:
        publish(gw.config["amqp_uri"], HOSPITAL_EXCHANGE, event["event_type"], raw)
    except Exception as exc:
        raise ServiceUnavailable("broker", f"{exc.__class__.__name__}: {exc}") from None
    return json_response({"event_id": event["event_id"], "status": "accepted"}, 202)
