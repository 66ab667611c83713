"""The outbox under the crash it exists for: the process dies (SIGKILL) after its state change
is committed and before the events are published. After a restart the relay publishes them:
each event reaches the broker exactly once, none is lost."""

import json

import pytest
from pymongo import MongoClient

from tests import factories
from tests.support import wait_until

pytestmark = pytest.mark.reliability

CASES = {  # service -> (its outbox collection, the event it must publish once)
    "intake": ("events", "PatientVisited"),
    "followup": ("tasks", "FollowUpScheduled"),
}


@pytest.mark.parametrize("service", sorted(CASES))
def test_a_kill_between_the_write_and_the_publish_loses_and_doubles_nothing(platform, service):
    collection, event_type = CASES[service]
    if service == "followup":
        platform.start_service("intake")
    victim = platform.start_service(service, HCRM_FAILPOINT="outbox.before_publish")
    platform.witness(f"{service}.events")  # the service has declared its exchange by now
    platform.publish(factories.visit("OUTBOX-1", phone="13900005555"))
    wait_until(lambda: not victim.alive(), timeout=60, message=f"{service} to die after its write")
    assert victim.popen.returncode == -9

    db = MongoClient(
        platform.database_uri(service), serverSelectionTimeoutMS=3000, socketTimeoutMS=30000
    ).get_default_database()
    written = list(db[collection].find({"outbox_state": {"$exists": True}}))
    assert [doc["outbox_state"] for doc in written] == ["pending"]  # the write is committed...
    assert platform.queue_depth("witness") == 0  # ...its event not published

    platform.start_service(service)  # the relay takes over once the dead writer's claim runs out
    wait_until(
        lambda: db[collection].find_one({"_id": written[0]["_id"]})["outbox_state"] == "published",
        timeout=120,
        interval=1,
        message="the relay to publish the dead writer's events",
    )
    wait_until(
        lambda: platform.queue_depth(f"{service}.inbound") == 0 if service == "intake" else True,
        message="the redelivered message handled",
    )
    published = [json.loads(body) for body, _ in platform.drain("witness")]
    assert [event["event_type"] for event in published] == [event_type]
