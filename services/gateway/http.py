"""The gateway's HTTP vocabulary: routes, the request context, the one error type."""
import json

from marshmallow import ValidationError
from werkzeug.wrappers import Response

from shared.events import flatten_errors

STAFF = ("agent",)            # agent and every higher staff role
MANAGERS = ("manager",)
ADMINS = ("admin",)
PUBLISHERS = ("integration", "admin")


class ApiError(Exception):
    def __init__(self, status, code, message, details=None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details or {}


def json_response(body, status=200, headers=None):
    return Response(json.dumps(body, ensure_ascii=False, default=str), status=status,
                    headers=headers, content_type="application/json; charset=utf-8")


class Context:
    """What a route handler gets: the request, the caller, the request id."""

    def __init__(self, request, request_id):
        self.request = request
        self.request_id = request_id
        self.user = None
        self.role = None
        self.patient_id = None  # set by handlers that touch a patient, for the audit log

    def json_body(self):
        data = self.request.get_data(cache=True)  # RequestEntityTooLarge past the limit: 413
        try:
            return json.loads(data or b"null")
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "invalid_json", "The body is not valid JSON.",
                           {"_body": ["Not valid JSON."]}) from None

    def load(self, schema_cls, data):
        try:
            return schema_cls().load(data if data is not None else {})
        except ValidationError as exc:
            raise ApiError(400, "validation_failed", "The request has invalid fields.",
                           flatten_errors(exc.messages)) from None

    def query(self, schema_cls):
        return self.load(schema_cls, self.request.args.to_dict())


ROUTES = []


def route(method, path, roles=None, audit=False):
    """Declare a route; roles=None means anyone (health, metrics, login)."""
    def register(handler):
        ROUTES.append((method, path, handler, roles, audit))
        return handler
    return register
