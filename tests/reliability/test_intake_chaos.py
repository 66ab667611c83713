"""Faults with events flowing: replicas killed with -9, the broker restarted, the store
stopped for 10 s. After each, the figures are exact: nothing lost, nothing doubled."""

import random
import subprocess
import threading
import time

import pytest

from tests import factories
from tests.support import Platform, StoreServer, port_open, wait_until

pytestmark = pytest.mark.reliability


def stream_of_events(count, seed):
    """`count` distinct visits over 50 patients, with 10% duplicates, shuffled."""
    rng = random.Random(seed)
    events = [
        factories.visit(f"R{seed}-{rng.randrange(50):03d}", phone=f"136{seed:02d}{i:06d}"[:11])
        for i in range(count)
    ]
    # one phone per patient: later visits restate the same phone
    phones = {}
    for event in events:
        patient = event["data"]["patient"]
        patient["phone"] = phones.setdefault(patient["mrn"], patient["phone"])
    expected = {}
    for event in events:
        expected[event["data"]["patient"]["mrn"]] = (
            expected.get(event["data"]["patient"]["mrn"], 0) + 1
        )
    messages = events + rng.sample(events, count // 10)
    rng.shuffle(messages)
    return messages, expected


def publish_steadily(platform, messages, rate=200.0):
    """A hospital system: publishes with confirms and retries until the broker takes each one."""

    def run():
        for event in messages:
            while True:
                try:
                    platform.publish(event)
                    break
                except Exception:
                    time.sleep(0.5)
            time.sleep(1.0 / rate)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def visit_counts(platform):
    from pymongo import MongoClient

    db = MongoClient(
        platform.database_uri("intake"), serverSelectionTimeoutMS=3000, socketTimeoutMS=30000
    ).get_default_database()
    return {
        p["mrn"]: p["view"]["visit_count"]
        for p in db.patients.find(
            {"mrn": {"$type": "string"}, "event_count": {"$gt": 0}}, {"mrn": 1, "view": 1}
        )
    }


def settle(platform, expected, timeout=180):
    wait_until(
        lambda: visit_counts(platform) == expected,
        timeout=timeout,
        interval=0.5,
        message="exact visit counts for every patient",
    )
    wait_until(
        lambda: platform.queue_depth("intake.inbound") == 0, message="an empty inbound queue"
    )
    assert platform.queue_depth("intake.dlq") == 0
    assert platform.queue_depth("hospital.events.rejected") == 0


def test_two_replicas_one_killed_with_minus_9_midstream(platform):
    first = platform.start_service("intake")
    platform.start_service("intake")
    messages, expected = stream_of_events(600, seed=1)
    publisher = publish_steadily(platform, messages)
    wait_until(lambda: len(visit_counts(platform)) >= 20, timeout=60, message="events flowing")
    first.kill()
    publisher.join(timeout=120)
    settle(platform, expected)


def test_a_broker_restart_midstream(platform):
    platform.start_service("intake")
    messages, expected = stream_of_events(400, seed=2)
    publisher = publish_steadily(platform, messages, rate=100)
    wait_until(lambda: len(visit_counts(platform)) >= 10, timeout=60, message="events flowing")
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
    time.sleep(2)  # a real outage has a length: the broker stays down for two seconds
    subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)
    wait_until(lambda: port_open(5672), timeout=60, message="the broker back")
    publisher.join(timeout=240)
    settle(platform, expected, timeout=240)


def test_the_store_stopped_for_ten_seconds_midstream(log_dir):
    store = StoreServer(log_dir)
    platform = Platform(store, log_dir)
    try:
        platform.start_service("intake", HCRM_RETRY_DELAYS_MS="1000,3000,6000,12000,20000")
        messages, expected = stream_of_events(300, seed=3)
        publisher = publish_steadily(platform, messages, rate=50)
        wait_until(lambda: len(visit_counts(platform)) >= 10, timeout=60, message="events flowing")
        store.kill()
        time.sleep(10)  # the fault under test is an outage of ten seconds
        store.start()
        publisher.join(timeout=120)
        settle(platform, expected)
    finally:
        platform.close()
        store.close()
