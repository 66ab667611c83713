"""Marshmallow schemas at the HTTP edge: query strings and bodies the gateway accepts."""

from marshmallow import EXCLUDE, RAISE, Schema, fields, validate

from services.gateway.auth import ROLES
from shared.paging import MAX_PAGE


class PageQuery(Schema):
    class Meta:
        unknown = EXCLUDE

    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=MAX_PAGE))
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=10_000_000))


class PatientSearchQuery(PageQuery):
    mrn = fields.String(validate=validate.Length(min=1, max=64))
    phone = fields.String(validate=validate.Length(min=3, max=40))
    q = fields.String(validate=validate.Length(min=1, max=100))


class TokenRequest(Schema):
    class Meta:
        unknown = RAISE  # mass assignment: an unexpected field is an error, not ignored

    username = fields.String(required=True, validate=validate.Length(min=1, max=64))
    password = fields.String(required=True, validate=validate.Length(min=1, max=256))


class UserCreate(Schema):
    class Meta:
        unknown = RAISE

    username = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[A-Za-z0-9_.@-]{3,64}$",
            error="3 to 64 letters, digits or the characters . _ @ -, such as li.na.",
        ),
    )
    password = fields.String(
        required=True,
        validate=validate.Length(
            min=10, max=256, error="10 to 256 characters: choose a longer password."
        ),
    )
    role = fields.String(required=True, validate=validate.OneOf(ROLES))


class ApiKeyCreate(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(
        required=True,
        validate=validate.Regexp(
            r"^[A-Za-z0-9_. -]{3,64}$",
            error="3 to 64 letters, digits, spaces or the characters . _ -, such as his-feed.",
        ),
    )


class AuditQuery(PageQuery):
    patient_id = fields.String(validate=validate.Length(min=1, max=64))
    user = fields.String(validate=validate.Length(min=1, max=64))
