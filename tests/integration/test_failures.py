"""Transient failures are retried with backoff, then dead-lettered; `hcrm dlq` replays them."""

import json
import subprocess
import sys

import pytest

from shared.messaging import copy_id
from shared.messaging import publish as publish_raw
from tests import factories
from tests.support import Platform, StoreServer, wait_until

pytestmark = pytest.mark.integration


@pytest.fixture
def own_store(log_dir):
    """A store this test may stop and start without disturbing the others."""
    server = StoreServer(log_dir)
    yield server
    server.close()


def visits_of(platform, mrn):
    from pymongo import MongoClient

    db = MongoClient(
        platform.database_uri("intake"), serverSelectionTimeoutMS=2000
    ).get_default_database()
    patient = db.patients.find_one({"mrn": mrn})
    return patient and patient.get("view", {}).get("visit_count")


def test_store_outage_is_retried_then_dead_lettered_then_replayed(own_store, log_dir):
    platform = Platform(own_store, log_dir)
    try:
        platform.start_service("intake", HCRM_RETRY_DELAYS_MS="300,600")
        own_store.kill()
        platform.publish(factories.visit("M-OUT", event_id="outage-1"))
        platform.publish(factories.visit("M-OUT", event_id="outage-2"))
        wait_until(
            lambda: platform.queue_depth("intake.dlq") == 2,
            timeout=120,
            message="both messages dead-lettered after their retries",
        )
        own_store.start()
        assert visits_of(platform, "M-OUT") is None

        listing = subprocess.run(
            [sys.executable, "-m", "shared.cli", "dlq", "show", "intake.dlq"],
            env=platform.env("dlq"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert listing.returncode == 0, listing.stderr
        assert (
            listing.stdout.count("ServerSelectionTimeoutError") == 2
            or "AutoReconnect" in listing.stdout
        )
        assert "138-0013-8000" not in listing.stdout  # bodies are shown masked

        replay = subprocess.run(
            [sys.executable, "-m", "shared.cli", "dlq", "replay", "intake.dlq"],
            env=platform.env("dlq"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert "replayed 2 message(s)" in replay.stdout, replay.stdout + replay.stderr
        wait_until(
            lambda: visits_of(platform, "M-OUT") == 2,
            timeout=60,
            message="the replayed visits recorded",
        )
        assert platform.queue_depth("intake.dlq") == 0
    finally:
        platform.close()


def test_a_short_outage_heals_by_itself(own_store, log_dir):
    platform = Platform(own_store, log_dir)
    try:
        platform.start_service("intake", HCRM_RETRY_DELAYS_MS="1000,3000,10000,20000")
        own_store.kill()
        platform.publish(factories.visit("M-BLIP", event_id="blip-1"))
        wait_until(
            lambda: "retrying later" in platform.processes[0].output(),
            timeout=60,
            message="a first failed attempt",
        )
        own_store.start()
        wait_until(
            lambda: visits_of(platform, "M-BLIP") == 1,
            timeout=90,
            message="the visit recorded after the store came back",
        )
        assert platform.queue_depth("intake.dlq") == 0
    finally:
        platform.close()


def test_a_copy_set_aside_twice_is_shown_as_a_repeat_and_replayed_once(platform):
    """A consumer killed between a rejected copy's confirm and the original's ack sets the
    original aside again when it is redelivered: two identical copies under one message id
    (shared.messaging.copy_id). `hcrm dlq show` marks the second, `replay` sends it once."""
    intake = platform.start_service("intake")
    event = factories.visit("M-TWICE", event_id="twice-1")
    copy = copy_id("intake.inbound", json.dumps(event).encode())
    for _ in range(2):
        publish_raw(
            platform.amqp_uri,
            "",
            "hospital.events.rejected",
            json.dumps(event).encode(),
            headers={"x-hcrm-routing-key": "PatientVisited", "x-hcrm-reason": "test"},
            message_id=copy,
        )

    def cli(*args):
        return platform.hcrm("dlq", *args, name="dlq")

    shown = [json.loads(line) for line in cli("show", "hospital.events.rejected").splitlines()]
    assert [entry.get("repeat_of") for entry in shown] == [None, 0]
    assert "replayed 2 message(s)" in cli("replay", "hospital.events.rejected")
    wait_until(lambda: visits_of(platform, "M-TWICE") == 1, message="the visit replayed")
    wait_until(lambda: platform.idle("intake.inbound"), message="intake idle")
    assert platform.queue_depth("hospital.events.rejected") == 0
    handled = [
        line
        for line in intake.output().splitlines()
        if '"message handled"' in line and '"twice-1"' in line
    ]
    assert len(handled) == 1, handled  # one copy sent back, not two
