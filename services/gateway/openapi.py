"""The OpenAPI 3 document of the gateway, generated from the routes' declarations.

Every `@route` names its roles, its query and body schemas (the marshmallow classes the
handler validates with) and its success status; this module turns those into the document
served at /api/v1/openapi.json. A route added anywhere is documented by being declared.
"""

import re

from marshmallow import fields, validate

from services.gateway.auth import ROLES, role_allows
from services.gateway.http import ROUTES
from shared import events, phones, schema_fields

TITLE = "HCRM gateway"
VERSION = "1.0.0"
DOCUMENTED_ROOTS = ("/api/", "/healthz", "/readyz", "/metrics")
PATH_PARAM = re.compile(r"<(?:[a-z]+:)?([a-z_]+)>")

ERROR = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message", "details"],
            "additionalProperties": False,
            "properties": {
                "code": {"type": "string"},
                "message": {"type": "string"},
                "details": {"type": "object"},
            },
        }
    },
}
LISTED = {
    "type": "object",
    "required": ["items", "total"],
    "properties": {
        "items": {"type": "array", "items": {"type": "object"}},
        "total": {"type": "integer", "minimum": 0},
    },
}
ERROR_TEXT = {
    400: "Invalid input: details maps each field path to its messages",
    401: "Missing, invalid or expired credentials",
    403: "The role may not use this route",
    404: "Unknown id",
    409: "Conflict: taken slot, illegal state change, or a conflicting duplicate event",
    413: "Body over the limit",
    415: "The body's Content-Type is not one the route accepts",
    429: "Too many requests (rate limit or login throttle)",
    503: "A service or the broker is unavailable; details.service names it",
}


def field_schema(field):
    """JSON schema (OpenAPI 3.0 dialect) of one marshmallow field."""
    if isinstance(field, fields.Nested):
        nested = field.nested if isinstance(field.nested, type) else type(field.nested)
        schema = object_schema(nested)
    elif isinstance(field, fields.List):
        schema = {"type": "array", "items": field_schema(field.inner)}
    elif isinstance(field, (fields.Boolean, schema_fields.StrictBoolean)):
        schema = {"type": "boolean"}
    elif isinstance(field, fields.Integer):
        schema = {"type": "integer"}
    elif isinstance(field, (fields.Float, fields.Decimal)):
        schema = {"type": "number"}
    elif isinstance(field, fields.DateTime):  # AwareDateTime included: an offset is required
        schema = {"type": "string", "format": "date-time"}
    elif isinstance(field, fields.Date):
        schema = {"type": "string", "format": "date"}
    elif isinstance(field, fields.Dict):
        schema = {"type": "object"}
    else:
        schema = {"type": "string"}
    if isinstance(field, schema_fields.Phone):
        schema["pattern"] = phones.PHONE_PATTERN.pattern
    for rule in field.validators:
        if isinstance(rule, validate.Length):
            low, high = (
                ("minItems", "maxItems")
                if schema.get("type") == "array"
                else ("minLength", "maxLength")
            )
            if rule.min is not None:
                schema[low] = rule.min
            if rule.max is not None:
                schema[high] = rule.max
        elif isinstance(rule, validate.Range):
            if rule.min is not None:
                schema["minimum"] = rule.min
            if rule.max is not None:
                schema["maximum"] = rule.max
        elif isinstance(rule, validate.OneOf):
            schema["enum"] = list(rule.choices)
        elif isinstance(rule, validate.Equal):
            schema["enum"] = [rule.comparable]
        elif isinstance(rule, validate.Regexp):
            schema["pattern"] = rule.regex.pattern
    if field.allow_none:
        schema["nullable"] = True
    if field.metadata.get("description"):
        schema["description"] = field.metadata["description"]
    return schema


def object_schema(schema_cls, strict=None):
    declared = schema_cls._declared_fields
    body = {"type": "object", "properties": {}}
    required = []
    for name, field in declared.items():
        if field.dump_only:
            continue
        key = field.data_key or name
        body["properties"][key] = field_schema(field)
        if field.required:
            required.append(key)
    if required:
        body["required"] = required
    unknown = (
        getattr(schema_cls.Meta, "unknown", None)
        if strict is None
        else ("raise" if strict else None)
    )
    if unknown == "raise":
        body["additionalProperties"] = False  # mass assignment is refused with 400
    return body


def event_body():
    """POST /api/v1/events: one inbound event of docs/EVENTS.md, the envelope with its typed
    data."""
    variants = []
    for event_type, data_schema in events.DATA_SCHEMAS.items():
        envelope = object_schema(events.EnvelopeSchema, strict=False)
        envelope["properties"]["event_type"] = {"type": "string", "enum": [event_type]}
        envelope["properties"]["data"] = object_schema(data_schema, strict=False)
        variants.append(envelope)
    return {"oneOf": variants}


def _parameters(spec):
    params = [
        {
            "name": name,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "minLength": 1, "maxLength": 64},
        }
        for name in PATH_PARAM.findall(spec.path)
    ]
    if spec.query is not None:
        for name, field in spec.query._declared_fields.items():
            params.append(
                {
                    "name": field.data_key or name,
                    "in": "query",
                    "required": bool(field.required),
                    "schema": field_schema(field),
                }
            )
    return params


def _responses(spec):
    listed = spec.query is not None and "limit" in spec.query._declared_fields
    content = {}
    for media in spec.content_type.split(","):
        if media.startswith("application/json"):
            content[media] = {"schema": LISTED if listed else {"type": "object"}}
        else:
            content[media] = {"schema": {"type": "string"}}
    ok = {"description": "Success", "content": content}
    codes = {429}
    if spec.roles is not None or spec.path == "/api/v1/auth/token":
        codes |= {401, 403} if spec.roles is not None else {401}
    if spec.query is not None or spec.body is not None:
        codes.add(400)
    if spec.body is not None:
        codes.add(413)
    if _request_content(spec) is not None:  # a body other than JSON (POST /api/v1/hl7)
        codes.add(415)
    if PATH_PARAM.search(spec.path):
        codes.add(404)
    if (
        (spec.method == "POST" and PATH_PARAM.search(spec.path))
        or spec.status == 201
        or spec.path == "/api/v1/events"
    ):  # v1.1: a conflicting duplicate
        codes.add(409)
    if (
        spec.path.startswith("/api/v1/") and spec.path != "/api/v1/auth/token"
    ) or spec.path == "/readyz":
        codes.add(503)
    responses = {str(spec.status): ok}
    for code in sorted(codes):
        responses[str(code)] = {
            "description": ERROR_TEXT[code],
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    if spec.path == "/readyz":
        responses["503"] = {
            "description": "Something is down: `down` names it",
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    return responses


def _operation(spec):
    doc = (spec.handler.__doc__ or spec.handler.__name__.replace("_", " ")).strip()
    operation = {
        "operationId": f"{spec.method.lower()}_{spec.handler.__name__}",
        "summary": doc.splitlines()[0],
        "tags": [spec.path.split("/")[3] if spec.path.startswith("/api/v1/") else "operations"],
        "parameters": _parameters(spec),
        "responses": _responses(spec),
    }
    if spec.roles is None:
        operation["security"] = []
    else:
        allowed = [role for role in ROLES if role_allows(role, spec.roles)]
        operation["description"] = (
            "Roles: "
            + ", ".join(allowed)
            + "."
            + (" Every call is written to the audit log." if spec.audit else "")
        )
    if spec.body is not None:
        schema = spec.body if isinstance(spec.body, dict) else object_schema(spec.body)
        operation["requestBody"] = {
            "required": True,
            "content": _request_content(spec) or {"application/json": {"schema": schema}},
        }
    return operation


def _request_content(spec):
    """The request body's media types, where the route gives them ({"content": {...}}) because
    its body is not JSON; else None."""
    return spec.body["content"] if isinstance(spec.body, dict) and "content" in spec.body else None


def document(server_url=None):
    paths = {}
    for spec in ROUTES:
        if not spec.public or not spec.path.startswith(DOCUMENTED_ROOTS):
            continue
        path = PATH_PARAM.sub(r"{\1}", spec.path)
        paths.setdefault(path, {})[spec.method.lower()] = _operation(spec)
    _link_created_resources(paths)
    doc = {
        "openapi": "3.0.3",
        "info": {
            "title": TITLE,
            "version": VERSION,
            "description": "The staff and integration API of HCRM (docs/API.md). "
            'Errors: {"error": {"code", "message", "details"}}. '
            "Lists: ?limit= (max 500) and ?offset=, answer {items, total}.",
        },
        "paths": dict(sorted(paths.items())),
        "components": {
            "schemas": {"Error": ERROR},
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "bearerFormat": "JWT",
                    "description": "POST /api/v1/auth/token",
                },
                "apiKey": {
                    "type": "apiKey",
                    "in": "header",
                    "name": "X-API-Key",
                    "description": "An integration key created by an admin",
                },
            },
        },
        "security": [{"bearer": []}, {"apiKey": []}],
    }
    if server_url:
        doc["servers"] = [{"url": server_url}]
    return doc


def _link_created_resources(paths):
    """OpenAPI links from a 201 to the operations on what it created (POST /complaints ->
    /complaints/{complaint_id}/...), so clients and stateful tests can follow them."""
    for path, operations in paths.items():
        created = operations.get("post", {}).get("responses", {}).get("201")
        if created is None:
            continue
        links = {}
        for other, other_operations in paths.items():
            match = re.match(re.escape(path) + r"/\{([a-z_]+)\}", other)
            if not match:
                continue
            for operation in other_operations.values():
                links[operation["operationId"]] = {
                    "operationId": operation["operationId"],
                    "parameters": {match.group(1): f"$response.body#/{match.group(1)}"},
                }
        if links:
            created["links"] = links
