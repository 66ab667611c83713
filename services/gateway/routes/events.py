"""Inbound events over HTTP: the same contract as AMQP, validated here, then published to
hospital.events with a broker confirm, so intake handles both transports alike."""
from services.gateway import openapi
from services.gateway.http import PUBLISHERS, ApiError, json_response, route
from services.gateway.rpc import ServiceUnavailable
from shared.events import EventInvalid, load_event
from shared.messaging import publish
from shared.topology import HOSPITAL_EXCHANGE


@route("POST", "/api/v1/events", roles=PUBLISHERS, audit=True, status=202, body=openapi.event_body())
def post_event(gw, ctx):
    """Publish one inbound event (EVENTS.md): a write of patient data, so it is audited."""
    raw = ctx.json_body()
    try:
        event = load_event(raw)
    except EventInvalid as exc:
        raise ApiError(400, "validation_failed", "The event breaks the contract (EVENTS.md).",
                       exc.errors) from None
    mrn = (event["data"].get("patient") or {}).get("mrn")
    ctx.patient_id = f"mrn:{mrn}" if mrn else None
    try:
        publish(gw.config["amqp_uri"], HOSPITAL_EXCHANGE, event["event_type"], raw)
    except Exception as exc:
        raise ServiceUnavailable("broker", f"{exc.__class__.__name__}: {exc}") from None
    return json_response({"event_id": event["event_id"], "status": "accepted"}, 202)
