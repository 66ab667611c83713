"""Intake's configuration: the shared settings plus its own rules."""
from marshmallow import fields, validate

from shared.config import BaseConfig


class IntakeConfig(BaseConfig):
    # Stage "recovering" lasts this many days after a discharge, then "recovered".
    recovering_days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=3650))
