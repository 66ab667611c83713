"""The gateway's audit guarantee with the real broker and store: a read that was answered has
its audit entry, also when concurrent reads share one insert (services/gateway/group_commit.py),
and a read whose entry cannot be written is not answered. And the RPC without publisher
confirms still names a service that is not running at once (services/gateway/rpc.py)."""

import concurrent.futures
import time
import urllib.error
import urllib.request
import uuid

import pytest
from pymongo import MongoClient

from tests import factories
from tests.support import StoreServer, wait_until

pytestmark = pytest.mark.integration

LIMITS = {"HCRM_RATE_LIMIT_PER_MINUTE": "100000", "HCRM_RATE_LIMIT_BURST": "100000"}


def seeded_patients(platform, token, count):
    """The patient ids of `count` new patients, once intake has them."""
    for i in range(count):
        platform.publish(factories.visit(f"AU-{i}", name="林小雨", phone=f"139{i:08d}"))

    def found():
        items = [
            platform.http("GET", f"/api/v1/patients?mrn=AU-{i}", token=token)[1]["items"]
            for i in range(count)
        ]
        return [hits[0]["patient_id"] for hits in items] if all(items) else None

    return wait_until(found, message="the seeded patients")


def read(platform, path, token, request_id):
    """(status, body text) of a GET with its own X-Request-Id."""
    request = urllib.request.Request(
        platform.gateway_url + path,
        headers={"Authorization": f"Bearer {token}", "X-Request-Id": request_id},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


def test_every_answered_read_has_its_audit_entry_when_reads_run_concurrently(platform):
    platform.start_service("intake")
    platform.start_gateway(GATEWAY_WORKERS=2, GATEWAY_THREADS=8, **LIMITS)
    token = platform.token()
    patients = seeded_patients(platform, token, 3)
    paths = [f"/api/v1/patients/{pid}" for pid in patients] + ["/api/v1/patients/no-such-patient"]
    reads = [(paths[i % len(paths)], f"audit-{uuid.uuid4().hex}") for i in range(160)]
    with concurrent.futures.ThreadPoolExecutor(max_workers=24) as pool:
        answers = list(pool.map(lambda r: (r, read(platform, r[0], token, r[1])), reads))
    statuses = sorted({status for _, (status, _) in answers})
    assert statuses == [200, 404], statuses
    audit = MongoClient(platform.database_uri("gateway")).get_default_database().audit
    entries = {
        entry["request_id"]: entry
        for entry in audit.find(
            {"request_id": {"$in": [request_id for _, request_id in reads]}}, {"_id": 0}
        )
    }
    # Every answer had its entry before it was sent: nothing to wait for here.
    for (path, request_id), (status, _) in answers:
        entry = entries.get(request_id)
        assert entry is not None, f"{request_id} ({path}) answered {status} without an audit entry"
        assert (entry["route"], entry["status"], entry["user"]) == (path, status, "admin")
    assert len(entries) == len(reads)


def test_a_read_whose_audit_entry_cannot_be_written_is_not_answered(platform, log_dir):
    # The gateway's database on a store of its own, which the test stops; intake keeps its own.
    gateway_store = StoreServer(log_dir)
    try:
        platform.start_service("intake")
        gateway_db = f"{gateway_store.uri}/t{platform.run_id}_gateway_own"
        platform.start_gateway(GATEWAY_MONGO_URI=gateway_db, **LIMITS)
        token = platform.token()
        patient_id = seeded_patients(platform, token, 1)[0]
        path = f"/api/v1/patients/{patient_id}"
        assert read(platform, path, token, "before-outage")[0] == 200

        gateway_store.stop()
        started = time.monotonic()
        status, body = read(platform, path, token, "during-outage")
        assert status >= 500 and "林小雨" not in body and "AU-0" not in body, (status, body)
        assert time.monotonic() - started < 25  # the store's timeout, not the worker's

        gateway_store.start()
        wait_until(
            lambda: read(platform, path, token, f"after-{uuid.uuid4().hex}")[0] == 200,
            timeout=30,
            message="reads answered again once the store is back",
        )
        audit = MongoClient(gateway_db).get_default_database().audit
        assert audit.count_documents({"request_id": "before-outage", "status": 200}) == 1
        assert audit.count_documents({"request_id": {"$regex": "^after-"}, "status": 200}) >= 1
    finally:
        gateway_store.close()


def test_a_service_that_never_started_is_named_at_once_without_publisher_confirms(platform):
    # The default RPC timeout (5 s): the broker's return of the mandatory request answers first.
    platform.start_gateway(GATEWAY_SERVICES="intake")
    token = platform.token()
    started = time.monotonic()
    status, body = platform.http("GET", "/api/v1/patients", token=token)
    elapsed = time.monotonic() - started
    assert status == 503 and body["error"]["details"]["service"] == "intake"
    assert "not running" in body["error"]["message"] and elapsed < 2.5, (body, elapsed)
    # The client that got the return is kept and serves the next call the same way.
    assert platform.http("GET", "/api/v1/patients", token=token)[0] == 503
