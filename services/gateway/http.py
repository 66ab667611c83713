"""The gateway's HTTP vocabulary: routes, the request context, the one error type.

A route declares its query and body schemas (marshmallow) in `@route`: the handler validates
with exactly those (ctx.query() / ctx.body()), and the OpenAPI document (openapi.py) is
generated from the same declarations, so the two cannot drift apart.
"""

import dataclasses
import datetime
import json

from marshmallow import ValidationError
from werkzeug.wrappers import Response

from shared import errors
from shared.errors import flatten_errors
from shared.schema_fields import schema_of

STAFF = ("agent",)  # agent and every higher staff role
MANAGERS = ("manager",)
ADMINS = ("admin",)
PUBLISHERS = ("integration", "admin")


class ApiError(Exception):
    def __init__(self, status, code, message, details=None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}


def json_response(body, status=200, headers=None):
    return Response(
        json.dumps(body, ensure_ascii=False, default=_json_value),
        status=status,
        headers=headers,
        content_type="application/json; charset=utf-8",
    )


def report_response(body, format, filename):
    """A report as asked for: CSV as a download, HTML as a self-contained page (inline styles
    only, so the policy refuses any script or external asset), else JSON."""
    if format == "csv":
        return Response(
            body,
            content_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f"attachment; filename={filename}.csv"},
        )
    if format == "html":
        return Response(
            body,
            content_type="text/html; charset=utf-8",
            headers={
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'",
                "Content-Disposition": f"inline; filename={filename}.html",
            },
        )
    return json_response(body)


def about_patient(ctx, record, status=200):
    """`record` (a complaint, appointment, follow-up...) as the response; the audit log names
    its patient, not only the record's id."""
    ctx.patient_id = record.get("patient_id")
    return json_response(record, status)


def _json_value(value):
    """Times as ISO 8601 ("2026-03-02T01:30:00+00:00", never str()'s space); the store's
    datetimes are aware (tz_aware=True), a naive one is UTC."""
    if isinstance(value, datetime.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=datetime.UTC)).isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    return str(value)


class Context:
    """What a route handler gets: the request, the caller, the request id."""

    def __init__(self, request, request_id, spec=None):
        self.request = request
        self.spec = spec
        self.request_id = request_id
        self.user = None
        self.role = None
        self.patient_id = None  # set by handlers that touch a patient, for the audit log

    def json_body(self):
        data = self.request.get_data(cache=True)  # RequestEntityTooLarge past the limit: 413
        try:
            body = json.loads(data or b"null")
        except (ValueError, UnicodeDecodeError, RecursionError):
            raise ApiError(
                400,
                "invalid_json",
                "The body is not valid JSON: send one JSON object "
                "encoded in UTF-8, with Content-Type: application/json.",
                {"_body": ["Not valid JSON: check quotes, commas and brackets."]},
            ) from None
        return _refuse_unsafe_text(body)

    def load(self, schema_cls, data):
        schema = schema_of(schema_cls)
        try:
            return schema.load(data if data is not None else {})
        except ValidationError as exc:
            details = with_fixes(flatten_errors(exc.messages), schema)
            named = ", ".join(path for path in details if path != "_schema") or "request"
            raise ApiError(
                400,
                "validation_failed",
                f"Invalid {named}: see details for what to change.",
                details,
            ) from None

    def query(self, schema_cls=None):
        return self.load(
            self._declared("query", schema_cls), _refuse_unsafe_text(self.request.args.to_dict())
        )

    def body(self, schema_cls=None):
        return self.load(self._declared("body", schema_cls), self.json_body())

    def _declared(self, part, schema_cls):
        declared = getattr(self.spec, part, None)
        if schema_cls is not None and declared is not None and schema_cls is not declared:
            # The OpenAPI document would describe another schema than the one enforced.
            raise RuntimeError(
                f"{self.spec.path}: {part} schema {schema_cls.__name__} is not the declared one"
            )
        return schema_cls or declared


# marshmallow's default messages, replaced by ones that say what to do: shared/errors.py.
FIXES = errors.FIXES


def with_fixes(details, schema=None):
    """`details` (field path -> messages) with marshmallow's defaults replaced by messages
    that name the fix; an unknown field lists the fields the request accepts."""
    accepted = (
        ", ".join(sorted(field.data_key or name for name, field in schema.fields.items()))
        if schema is not None
        else ""
    )
    fixed = {}
    for path, messages in details.items():
        fixed[path] = [
            f"Unknown field: remove it (accepted here: {accepted})."
            if message == "Unknown field." and accepted
            else FIXES.get(message, message)
            for message in messages
        ]
    return fixed


def _refuse_unsafe_text(data):
    """`data` unchanged, or 400: a NUL or a lone surrogate can be stored nowhere, so the
    edge refuses it clearly instead of a service failing on it."""
    unsafe = _unsafe_text(data)
    if unsafe:
        raise ApiError(
            400,
            "validation_failed",
            f"Invalid {unsafe}: see details for what to change.",
            {
                unsafe: [
                    "Contains a NUL character or an unpaired surrogate: remove it "
                    "(send plain UTF-8 text)."
                ]
            },
        )
    return data


def _unsafe_text(data, path="_body"):
    """The path of the first string holding a NUL or an unpaired surrogate, else None."""
    if isinstance(data, str):
        if "\x00" in data or any("\ud800" <= ch <= "\udfff" for ch in data):
            return path
    elif isinstance(data, dict):
        for key, value in data.items():
            found = _unsafe_text(key, path) or _unsafe_text(value, str(key))
            if found:
                return found
    elif isinstance(data, list):
        for index, value in enumerate(data):
            found = _unsafe_text(value, f"{path}.{index}")
            if found:
                return found
    return None


@dataclasses.dataclass(frozen=True, eq=False)  # hashed by identity: a werkzeug endpoint
class RouteSpec:
    method: str
    path: str
    handler: object
    roles: tuple = None
    audit: bool = False
    query: type = None  # marshmallow schema of the query string
    body: object = None  # marshmallow schema of the JSON body (or a JSON schema dict)
    status: int = 200  # the success status
    content_type: str = "application/json"
    public: bool = True  # listed in the OpenAPI document


ROUTES = []


def route(method, path, roles=None, audit=False, **spec):
    """Declare a route; roles=None means anyone (health, metrics, login, the portal's files).
    `spec`: query=, body=, status=, content_type=, public= (see RouteSpec)."""

    def register(handler):
        ROUTES.append(RouteSpec(method, path, handler, roles, audit, **spec))
        return handler

    return register
