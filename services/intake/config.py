"""Intake's configuration: the shared settings plus its own rules."""

from marshmallow import fields, validate

from shared.config import BaseConfig


class IntakeConfig(BaseConfig):
    # Stage "recovering" lasts this many days after a discharge, then "recovered".
    recovering_days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=3650))
    # Retention of the inbound events' personal data (README.md § Data protection): past this,
    # an event keeps its ids, times and codes, and of its person only what the record still
    # shows. As long as the medical record itself must be kept in China: 15 years for
    # outpatient records, 30 for inpatient ones (admissions, discharges and their corrections).
    event_retention_days = fields.Float(load_default=5479, validate=validate.Range(min=0.00001))
    inpatient_event_retention_days = fields.Float(
        load_default=10958, validate=validate.Range(min=0.00001)
    )
