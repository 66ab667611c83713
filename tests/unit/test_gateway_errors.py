"""The gateway's answer to each exception a route can raise (app.ERROR_ANSWERS), in the one
error format of docs/API.md."""

import json
import logging

import pytest
from nameko.exceptions import RemoteError
from werkzeug.exceptions import RequestEntityTooLarge, UnsupportedMediaType

from services.gateway.app import Gateway, answer_for
from services.gateway.http import ApiError
from services.gateway.rpc import ServiceUnavailable
from shared.errors import BadRequest, Conflict, NotFound


class Ctx:
    request_id = "req-1"


ANSWERS = [
    (
        ApiError(429, "rate_limited", "Slow down.", {"retry_after_s": 2}),
        429,
        "rate_limited",
        "Slow down.",
        {"retry_after_s": 2},
    ),
    (RequestEntityTooLarge(), 413, "body_too_large", "The body exceeds 1000 bytes.", {}),
    (
        ServiceUnavailable("intake", "no answer"),
        503,
        "service_unavailable",
        "intake: no answer",
        {"service": "intake"},
    ),
    (
        BadRequest("invalid complaint", {"severity": ["Must be one of: low."]}),
        400,
        "validation_failed",
        "invalid complaint",
        {"severity": ["Must be one of: low."]},
    ),
    (NotFound("no complaint c1"), 404, "not_found", "no complaint c1", {}),
    (Conflict("cannot resolve"), 409, "conflict", "cannot resolve", {}),
    (RemoteError("Conflict", "double booking"), 409, "conflict", "double booking", {}),
    (
        RemoteError("KeyError", "'x'"),
        502,
        "service_error",
        "A service failed; see its logs.",
        {"request_id": "req-1"},
    ),
    (UnsupportedMediaType(), 415, "http_error", UnsupportedMediaType.description, {}),
    (KeyError("x"), 500, "internal_error", "Internal error.", {"request_id": "req-1"}),
]


@pytest.mark.parametrize(
    "exc, status, code, message, details", ANSWERS, ids=[type(row[0]).__name__ for row in ANSWERS]
)
def test_each_exception_has_its_answer(exc, status, code, message, details):
    try:
        raise exc
    except Exception as raised:  # as the gateway catches it
        response = Gateway._error(answer_for(raised, Ctx, {"max_body_bytes": 1000}))
    assert response.status_code == status
    assert json.loads(response.get_data()) == {
        "error": {"code": code, "message": message, "details": details}
    }


def test_an_unexpected_error_is_logged_with_its_traceback(caplog):
    with caplog.at_level(logging.ERROR, logger="hcrm.gateway"):
        try:
            raise KeyError("x")
        except KeyError as raised:
            answer_for(raised, Ctx, {})
    [record] = caplog.records
    assert record.getMessage() == "unhandled error" and record.exc_info[0] is KeyError
