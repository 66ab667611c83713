"""hcrm backup / restore against the real store: a wiped installation restored from a backup
shows the same patients, tasks and figures; a damaged or mismatched backup is refused."""

import json

import pytest
from pymongo import MongoClient

from shared import backup
from tests import factories
from tests.support import wait_until

pytestmark = pytest.mark.integration

SERVICES = ("intake", "followup", "appointments", "complaints", "analytics")


def _databases(platform):
    return {
        owner: MongoClient(platform.database_uri(owner), tz_aware=True).get_default_database()
        for owner in (*SERVICES, "gateway")
    }


def _start(platform):
    for service in SERVICES:
        platform.start_service(service)
    platform.start_gateway()
    return platform.token()


def _state(platform, token):
    """What a user sees: patients, tasks, complaints and the month's figures."""

    def get(path):
        status, body = platform.http("GET", path, token=token)
        assert status == 200, (path, body)
        return body

    summary = get("/api/v1/analytics/summary?from=2026-03-01&to=2026-03-31")
    return {
        "patients": sorted(
            (p["mrn"], p["visit_count"], p["stage"])
            for p in get("/api/v1/patients?limit=500")["items"]
        ),
        "tasks": sorted(
            (t["followup_id"], t["kind"], t["status"], t["due_at"])
            for t in get("/api/v1/followups?limit=500")["items"]
        ),
        "complaints": sorted(
            (c["complaint_id"], c["status"]) for c in get("/api/v1/complaints?limit=500")["items"]
        ),
        "figures": {
            k: summary[k]
            for k in (
                "visits",
                "discharges",
                "followups_due",
                "followups_completed",
                "avg_satisfaction",
                "complaints_opened",
            )
        },
    }


def test_a_wiped_installation_restored_from_its_backup_is_the_same(platform, tmp_path):
    token = _start(platform)
    for i in range(6):
        platform.publish(factories.visit(f"B-{i}", day=2 + i, phone=f"1390000{i:04d}"))
    platform.publish(factories.discharged("B-0", "ADM-1", day=9))
    wait_until(
        lambda: platform.http("GET", "/api/v1/followups?limit=500", token=token)[1]["total"] == 9,
        timeout=60,
        message="nine tasks",
    )
    task = platform.http("GET", "/api/v1/followups?kind=post_visit_call&limit=1", token=token)[1][
        "items"
    ][0]
    status, _ = platform.http(
        "POST",
        f"/api/v1/followups/{task['followup_id']}/complete",
        {"outcome": "reached", "satisfaction": 1, "notes": "等候太久"},
        token=token,
    )
    assert status == 200
    wait_until(
        lambda: platform.http("GET", "/api/v1/complaints", token=token)[1]["total"] == 1,
        timeout=60,
        message="the service-recovery complaint",
    )
    wait_until(
        lambda: _state(platform, token)["figures"]["followups_completed"] == 1,
        timeout=60,
        message="analytics to count the completed call",
    )
    before = _state(platform, token)
    for process in platform.processes:  # a backup of a quiet installation
        process.stop()
    platform.processes.clear()

    manifest = backup.backup(tmp_path / "b", _databases(platform))
    assert manifest["databases"]["intake"]["collections"]["patients"]["documents"] == 6
    for database in _databases(platform).values():  # the broken disk
        database.client.drop_database(database.name)
    restored = backup.restore(tmp_path / "b", _databases(platform))
    assert restored["intake/patients"] == 6

    token = _start(platform)
    wait_until(
        lambda: _state(platform, token) == before,
        timeout=60,
        message=lambda: f"the same state after the restore: {before} vs {_state(platform, token)}",
    )


def test_a_damaged_or_mismatched_backup_is_refused_before_anything_changes(platform, tmp_path):
    dbs = {"intake": MongoClient(platform.database_uri("intake")).get_default_database()}
    dbs["intake"].patients.insert_many([{"_id": "p1", "mrn": "M1"}, {"_id": "p2", "mrn": "M2"}])
    backup.backup(tmp_path / "ok", dbs)
    with pytest.raises(backup.BackupError, match="not empty"):
        backup.backup(tmp_path / "ok", dbs)

    damaged = tmp_path / "ok" / "intake" / "patients.jsonl"
    damaged.write_bytes(damaged.read_bytes().replace(b"M2", b"M3"))
    with pytest.raises(backup.BackupError, match=r"patients\.jsonl is damaged: its checksum"):
        backup.restore(tmp_path / "ok", dbs)
    manifest_path = tmp_path / "ok" / "manifest.json"
    manifest = json.loads(manifest_path.read_text())
    manifest["format"] = "hcrm-backup/9"
    manifest_path.write_text(json.dumps(manifest))
    with pytest.raises(backup.BackupError, match="format"):
        backup.restore(tmp_path / "ok", dbs)
    with pytest.raises(backup.BackupError, match=r"no manifest\.json"):
        backup.restore(tmp_path, dbs)
    assert dbs["intake"].patients.count_documents({}) == 2  # nothing was touched
