"""Follow-up worklists and outcomes (followup over RPC). Patient data: every call audited."""

from marshmallow import RAISE, Schema, fields, validate

from services.gateway import schemas
from services.gateway.http import STAFF, about_patient, json_response, route

# As services/followup/domain.py declares them (the gateway imports no service's package).
KINDS = (
    "post_visit_call",
    "post_discharge_call",
    "recovery_check",
    "return_visit_reminder",
    "prospect_call",
    "no_show_call",
    "campaign_call",
)
STATUSES = ("pending", "done", "cancelled")
OUTCOMES = ("reached", "unreachable", "declined")


class FollowupQuery(schemas.PageQuery):
    status = fields.String(validate=validate.OneOf(STATUSES))
    kind = fields.String(validate=validate.OneOf(KINDS))
    patient_id = fields.String(validate=validate.Length(min=1, max=64))
    department = fields.String(validate=validate.Length(min=1, max=100))
    due_after = fields.AwareDateTime(format="iso")
    due_before = fields.AwareDateTime(format="iso")
    overdue = fields.Boolean()
    due_today = fields.Boolean()


class Completion(Schema):
    class Meta:
        unknown = RAISE

    outcome = fields.String(required=True, validate=validate.OneOf(OUTCOMES))
    satisfaction = fields.Integer(
        strict=True, allow_none=True, validate=validate.Range(min=1, max=5)
    )
    notes = fields.String(allow_none=True, validate=validate.Length(max=4000))
    # What the patient complained of, in the agent's words: followup's complaint_text.
    complaint_text = fields.String(
        data_key="complaint", allow_none=True, validate=validate.Length(max=4000)
    )
    # v1.1: the service-quality survey answered during the call, any subset of the configured
    # items (followup checks the names), each 1-5: {"doctor": 5, "waiting": 2}.
    survey = fields.Dict(
        keys=fields.String(
            validate=validate.Regexp(
                r"^[a-z][a-z0-9_]{0,31}$", error="An item name, such as doctor."
            )
        ),
        values=fields.Integer(strict=True, validate=validate.Range(min=1, max=5)),
        validate=validate.Length(min=1, max=20),
    )


def _rpc_query(query):
    return {
        key: value.isoformat() if hasattr(value, "isoformat") else value
        for key, value in query.items()
    }


@route("GET", "/api/v1/followups", roles=STAFF, audit=True, query=FollowupQuery)
def list_followups(gw, ctx):
    query = ctx.query(FollowupQuery)
    return json_response(gw.rpc.call("followup", "list_followups", **_rpc_query(query)))


@route("GET", "/api/v1/followups/<followup_id>", roles=STAFF, audit=True)
def get_followup(gw, ctx, followup_id):
    return about_patient(ctx, gw.rpc.call("followup", "get_followup", followup_id=followup_id))


@route("GET", "/api/v1/followups/<followup_id>/contact", roles=STAFF, audit=True)
def reveal_phone(gw, ctx, followup_id):
    """The phone is shown on request only, and the request is audited (who saw which number)."""
    return about_patient(ctx, gw.rpc.call("followup", "contact", followup_id=followup_id))


@route("POST", "/api/v1/followups/<followup_id>/claim", roles=STAFF, audit=True)
def claim_followup(gw, ctx, followup_id):
    return about_patient(
        ctx, gw.rpc.call("followup", "claim", followup_id=followup_id, agent=ctx.user)
    )


@route("POST", "/api/v1/followups/<followup_id>/complete", roles=STAFF, audit=True, body=Completion)
def complete_followup(gw, ctx, followup_id):
    body = ctx.body(Completion)
    return about_patient(
        ctx, gw.rpc.call("followup", "complete", followup_id=followup_id, agent=ctx.user, **body)
    )
