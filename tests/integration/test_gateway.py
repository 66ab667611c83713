"""The gateway's first cut: auth and roles, limits, errors, audit, a service that is down."""

import pytest

from tests import factories
from tests.support import JWT_SECRET, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def gateway(platform):
    platform.start_service("intake")
    platform.start_gateway()
    return platform


def test_health_readiness_and_metrics(gateway):
    assert gateway.http("GET", "/healthz") == (200, {"status": "ok"})
    status, body = gateway.http("GET", "/readyz")
    assert status == 200 and body["checks"]["intake"] == "ok"
    status, text = gateway.http("GET", "/metrics")
    assert status == 200 and "hcrm_http_requests_total" in text


def test_tokens_and_roles(gateway):
    import jwt

    admin = gateway.token()
    assert gateway.http("GET", "/api/v1/patients")[0] == 401
    unsigned = jwt.encode(
        {"sub": "admin", "role": "admin", "exp": 9999999999}, None, algorithm="none"
    )
    assert gateway.http("GET", "/api/v1/patients", token=unsigned)[0] == 401
    assert gateway.http("GET", "/api/v1/patients", token=admin[:-2] + "xx")[0] == 401
    expired = jwt.encode({"sub": "admin", "role": "admin", "exp": 1}, JWT_SECRET, algorithm="HS256")
    assert gateway.http("GET", "/api/v1/patients", token=expired)[0] == 401

    assert (
        gateway.http(
            "POST",
            "/api/v1/users",
            {"username": "his-feed", "password": "integration-pw-1", "role": "integration"},
            token=admin,
        )[0]
        == 201
    )
    assert (
        gateway.http(
            "POST",
            "/api/v1/users",
            {"username": "ann", "password": "agent-password-1", "role": "agent"},
            token=admin,
        )[0]
        == 201
    )
    integration, agent = (
        gateway.token("his-feed", "integration-pw-1"),
        gateway.token("ann", "agent-password-1"),
    )
    assert gateway.http("GET", "/api/v1/patients", token=integration)[0] == 403
    assert gateway.http("POST", "/api/v1/events", factories.visit("M1"), token=agent)[0] == 403
    assert (
        gateway.http("POST", "/api/v1/events", factories.visit("M1"), token=integration)[0] == 202
    )
    assert gateway.http("GET", "/api/v1/patients", token=agent)[0] == 200
    # Mass assignment: a field the route does not list is refused.
    status, body = gateway.http(
        "POST",
        "/api/v1/auth/token",
        {"username": "ann", "password": "agent-password-1", "role": "admin"},
    )
    assert status == 400 and "role" in body["error"]["details"]


def test_logins_are_throttled(gateway):
    for _ in range(5):
        assert (
            gateway.http("POST", "/api/v1/auth/token", {"username": "admin", "password": "nope"})[0]
            == 401
        )
    status, body = gateway.http(
        "POST", "/api/v1/auth/token", {"username": "admin", "password": "nope"}
    )
    assert status == 429 and body["error"]["code"] == "too_many_attempts"


def test_limits_and_the_error_format(gateway):
    token = gateway.token()
    status, body = gateway.http(
        "POST", "/api/v1/events", raw=b"{" + b" " * (1024 * 1024 + 10) + b"}", token=token
    )
    assert status == 413 and body["error"]["code"] == "body_too_large"
    status, body = gateway.http("GET", "/api/v1/patients?limit=501", token=token)
    assert status == 400 and "limit" in body["error"]["details"]
    status, body = gateway.http("GET", "/api/v1/patients/unknown-id", token=token)
    assert status == 404 and set(body["error"]) == {"code", "message", "details"}
    status, _ = gateway.http("GET", "/api/v1/nothing-here", token=token)
    assert status == 404


def test_every_read_of_patient_data_is_audited(gateway):
    token = gateway.token()
    gateway.publish(factories.visit("M-A", name="陈静"))
    found = wait_until(
        lambda: gateway.http("GET", "/api/v1/patients?mrn=M-A", token=token)[1]["items"],
        message="the patient",
    )
    patient_id = found[0]["patient_id"]
    gateway.http("GET", f"/api/v1/patients/{patient_id}", token=token)
    gateway.http("GET", f"/api/v1/patients/{patient_id}/timeline", token=token)
    status, audit = gateway.http("GET", f"/api/v1/audit?patient_id={patient_id}", token=token)
    assert status == 200
    routes = sorted(entry["route"] for entry in audit["items"])
    assert routes == sorted(
        [f"/api/v1/patients/{patient_id}", f"/api/v1/patients/{patient_id}/timeline"]
    )
    assert all(e["user"] == "admin" and e["status"] == 200 for e in audit["items"])


def test_a_service_that_is_down_gives_503_naming_it_within_the_timeout(platform):
    platform.start_gateway(HCRM_RPC_TIMEOUT_S="1.5")
    token = platform.token()
    import time

    started = time.monotonic()
    status, body = platform.http("GET", "/api/v1/patients", token=token)
    assert status == 503 and body["error"]["details"]["service"] == "intake"
    assert time.monotonic() - started < 5
    status, body = platform.http("GET", "/readyz")
    assert status == 503 and "intake" in body["down"]
