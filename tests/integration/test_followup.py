"""Followup on the real broker and store, driven through intake and the gateway."""

import datetime
import json
import random

import pytest
from kombu import Connection

from tests import factories
from tests.support import wait_until

pytestmark = pytest.mark.integration

TZ = datetime.timezone(datetime.timedelta(hours=8))


def week_of_events(rng):
    """A week of hospital events and the tasks docs/RULES.md prescribes, computed here by
    hand (not with the service's code): visits -> one call per patient per day; discharges
    (not deceased) -> three tasks; consultations -> a prospect call unless that phone visits
    later; nothing for patients without consent or reported deceased."""
    events, expected = (
        [],
        dict.fromkeys(
            (
                "post_visit_call",
                "post_discharge_call",
                "recovery_check",
                "return_visit_reminder",
                "prospect_call",
            ),
            0,
        ),
    )
    patients = [(f"W{i:03d}", f"135{i:08d}") for i in range(40)]
    no_consent = {patients[0][0], patients[1][0]}
    deceased = {patients[2][0]}
    visit_days = {}
    for mrn, phone in patients:
        for day in rng.sample(range(2, 9), 2):
            for _ in range(rng.choice([1, 1, 2])):  # sometimes two visits the same day
                events.append(factories.visit(mrn, day=day, phone=phone))
            visit_days.setdefault(mrn, set()).add(day)
    for mrn in no_consent:  # consent withdrawn by a later registration update
        events.append(
            factories.registered(mrn, day=9, phone=dict(patients)[mrn], contact_consent=False)
        )
    for mrn, phone in patients[2:12]:
        disposition = "deceased" if mrn in deceased else "home"
        events.append(factories.admitted(mrn, f"ADM-{mrn}", day=2, phone=phone))
        events.append(
            factories.discharged(mrn, f"ADM-{mrn}", day=6, disposition=disposition, phone=phone)
        )
    for mrn, days in visit_days.items():
        if mrn not in no_consent | deceased:
            expected["post_visit_call"] += len(days)
    for mrn, _ in patients[2:12]:
        if mrn not in no_consent | deceased:
            for kind in ("post_discharge_call", "recovery_check", "return_visit_reminder"):
                expected[kind] += 1
    for i in range(15):  # prospects who never visit: each gets a call
        events.append(factories.consultation(f"133{i:08d}", day=rng.randint(1, 8)))
        expected["prospect_call"] += 1
    for _mrn, phone in patients[20:25]:  # phoned on day 1, visited later: their call is cancelled
        events.append(factories.consultation(phone, day=1))
    messages = events + rng.sample(events, len(events) // 10)
    rng.shuffle(messages)
    return messages, expected


def totals(platform, token, status="pending"):
    out = {}
    for kind in (
        "post_visit_call",
        "post_discharge_call",
        "recovery_check",
        "return_visit_reminder",
        "prospect_call",
        "no_show_call",
    ):
        code, body = platform.http(
            "GET", f"/api/v1/followups?status={status}&kind={kind}&limit=1", token=token
        )
        assert code == 200, body
        out[kind] = body["total"]
    return out


def test_a_shuffled_week_yields_exactly_the_prescribed_tasks(platform):
    platform.start_service("intake")
    platform.start_service("followup")
    platform.start_gateway()
    token = platform.token()
    messages, expected = week_of_events(random.Random(3))
    for event in messages:
        platform.publish(event)
    expected["no_show_call"] = 0
    wait_until(
        lambda: totals(platform, token) == expected,
        timeout=180,
        interval=1,
        message=f"pending tasks per kind {expected}",
    )
    wait_until(lambda: platform.idle("followup.inbound"), message="followup idle")
    assert totals(platform, token) == expected
    cancelled = totals(platform, token, "cancelled")
    assert cancelled["prospect_call"] == 5  # the five prospects who came in
    assert platform.queue_depth("followup.dlq") == 0


def read_stream(amqp_uri, event_type, timeout=20):
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        channel.basic_qos(0, 500, False)
        found = []

        def on_message(message):
            body = json.loads(message.body)
            if body["event_type"] == event_type:
                found.append(body)
            channel.basic_ack(message.delivery_tag)

        channel.basic_consume(
            "hcrm.analytics", callback=on_message, arguments={"x-stream-offset": "first"}
        )
        wait_until(
            lambda: connection.drain_events(timeout=1) or found,
            timeout=timeout,
            message=f"{event_type} on the stream",
        )
        return found


def test_worklist_claim_complete_retry_and_service_recovery(platform):
    platform.start_service("intake")
    platform.start_service("analytics")  # it appends the stream's (minimal) copies
    platform.start_service("followup", FOLLOWUP_MAX_ATTEMPTS="2")
    platform.start_gateway()
    admin = platform.token()
    for name in ("ann", "bob"):
        platform.http(
            "POST",
            "/api/v1/users",
            {"username": name, "password": "agent-password-1", "role": "agent"},
            token=admin,
        )
    ann, bob = platform.token("ann", "agent-password-1"), platform.token("bob", "agent-password-1")
    platform.publish(factories.visit("FU-1", day=2, phone="13712345678"))
    platform.publish(factories.visit("FU-2", day=2, phone="13787654321"))
    tasks = wait_until(
        lambda: (lambda b: b["items"] if len(b["items"]) == 2 else None)(
            platform.http("GET", "/api/v1/followups?kind=post_visit_call", token=ann)[1]
        ),
        message="two post-visit calls",
    )
    first, second = sorted(tasks, key=lambda t: t["followup_id"])
    assert first["overdue"] is True and first["script"]["zh"] and first["status"] == "pending"

    # Claiming is exclusive; the phone is revealed on request (and audited).
    assert (
        platform.http("POST", f"/api/v1/followups/{first['followup_id']}/claim", token=ann)[0]
        == 200
    )
    assert (
        platform.http("POST", f"/api/v1/followups/{first['followup_id']}/claim", token=bob)[0]
        == 409
    )
    status, contact = platform.http(
        "GET", f"/api/v1/followups/{first['followup_id']}/contact", token=ann
    )
    assert status == 200 and contact["phone"] in ("13712345678", "13787654321")
    _, audit = platform.http("GET", f"/api/v1/audit?patient_id={first['patient_id']}", token=admin)
    assert any(e["route"].endswith("/contact") and e["user"] == "ann" for e in audit["items"])

    # Unreachable: tried again the next day until the attempts run out (2 here).
    status, retried = platform.http(
        "POST",
        f"/api/v1/followups/{first['followup_id']}/complete",
        {"outcome": "unreachable"},
        token=ann,
    )
    assert status == 200 and retried["status"] == "pending" and retried["attempts"] == 1
    status, done = platform.http(
        "POST",
        f"/api/v1/followups/{first['followup_id']}/complete",
        {"outcome": "unreachable"},
        token=ann,
    )
    assert done["status"] == "done" and done["outcome"] == "unreachable"
    assert (
        platform.http(
            "POST",
            f"/api/v1/followups/{first['followup_id']}/complete",
            {"outcome": "reached"},
            token=ann,
        )[0]
        == 409
    )

    # Bad input: a clear 400 naming the field.
    status, body = platform.http(
        "POST",
        f"/api/v1/followups/{second['followup_id']}/complete",
        {"outcome": "reached", "satisfaction": 9},
        token=bob,
    )
    assert status == 400 and "satisfaction" in body["error"]["details"]

    # Satisfaction 1: service recovery by an event, linked to the task.
    status, done = platform.http(
        "POST",
        f"/api/v1/followups/{second['followup_id']}/complete",
        {"outcome": "reached", "satisfaction": 1, "notes": "等了两个小时"},
        token=bob,
    )
    assert status == 200 and done["satisfaction"] == 1 and done["completed_by"] == "bob"
    recovery = read_stream(platform.amqp_uri, "ServiceRecoveryRequested")
    assert [r["data"]["followup_id"] for r in recovery] == [second["followup_id"]]
    assert recovery[0]["data"]["satisfaction"] == 1
    assert read_stream(platform.amqp_uri, "SatisfactionRecorded")[0]["data"]["satisfaction"] == 1
