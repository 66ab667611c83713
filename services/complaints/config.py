"""Complaints configuration: categories, deadlines per severity, the SLA timer."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.complaints.domain import DEFAULT_CATEGORIES, DEFAULT_DEADLINES, SEVERITIES
from shared.config import BaseConfig, EnvList


class DeadlineSchema(Schema):
    acknowledge_hours = fields.Float(required=True, validate=validate.Range(min=0.01, max=24 * 90))
    resolve_hours = fields.Float(required=True, validate=validate.Range(min=0.01, max=24 * 365))

    @validates_schema
    def _resolve_after_ack(self, data, **kwargs):
        if data["resolve_hours"] < data["acknowledge_hours"]:
            raise ValidationError("resolve_hours must not be shorter than acknowledge_hours.")


class ComplaintsConfig(BaseConfig):
    categories = EnvList(
        fields.String(validate=validate.Length(min=1, max=50)),
        load_default=list(DEFAULT_CATEGORIES),
        validate=validate.Length(min=1),
    )
    deadlines = fields.Dict(
        keys=fields.String(validate=validate.OneOf(SEVERITIES)),
        values=fields.Nested(DeadlineSchema),
    )
    sla_check_interval_s = fields.Float(load_default=10.0, validate=validate.Range(min=0.1))
    # How often to check whether last week's service-opinion report is due (sent once a week).
    report_check_interval_s = fields.Float(load_default=3600.0, validate=validate.Range(min=0.1))


def deadline_table(config):
    table = dict(DEFAULT_DEADLINES)
    for severity, rule in (config.get("deadlines") or {}).items():
        table[severity] = (rule["acknowledge_hours"], rule["resolve_hours"])
    return table
