"""Followup and contract v1.1 on the real broker and store: corrections cancel the tasks of
what they void, in any order, and a merge leaves one person with one task per slot.

Events go in through intake (hospital.events); what followup did is read back from its own
database (tasks, events) and from followup.events (what it told the others)."""

import datetime
import json
import uuid

import pytest
from pymongo import MongoClient

from shared.messaging import publish
from tests import factories
from tests.support import wait_until

pytestmark = pytest.mark.integration

DISCHARGE_KINDS = ["post_discharge_call", "recovery_check", "return_visit_reminder"]


@pytest.fixture
def followup(platform):
    """intake and followup running, a witness on followup.events; yields followup's database."""
    platform.witness("followup.events")
    platform.start_service("intake")
    platform.start_service("followup")
    client = MongoClient(
        platform.database_uri("followup"),
        tz_aware=True,
        serverSelectionTimeoutMS=3000,
        socketTimeoutMS=30000,
    )
    yield client.get_default_database()
    client.close()


def patient_id_of(db, mrn):
    event = db.events.find_one({"data.patient.mrn": mrn}, {"patient_id": 1})
    return event and event["patient_id"]


def recorded(db, **data):
    return db.events.find_one({f"data.{field}": value for field, value in data.items()}) is not None


def tasks_of(db, mrn):
    return sorted(
        db.tasks.find({"patient_id": patient_id_of(db, mrn)}, {"outbox_queue": 0}),
        key=lambda t: (t["kind"], t["anchor_key"], t["_id"]),
    )


def states(db, mrn):
    return sorted(
        (t["kind"], t["anchor_key"].split("#")[0], t["status"], t.get("cancel_reason"))
        for t in tasks_of(db, mrn)
    )


class Told:
    """Every event followup published (read from the witness queue, accumulated)."""

    def __init__(self, platform):
        self.platform, self.events = platform, []

    def __call__(self, event_type=None, followup_id=None):
        self.events += [json.loads(body) for body, _ in self.platform.drain("witness")]
        return [
            e
            for e in self.events
            if (event_type is None or e["event_type"] == event_type)
            and (followup_id is None or e["data"]["followup_id"] == followup_id)
        ]


def settle(platform, db, mrn, day):
    """A visit of `mrn` on `day`, published last, has its call: followup has worked through
    what came before (a sync point without sleeping)."""
    platform.publish(factories.visit(mrn, day=day, visit_id=f"SYNC-{mrn}-{day}"))
    wait_until(
        lambda: any(t["anchor_key"] == f"2026-03-{day:02d}" for t in tasks_of(db, mrn)),
        timeout=30,
        message=f"the sync visit of {mrn} on day {day}",
    )
    wait_until(lambda: platform.idle("followup.inbound"), message="followup idle")


def test_a_cancelled_visit_cancels_its_call_and_a_cancel_that_comes_first_means_no_call(
    platform, followup
):
    db, told = followup, Told(platform)
    # Visit, then its cancellation: the pending call is cancelled, and others are told.
    platform.publish(factories.visit("C-1", day=2, visit_id="V-1"))
    wait_until(
        lambda: states(db, "C-1") == [("post_visit_call", "2026-03-02", "pending", None)],
        timeout=30,
        message="C-1's post-visit call",
    )
    cancel = factories.visit_cancelled("C-1", "V-1", day=2, hour=18)
    platform.publish(cancel)
    wait_until(
        lambda: (
            states(db, "C-1") == [("post_visit_call", "2026-03-02", "cancelled", "visit_cancelled")]
        ),
        timeout=30,
        message="C-1's call cancelled",
    )
    (task,) = tasks_of(db, "C-1")
    wait_until(
        lambda: told("FollowUpCancelled", task["_id"]), timeout=30, message="FollowUpCancelled"
    )
    assert told("FollowUpCancelled", task["_id"])[0]["data"]["reason"] == "visit_cancelled"

    # A duplicate of the cancel (same event_id), the correction sent again (a new one) and
    # the cancelled visit sent again: nothing changes, nothing more is told.
    platform.publish(cancel)
    platform.publish(factories.visit_cancelled("C-1", "V-1", day=2, hour=19))
    platform.publish(factories.visit("C-1", day=2, visit_id="V-1"))
    wait_until(
        lambda: db.events.count_documents({"data.visit_id": "V-1"}) == 4,
        timeout=30,
        message="the second correction and the visit sent again recorded",
    )
    settle(platform, db, "C-1", 4)
    assert states(db, "C-1") == [
        ("post_visit_call", "2026-03-02", "cancelled", "visit_cancelled"),
        ("post_visit_call", "2026-03-04", "pending", None),
    ]
    assert len(told("FollowUpCancelled", task["_id"])) == 1
    assert len(told("FollowUpScheduled", task["_id"])) == 1

    # The cancellation first, then the visit: no call is ever scheduled for it.
    platform.publish(factories.visit_cancelled("C-2", "V-9", day=3, hour=18))
    wait_until(lambda: recorded(db, visit_id="V-9"), timeout=30, message="C-2's cancel recorded")
    platform.publish(factories.visit("C-2", day=3, visit_id="V-9"))
    wait_until(
        lambda: db.events.find_one({"event_type": "PatientVisited", "data.visit_id": "V-9"}),
        timeout=30,
        message="C-2's cancelled visit recorded",
    )
    settle(platform, db, "C-2", 5)
    assert states(db, "C-2") == [("post_visit_call", "2026-03-05", "pending", None)]
    c2 = patient_id_of(db, "C-2")
    assert len([e for e in told("FollowUpScheduled") if e["patient_id"] == c2]) == 1
    assert platform.queue_depth("followup.dlq") == 0


def test_a_cancelled_discharge_cancels_its_tasks_and_a_later_discharge_gets_new_ones(
    platform, followup
):
    db, told = followup, Told(platform)
    platform.publish(factories.admitted("D-1", "A-1", day=3))
    platform.publish(factories.discharged("D-1", "A-1", day=8))
    wait_until(
        lambda: [s[2] for s in states(db, "D-1")] == ["pending"] * 3,
        timeout=30,
        message="D-1's three discharge tasks",
    )
    first = {t["_id"] for t in tasks_of(db, "D-1")}
    cancel = factories.discharge_cancelled("D-1", "A-1", day=8, hour=20)
    platform.publish(cancel)
    wait_until(
        lambda: (
            states(db, "D-1")
            == [(k, "A-1", "cancelled", "discharge_cancelled") for k in DISCHARGE_KINDS]
        ),
        timeout=30,
        message="D-1's discharge tasks cancelled",
    )
    wait_until(
        lambda: {e["data"]["followup_id"] for e in told("FollowUpCancelled")} == first,
        timeout=30,
        message="three FollowUpCancelled",
    )

    # Discharged again two days later: three new tasks, anchored at the new discharge.
    again = factories.discharged("D-1", "A-1", day=10)
    platform.publish(again)
    platform.publish(cancel)  # a late duplicate of the cancel changes nothing
    wait_until(
        lambda: [s[2] for s in states(db, "D-1")].count("pending") == 3,
        timeout=30,
        message="D-1's new discharge tasks",
    )
    settle(platform, db, "D-1", 12)
    pending = [
        t
        for t in tasks_of(db, "D-1")
        if t["status"] == "pending" and t["kind"] != "post_visit_call"
    ]
    assert sorted(t["kind"] for t in pending) == DISCHARGE_KINDS
    assert not {t["_id"] for t in pending} & first
    discharged_at = datetime.datetime.fromisoformat(again["data"]["discharged_at"]).timestamp()
    assert {t["anchor_ts"] for t in pending} == {discharged_at}
    assert len(tasks_of(db, "D-1")) == 7  # 3 cancelled, 3 new, the sync visit's call
    assert platform.queue_depth("followup.dlq") == 0


def test_a_merge_leaves_one_person_with_the_tasks_of_both_and_no_duplicate(platform, followup):
    db, told = followup, Told(platform)
    platform.start_gateway()
    token = platform.token()
    # R visited on the 2nd and 4th, S on the 2nd and 3rd: the 2nd is planned under both.
    for mrn, days in (("M-R", (2, 4)), ("M-S", (2, 3))):
        for day in days:
            platform.publish(factories.visit(mrn, day=day, visit_id=f"V-{mrn}-{day}"))
    wait_until(
        lambda: len(states(db, "M-R")) == 2 and len(states(db, "M-S")) == 2,
        timeout=30,
        message="two calls each",
    )
    retired, survivor = patient_id_of(db, "M-R"), patient_id_of(db, "M-S")
    platform.publish(factories.merged("M-S", "M-R", day=9))
    wait_until(
        lambda: (
            db.tasks.count_documents({"patient_id": retired}) == 0
            and [(s[1], s[2], s[3]) for s in states(db, "M-S")]
            == [
                ("2026-03-02", "cancelled", "merged"),
                ("2026-03-02", "pending", None),
                ("2026-03-03", "pending", None),
                ("2026-03-04", "pending", None),
            ]
        ),
        timeout=30,
        message=lambda: f"one person, one call a day: {states(db, 'M-S')}",
    )
    assert db.aliases.find_one({"_id": retired})["survivor"] == survivor

    # An event published under the retired id before the merge, arriving after it: filed
    # under the survivor, and its day's call is the one already there.
    late = {
        "event_id": uuid.uuid4().hex,
        "event_type": "PatientVisited",
        "schema_version": 1,
        "occurred_at": factories.at(4, 11),
        "recorded_at": factories.at(4, 11),
        "service": "intake",
        "source": "his",
        "source_event_id": "late-1",
        "patient_id": retired,
        "data": {
            "patient": factories.patient("M-R"),
            "visit_id": "V-M-R-4b",
            "department": "心内科",
            "visit_type": "return",
            "visited_at": factories.at(4, 11),
        },
    }
    publish(platform.amqp_uri, "intake.events", "PatientVisited", late)
    wait_until(
        lambda: db.events.find_one({"_id": late["event_id"]}), timeout=30, message="the late event"
    )
    assert db.events.find_one({"_id": late["event_id"]})["patient_id"] == survivor
    settle(platform, db, "M-S", 6)
    assert db.tasks.count_documents({"patient_id": retired}) == 0
    assert [(s[1], s[2]) for s in states(db, "M-S")] == [
        ("2026-03-02", "cancelled"),
        ("2026-03-02", "pending"),
        ("2026-03-03", "pending"),
        ("2026-03-04", "pending"),
        ("2026-03-06", "pending"),
    ]

    # The agents' worklist: the survivor only, found by either id.
    code, listed = platform.http("GET", "/api/v1/followups?status=pending&limit=50", token=token)
    assert code == 200 and {t["patient_id"] for t in listed["items"]} == {survivor}
    assert listed["total"] == 4
    code, by_retired = platform.http(
        "GET", f"/api/v1/followups?patient_id={retired}&status=pending", token=token
    )
    assert code == 200 and by_retired["total"] == 4
    merged = [e for e in told("FollowUpCancelled") if e["data"]["reason"] == "merged"]
    assert len(merged) == 1 and merged[0]["patient_id"] == survivor
    assert platform.queue_depth("followup.dlq") == 0
