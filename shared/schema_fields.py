"""marshmallow building blocks of the schemas here: strict fields, the tolerant base schema,
and one cached instance per schema class."""

import functools
from collections.abc import Mapping
from typing import Any

from marshmallow import EXCLUDE, Schema, ValidationError, fields

from shared.phones import is_valid_phone


class StrictBoolean(fields.Field):
    """JSON true/false only: "yes", 1 or "true" are type errors, not consent."""

    # marshmallow's way of giving a field its messages (a class attribute it merges per class)
    default_error_messages = {"invalid": "Not a valid boolean: use true or false."}  # noqa: RUF012

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> bool:
        if not isinstance(value, bool):
            raise self.make_error("invalid")
        return value


class Phone(fields.String):
    """A phone number by the rules of shared/phones.py, kept as it was written."""

    def _deserialize(
        self, value: Any, attr: str | None, data: Mapping[str, Any] | None, **kwargs: Any
    ) -> str:
        text = super()._deserialize(value, attr, data, **kwargs)
        if not is_valid_phone(text):
            raise ValidationError(
                "Not a valid phone number: digits, an optional leading +, spaces and dashes."
            )
        return text


class StrictSchema(Schema):
    """Unknown fields are ignored (tolerant reader); every declared field is strict."""

    class Meta:
        unknown = EXCLUDE


AWARE_DATETIME_HELP = (
    "Not a valid date-time: use ISO 8601 with an offset, such as 2026-12-01T09:30:00+08:00."
)


def aware_datetime(required: bool = True) -> fields.AwareDateTime:
    # Every message says how to fix it: a time without an offset is the common mistake.
    return fields.AwareDateTime(
        format="iso",
        required=required,
        error_messages={
            "invalid": AWARE_DATETIME_HELP,
            "invalid_awareness": AWARE_DATETIME_HELP,
            "format": AWARE_DATETIME_HELP,
        },
    )


@functools.cache
def schema_of(schema_cls: type[Schema]) -> Schema:
    """One instance per schema class: building one binds and copies every field, which cost
    a tenth of intake's CPU per event when done per call (bench/README.md); marshmallow 4
    schemas keep no state between loads, so one instance serves every worker."""
    return schema_cls()
