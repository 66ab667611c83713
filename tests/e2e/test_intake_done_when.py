"""Issue 2's acceptance run, end to end: hospital systems publish over AMQP, staff read
through the gateway, intake is killed with -9 halfway and started again."""

import json
import random

import pytest

from tests import factories
from tests.support import wait_until

pytestmark = pytest.mark.e2e

PATIENTS, PROSPECTS, VALID_EVENTS, DUPLICATES = 150, 40, 1000, 100


def hospital_week(rng):
    """1,000 distinct valid events and what they must produce, computed without the service."""
    mrns = [f"MRN-{i:05d}" for i in range(PATIENTS)]
    phones = {mrn: f"138{i:08d}" for i, mrn in enumerate(mrns)}
    events, expected_visits = [], dict.fromkeys(mrns, 0)

    def person(mrn):
        return {"name": rng.choice(["张伟", "王芳", "李娜", "刘洋", "陈静"]), "phone": phones[mrn]}

    for mrn in mrns:  # every patient is known to the HIS
        events.append(factories.registered(mrn, day=1, **person(mrn)))
    for i in range(60):
        mrn = mrns[i]
        events.append(factories.admitted(mrn, f"ADM-{i}", day=3, **person(mrn)))
        events.append(factories.discharged(mrn, f"ADM-{i}", day=8, **person(mrn)))
    for i in range(PROSPECTS):  # never visit: they stay prospects
        events.append(factories.consultation(f"139{i:08d}", day=2))
    for mrn in mrns[:40]:  # phone in first, visit later (or earlier, after the shuffle)
        events.append(factories.consultation(phones[mrn], day=2))
    while len(events) < VALID_EVENTS:
        mrn = rng.choice(mrns)
        expected_visits[mrn] += 1
        events.append(factories.visit(mrn, day=rng.randint(3, 9), **person(mrn)))
    return events, expected_visits


def all_patients(platform, token):
    items, offset = [], 0
    while True:
        status, page = platform.http(
            "GET", f"/api/v1/patients?limit=500&offset={offset}", token=token
        )
        assert status == 200, page
        items += page["items"]
        offset += 500
        if offset >= page["total"]:
            return items


def test_a_shuffled_week_with_duplicates_poison_and_a_crash(platform):
    rng = random.Random(20261124)
    events, expected_visits = hospital_week(rng)
    messages = [(e["event_type"], json.dumps(e, ensure_ascii=False).encode()) for e in events]
    messages += [messages[i] for i in rng.sample(range(len(messages)), DUPLICATES)]
    malformed = factories.malformed_events()
    messages += [(key, raw) for _, raw, key in malformed]
    rng.shuffle(messages)

    intake = platform.start_service("intake")
    platform.start_gateway()
    token = platform.token()
    for key, raw in messages:
        platform.publish(None, routing_key=key, raw=raw)

    # kill -9 once about half of the messages are through, then start again.
    wait_until(
        lambda: platform.queue_depth("intake.inbound") <= len(messages) // 2,
        timeout=120,
        interval=0.05,
        message="intake to work through half of the messages",
    )
    intake.kill()
    platform.start_service("intake")

    expected_patients = PATIENTS + PROSPECTS
    observed = {}

    def settled():
        patients = all_patients(platform, token)
        by_mrn = {p["mrn"]: p["visit_count"] for p in patients if p["mrn"]}
        observed.update(
            patients=len(patients),
            wrong={
                mrn: (by_mrn.get(mrn), n)
                for mrn, n in expected_visits.items()
                if by_mrn.get(mrn) != n
            },
        )
        return len(patients) == expected_patients and by_mrn == expected_visits and patients

    try:
        patients = wait_until(
            settled, timeout=180, interval=1.0, message="every patient with the exact visit_count"
        )
    except AssertionError as exc:
        raise AssertionError(
            f"expected {expected_patients} patients, saw {observed['patients']}; "
            f"(seen, expected) visit counts that differ: {observed['wrong']}"
        ) from exc
    assert sum(1 for p in patients if p["mrn"] is None and p["stage"] == "prospect") == PROSPECTS
    assert {p["stage"] for p in patients if p["mrn"] in {f"MRN-{i:05d}" for i in range(60)}} <= {
        "recovering",
        "recovered",
    }
    wait_until(
        lambda: platform.queue_depth("intake.inbound") == 0, message="an empty inbound queue"
    )

    # Each malformed message is set aside with its reason. The kill may land between a copy's
    # confirm and the original's ack: the original is delivered again and set aside again,
    # an identical copy under the same message id (shared.messaging.copy_id), which
    # `hcrm dlq` shows as a repeat and replays once. Without a crash there is one copy each
    # (tests/integration/test_intake.py).
    rejected = platform.drain_copies("hospital.events.rejected")
    bodies_by_copy = {}
    for body, _, copy in rejected:
        bodies_by_copy.setdefault(copy, set()).add(body)
    assert None not in bodies_by_copy and all(len(b) == 1 for b in bodies_by_copy.values())
    assert sorted(body for (body,) in bodies_by_copy.values()) == sorted(
        raw for _, raw, _ in malformed
    )
    assert all(h["x-hcrm-reason"] and json.loads(h["x-hcrm-errors"]) for _, h, _ in rejected)
    assert platform.queue_depth("intake.dlq") == 0

    # The same malformed bodies over HTTP: 400, naming the bad fields.
    for label, raw, _ in malformed:
        status, body = platform.http("POST", "/api/v1/events", raw=raw, token=token)
        assert status == 400, (label, body)
        assert body["error"]["details"], label
    status, body = platform.http("POST", "/api/v1/events", raw=malformed[17][1], token=token)
    assert "data.patient.name" in body["error"]["details"]
