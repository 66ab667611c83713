"""HL7 v2 over HTTP (docs/HL7.md): one message in, its ACK out, through the HL7 listener's own
code path (RPC hl7.receive, the same as an MLLP frame); and the feed's admin view."""

import base64

from werkzeug.wrappers import Response

from services.gateway import schemas
from services.gateway.http import ADMINS, PUBLISHERS, ApiError, json_response, route

HL7_MEDIA_TYPE = "x-application/hl7-v2+er7"
# What a client may name its body: the contract's type, its unprefixed spelling, plain text.
ACCEPTED_MEDIA_TYPES = (
    HL7_MEDIA_TYPE,
    "application/hl7-v2+er7",
    "application/hl7-v2",
    "text/plain",
)
MESSAGE_SCHEMA = {
    "type": "string",
    "minLength": 8,
    "description": "One HL7 v2 message (ER7: segments separated by \\r), starting with "
    "MSH. Its character set is MSH-18's (or the Content-Type charset, "
    "else the configured default, UTF-8).",
}
# The request body as the OpenAPI document gives it (a media type other than JSON).
HL7_BODY = {
    "content": {media: {"schema": MESSAGE_SCHEMA} for media in (HL7_MEDIA_TYPE, "text/plain")}
}


@route(
    "POST", "/api/v1/hl7", roles=PUBLISHERS, audit=True, body=HL7_BODY, content_type=HL7_MEDIA_TYPE
)
def post_hl7(gw, ctx):
    """Receive one HL7 v2 message; the answer (200) is its ACK (MSA-1 AA, AE or AR).

    A write of patient data, so it is audited (under the MRNs the message names)."""
    if ctx.request.mimetype not in ACCEPTED_MEDIA_TYPES:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"Send one HL7 v2 message with Content-Type: {HL7_MEDIA_TYPE}.",
            {"Content-Type": [f"Got {ctx.request.mimetype or 'none'}; expected {HL7_MEDIA_TYPE}."]},
        )
    raw = ctx.request.get_data(cache=True)  # over max_body_bytes: 413
    if not raw.strip():
        raise ApiError(
            400,
            "validation_failed",
            "The body is empty: send one HL7 v2 message.",
            {"_body": ["Empty."]},
        )
    answer = gw.rpc.call(
        "hl7",
        "receive",
        raw_base64=base64.b64encode(raw).decode("ascii"),
        charset=ctx.request.mimetype_params.get("charset"),
    )
    if answer.get("mrns"):
        ctx.patient_id = ",".join(f"mrn:{mrn}" for mrn in answer["mrns"])[:500]
    if not answer.get("ack_base64"):
        raise ApiError(
            400,
            "validation_failed",
            "The message has no readable MSH segment.",
            {"_body": ["No readable MSH segment."]},
        )
    return Response(
        base64.b64decode(answer["ack_base64"]),
        status=200,
        content_type=f"{HL7_MEDIA_TYPE}; charset={answer.get('charset') or 'utf-8'}",
        headers={"X-HL7-Ack-Code": answer.get("ack_code") or ""},
    )


@route("GET", "/api/v1/hl7/messages", roles=ADMINS, query=schemas.PageQuery)
def hl7_messages(gw, ctx):
    """The HL7 feed: recent messages (no message text, reasons masked) and the counts by
    trigger and ACK code."""
    page = ctx.query(schemas.PageQuery)
    recent = gw.rpc.call("hl7", "recent", **page)
    return json_response({**recent, "counts": gw.rpc.call("hl7", "counts")})
