"""Appointments: booking (409 when the doctor's slot is taken), the day's list, confirm,
cancel, check-in and reschedule (appointments over RPC). Patient data: audited."""

from marshmallow import RAISE, Schema, fields, validate

from services.gateway import schemas
from services.gateway.http import STAFF, about_patient, json_response, route

# As services/appointments/domain.py declares them (the gateway imports no service's package).
STATUSES = ("booked", "confirmed", "checked_in", "attended", "cancelled", "no_show")


class Booking(Schema):
    class Meta:
        unknown = RAISE

    patient_id = fields.String(required=True, validate=validate.Length(min=1, max=64))
    department = fields.String(required=True, validate=validate.Length(min=1, max=100))
    doctor_id = fields.String(allow_none=True, validate=validate.Length(min=1, max=64))
    starts_at = fields.AwareDateTime(format="iso", required=True)
    duration_minutes = fields.Integer(strict=True, validate=validate.Range(min=5, max=480))
    channel = fields.String(
        required=True,
        validate=validate.OneOf(
            ["phone", "web", "wechat", "qq", "email", "walk_in", "follow_up", "other"]
        ),
    )
    language = fields.String(validate=validate.OneOf(["zh", "en"]))


class Reschedule(Schema):
    class Meta:
        unknown = RAISE

    starts_at = fields.AwareDateTime(format="iso", required=True)
    duration_minutes = fields.Integer(strict=True, validate=validate.Range(min=5, max=480))


class AppointmentQuery(schemas.PageQuery):
    date = fields.Date()
    department = fields.String(validate=validate.Length(min=1, max=100))
    doctor_id = fields.String(validate=validate.Length(min=1, max=64))
    status = fields.String(validate=validate.OneOf(STATUSES))
    patient_id = fields.String(validate=validate.Length(min=1, max=64))


@route("POST", "/api/v1/appointments", roles=STAFF, audit=True, body=Booking, status=201)
def book(gw, ctx):
    body = ctx.body(Booking)
    body["starts_at"] = body["starts_at"].isoformat()
    return about_patient(ctx, gw.rpc.call("appointments", "book", booked_by=ctx.user, **body), 201)


@route("GET", "/api/v1/appointments", roles=STAFF, audit=True, query=AppointmentQuery)
def list_appointments(gw, ctx):
    query = ctx.query(AppointmentQuery)
    if query.get("date"):
        query["date"] = query["date"].isoformat()
    return json_response(gw.rpc.call("appointments", "list_appointments", **query))


@route("GET", "/api/v1/appointments/<appointment_id>", roles=STAFF, audit=True)
def get_appointment(gw, ctx, appointment_id):
    return about_patient(
        ctx, gw.rpc.call("appointments", "get_appointment", appointment_id=appointment_id)
    )


@route(
    "POST",
    "/api/v1/appointments/<appointment_id>/reschedule",
    roles=STAFF,
    audit=True,
    body=Reschedule,
)
def reschedule(gw, ctx, appointment_id):
    body = ctx.body(Reschedule)
    body["starts_at"] = body["starts_at"].isoformat()
    return about_patient(
        ctx,
        gw.rpc.call(
            "appointments", "reschedule", appointment_id=appointment_id, actor=ctx.user, **body
        ),
    )


def _state_route(path, method_name):
    def handler(gw, ctx, appointment_id):
        return about_patient(
            ctx,
            gw.rpc.call("appointments", method_name, appointment_id=appointment_id, actor=ctx.user),
        )

    handler.__name__ = f"{method_name}_appointment"
    route("POST", f"/api/v1/appointments/<appointment_id>/{path}", roles=STAFF, audit=True)(handler)


_state_route("confirm", "confirm")
_state_route("cancel", "cancel")
_state_route("check-in", "check_in")
