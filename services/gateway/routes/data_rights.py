"""Patients' data rights (README.md § Data protection; PIPL art. 45 and 47, GDPR art. 15
and 17): a copy of everything HCRM holds about a person, and the erasure of their personal
data. Both are audited; an erasure's audit entry says who, when and why, never whom by name.
"""

import datetime
import uuid

from marshmallow import RAISE, Schema, fields, validate
from werkzeug.wrappers import Response

from services.gateway import export_html, privacy
from services.gateway.http import ADMINS, MANAGERS, json_response, route
from shared.log import mask_text
from shared.privacy import redact, secrets_of

# The services that hold something about a person, in the export's order (hl7 is asked by MRN).
HOLDERS = ("followup", "appointments", "complaints", "analytics", "campaigns")


class ExportQuery(Schema):
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "html"]))


class EraseRequest(Schema):
    class Meta:
        unknown = RAISE

    reason = fields.String(
        required=True,
        validate=validate.Length(
            min=3,
            max=500,
            error="3 to 500 characters: why the person's data is erased (a request's "
            "reference, not the person's name).",
        ),
    )


def build_export(gw, ctx, patient_id):
    """One JSON document: what every service holds about the person, one RPC each (a service
    that does not answer fails the export with 503: an incomplete copy would mislead)."""
    intake = gw.rpc.call("intake", "export_patient", patient_id=patient_id)
    ids, mrns = intake["patient_ids"], intake["mrns"]
    document = {
        "format": "hcrm-patient-export/1",
        "patient_id": intake["patient_id"],
        "patient_ids": ids,
        "mrns": mrns,
        "generated_at": datetime.datetime.now(datetime.UTC).isoformat(),
        "generated_by": ctx.user,
        "intake": intake,
    }
    configured = set(gw.config["services"])
    for service in HOLDERS:
        if service in configured:
            document[service] = gw.rpc.call(
                service, "export_patient", patient_id=intake["patient_id"], patient_ids=ids
            )
    if "hl7" in configured:
        document["hl7"] = gw.rpc.call(
            "hl7", "export_patient", patient_id=intake["patient_id"], patient_ids=ids, mrns=mrns
        )
    document["gateway"] = {"audit": privacy.audit_of(gw.store.db, ids, mrns)}
    return document


@route(
    "GET",
    "/api/v1/patients/<patient_id>/export",
    roles=MANAGERS,
    audit=True,
    query=ExportQuery,
    content_type="application/json,text/html; charset=utf-8",
)
def export_patient(gw, ctx, patient_id):
    """Everything HCRM holds about the person, as JSON or as a readable page (format=html):
    the record and its events, tasks and call outcomes, appointments and reminders, complaints
    with their history, the figures' facts, HL7 messages, and who used the record (audit)."""
    document = build_export(gw, ctx, patient_id)
    filename = f"patient-{document['patient_id']}"
    if ctx.query(ExportQuery)["format"] == "html":
        return Response(
            export_html.render(document),
            content_type="text/html; charset=utf-8",
            headers={"Content-Disposition": f"inline; filename={filename}.html"},
        )
    return json_response(
        document, headers={"Content-Disposition": f"inline; filename={filename}.json"}
    )


@route(
    "POST",
    "/api/v1/patients/<patient_id>/erase",
    roles=ADMINS,
    audit=True,
    body=EraseRequest,
    status=202,
)
def erase_patient(gw, ctx, patient_id):
    """Erase the person's personal data in every service (202: intake has erased its record and
    recorded PatientErased; the other services act on that event within seconds). Counts and
    figures stay as they were; pending calls, reminders and open complaints are cancelled with
    the reason "erased"; a later event with the same MRN starts a new record. Asked again, the
    same erasure is applied again and answered."""
    reason = ctx.body(EraseRequest)["reason"]
    profile = gw.rpc.call("intake", "get_patient", patient_id=patient_id)
    mrns = [mrn for mrn in [profile.get("mrn"), *(profile.get("merged_mrns") or [])] if mrn]
    secrets = secrets_of(profile.get("name"), profile.get("phone"), mrns)
    # The audit keeps why, without whom: the reason loses the person's name, phone and MRNs.
    ctx.audit_extra = {"action": "erase", "reason": mask_text(redact(reason, secrets))}
    privacy.forget_in_audit(gw.store.db, secrets, mrns, profile["patient_id"])
    answer = gw.rpc.call(
        "intake", "erase_patient", patient_id=patient_id, erasure_id=uuid.uuid4().hex
    )
    ctx.patient_id = answer["patient_id"]
    ctx.audit_extra.update(
        erasure_id=answer["erasure_id"], already_erased=bool(profile.get("erased_at"))
    )
    return json_response({**answer, "status": "accepted"}, 202)
