"""Complaints: logging, the queue, state changes, assignment and the weekly report."""

from marshmallow import RAISE, Schema, fields, validate

from services.gateway import schemas
from services.gateway.http import (
    MANAGERS,
    STAFF,
    about_patient,
    json_response,
    report_response,
    route,
)

# As services/complaints/domain.py declares them (the gateway imports no service's package).
STATUSES = ("open", "acknowledged", "resolved", "escalated")
SEVERITIES = ("low", "medium", "high")


class ComplaintCreate(Schema):
    class Meta:
        unknown = RAISE

    patient_id = fields.String(allow_none=True, validate=validate.Length(min=1, max=64))
    channel = fields.String(required=True, validate=validate.Length(min=1, max=20))
    category = fields.String(required=True, validate=validate.Length(min=1, max=50))
    department = fields.String(allow_none=True, validate=validate.Length(min=1, max=100))
    severity = fields.String(required=True, validate=validate.OneOf(SEVERITIES))
    description = fields.String(required=True, validate=validate.Length(min=1, max=4000))
    received_at = fields.AwareDateTime(format="iso")


class Note(Schema):
    class Meta:
        unknown = RAISE

    note = fields.String(allow_none=True, validate=validate.Length(max=4000))
    resolution = fields.String(allow_none=True, validate=validate.Length(max=4000))


class Assignment(Schema):
    class Meta:
        unknown = RAISE

    agent = fields.String(required=True, validate=validate.Length(min=1, max=64))


class ComplaintQuery(schemas.PageQuery):
    status = fields.String(validate=validate.OneOf(STATUSES))
    severity = fields.String(validate=validate.OneOf(SEVERITIES))
    patient_id = fields.String(validate=validate.Length(min=1, max=64))
    category = fields.String(validate=validate.Length(min=1, max=50))
    department = fields.String(validate=validate.Length(min=1, max=100))


class ReportQuery(Schema):
    week_start = fields.Date()
    format = fields.String(load_default="json", validate=validate.OneOf(["json", "csv"]))


@route("POST", "/api/v1/complaints", roles=STAFF, audit=True, body=ComplaintCreate, status=201)
def open_complaint(gw, ctx):
    body = ctx.body(ComplaintCreate)
    if body.get("received_at"):
        body["received_at"] = body["received_at"].isoformat()
    return about_patient(
        ctx, gw.rpc.call("complaints", "open_complaint", opened_by=ctx.user, **body), 201
    )


@route("GET", "/api/v1/complaints", roles=STAFF, audit=True, query=ComplaintQuery)
def list_complaints(gw, ctx):
    return json_response(gw.rpc.call("complaints", "list_complaints", **ctx.query(ComplaintQuery)))


@route(
    "GET",
    "/api/v1/complaints/reports/weekly",
    roles=MANAGERS,
    query=ReportQuery,
    content_type="application/json,text/csv; charset=utf-8",
)
def weekly_report(gw, ctx):
    query = ctx.query(ReportQuery)
    week = query["week_start"].isoformat() if query.get("week_start") else None
    report = gw.rpc.call("complaints", "weekly_report", week_start=week, format=query["format"])
    return report_response(report, query["format"], "service-opinion-report")


@route("GET", "/api/v1/complaints/<complaint_id>", roles=STAFF, audit=True)
def get_complaint(gw, ctx, complaint_id):
    return about_patient(ctx, gw.rpc.call("complaints", "get_complaint", complaint_id=complaint_id))


def _transition(action, roles):
    def handler(gw, ctx, complaint_id):
        body = ctx.body(Note)
        kwargs = {"note": body.get("note")}
        if action == "resolve":
            kwargs["resolution"] = body.get("resolution")
        return about_patient(
            ctx,
            gw.rpc.call("complaints", action, complaint_id=complaint_id, actor=ctx.user, **kwargs),
        )

    handler.__name__ = f"{action}_complaint"
    route(
        "POST", f"/api/v1/complaints/<complaint_id>/{action}", roles=roles, audit=True, body=Note
    )(handler)


_transition("acknowledge", STAFF)
_transition("resolve", STAFF)
_transition("escalate", MANAGERS)  # docs/API.md: escalation is for managers


@route(
    "POST", "/api/v1/complaints/<complaint_id>/assign", roles=MANAGERS, audit=True, body=Assignment
)
def assign_complaint(gw, ctx, complaint_id):
    body = ctx.body(Assignment)
    return about_patient(
        ctx,
        gw.rpc.call(
            "complaints", "assign", complaint_id=complaint_id, actor=ctx.user, agent=body["agent"]
        ),
    )
