"""Appointments configuration: working hours, reminders, templates, the notifier."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shared.config import BaseConfig, WebhookNeedsUrl

TIME = validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$", error="A time HH:MM.")


class PeriodSchema(Schema):
    days = fields.List(
        fields.Integer(validate=validate.Range(min=0, max=6)),
        required=True,
        validate=validate.Length(min=1),
    )
    start = fields.String(required=True, validate=TIME)
    end = fields.String(required=True, validate=TIME)

    @validates_schema
    def _ordered(self, data, **kwargs):
        if data["end"] <= data["start"]:
            raise ValidationError("end must be after start.")


def _periods(**kwargs):
    return fields.List(fields.Nested(PeriodSchema), validate=validate.Length(min=1), **kwargs)


class WorkingHoursSchema(Schema):
    default = _periods(
        load_default=[
            {"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "12:00"},
            {"days": [0, 1, 2, 3, 4], "start": "13:30", "end": "17:30"},
            {"days": [5], "start": "08:00", "end": "12:00"},
        ]
    )
    departments = fields.Dict(keys=fields.String(), values=_periods(), load_default=dict)
    doctors = fields.Dict(keys=fields.String(), values=_periods(), load_default=dict)


class TemplateSchema(Schema):
    zh = fields.String(required=True)
    en = fields.String(required=True)


class AppointmentsConfig(WebhookNeedsUrl, BaseConfig):
    working_hours = fields.Nested(
        WorkingHoursSchema, load_default=lambda: WorkingHoursSchema().load({})
    )
    default_duration_minutes = fields.Integer(
        load_default=15, validate=validate.Range(min=5, max=480)
    )
    reminder_hours_before = fields.Float(
        load_default=24.0, validate=validate.Range(min=0.01, max=24 * 14)
    )
    no_show_grace_minutes = fields.Float(
        load_default=30, validate=validate.Range(min=0.01, max=24 * 60)
    )
    timer_interval_s = fields.Float(load_default=30.0, validate=validate.Range(min=0.1))
    reminder_kind = fields.String(load_default="sms", validate=validate.OneOf(["sms", "call"]))
    default_language = fields.String(load_default="zh", validate=validate.OneOf(["zh", "en"]))
    templates = fields.Dict(
        keys=fields.String(validate=validate.OneOf(["sms", "call"])),
        values=fields.Nested(TemplateSchema),
        load_default=dict,
    )
    # "outbox": record in the notifications collection and the log;
    # "webhook": POST to an SMS gateway.
    notifier = fields.String(load_default="outbox", validate=validate.OneOf(["outbox", "webhook"]))
    webhook_url = fields.String(load_default=None, validate=validate.Regexp(r"^https?://"))
    webhook_token = fields.String(load_default=None, metadata={"secret": True})
