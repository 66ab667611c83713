"""The JSON Schema of the inbound contract's marshmallow fields and schemas (shared/events.py).

docs/asyncapi.yaml describes the inbound events with it (shared/asyncapi.py), and intake's
outbound copies of them declare their `data` fields with it (shared/outbound.py): intake
republishes an accepted event's data unchanged, so the two can never disagree.
"""

from typing import Any

from marshmallow import Schema, fields, validate

from shared import phones, schema_fields


def field_schema(field: fields.Field) -> dict[str, Any]:
    if isinstance(field, fields.Nested):
        nested = field.nested
        return object_schema(nested if isinstance(nested, type) else type(nested))
    schema: dict[str, Any] = {}
    if isinstance(field, schema_fields.StrictBoolean):
        schema["type"] = "boolean"
    elif isinstance(field, fields.Integer):
        schema["type"] = "integer"
    elif isinstance(field, fields.AwareDateTime):
        schema.update(
            type="string",
            format="date-time",
            description="ISO 8601 with a UTC offset; a time without offset is rejected",
        )
    elif isinstance(field, fields.Date):
        schema.update(type="string", format="date")
    elif isinstance(field, fields.Dict):
        schema["type"] = "object"
    else:
        schema["type"] = "string"
    if isinstance(field, schema_fields.Phone):
        schema["pattern"] = phones.PHONE_PATTERN.pattern
    for validator in field.validators:
        if isinstance(validator, validate.Length):
            if validator.min is not None:
                schema["minLength"] = validator.min
            if validator.max is not None:
                schema["maxLength"] = validator.max
        elif isinstance(validator, validate.OneOf):
            schema["enum"] = list(validator.choices)
        elif isinstance(validator, validate.Equal):
            schema["const"] = validator.comparable
    return schema


def object_schema(schema_cls: type[Schema]) -> dict[str, Any]:
    declared = schema_cls._declared_fields
    body: dict[str, Any] = {
        "type": "object",
        "properties": {name: field_schema(field) for name, field in declared.items()},
    }
    required = [name for name, field in declared.items() if field.required]
    if required:
        body["required"] = required
    return body
