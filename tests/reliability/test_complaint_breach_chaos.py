"""Complaint deadlines that pass while the complaints service is under a fault.

Two replicas run the SLA check every half second. Complaints are opened with `received_at`
in the past, so that their deadlines pass one after another, every half second, from a few
seconds before the fault until after it, and in bursts of fifteen at once just before and
inside it: while a replica is killed with -9 (the one seen recording a burst, then replaced),
or while the broker restarts. Afterwards each passed deadline is recorded once
(docs/RULES.md § Complaints: ComplaintSlaBreached once per deadline) and each breached
complaint escalated once, in the store and on complaints.events; a deadline met in time, or
not yet due, breaches nothing; nothing sits in a dead-letter queue.

complaints.events is at least once (a publisher that dies between the broker's confirm and
marking its document published sends the event again, with the same event_id: see
shared/outbox.py). Consumers count an event_id once, and so does this test; the raw copies
are reported in the output."""

import collections
import datetime
import json
import time

import pytest
from nameko.standalone.rpc import ClusterRpcProxy
from pymongo import MongoClient

from tests.reliability.test_pipeline_chaos import restart_the_broker
from tests.support import Platform, wait_until

pytestmark = pytest.mark.reliability

SLA_CHECK_INTERVAL_S = 0.5
ACK_HOURS = {"high": 2, "medium": 24}  # docs/RULES.md § Complaints (the defaults)
RESOLVE_HOURS = {"high": 24, "medium": 48}
LEAD_S = 8.0  # opening the complaints takes a few seconds: the first deadline is after it
SPACING_S = 0.5  # one deadline passes every half second from then on
FAULT_AFTER_S = 2.0  # the fault starts about then, while deadlines are passing
ACK_DURING, RESOLVE_DURING = 30, 10  # complaints whose acknowledge / resolve deadline passes then
# Bursts: many deadlines passing at once keep a replica's SLA check busy for a while. The
# fault starts as soon as a replica is seen recording the first burst (its victim, when a
# replica is killed, is that one); the second burst passes inside the fault.
BURST, BURSTS_AT = 15, (FAULT_AFTER_S - 0.2, FAULT_AFTER_S + 1.0)
REPLACED_AFTER_S = 3  # a killed replica's replacement starts this long after
BREACH_LOGGED = "complaint deadline breached"
AT_LEAST_DURING_FAULT = 3  # deadlines that must pass inside the fault for the run to count


def iso(ts):
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).isoformat()


class Planned:
    """One complaint: when its deadlines pass, which of them must be recorded as breached."""

    def __init__(self, complaint, due, breaches):
        self.id = complaint["complaint_id"]
        self.due = due  # {deadline: epoch seconds} of the deadlines that pass in the test
        self.breaches = breaches  # the deadlines that must be recorded as breached


def open_complaints(rpc, base):
    """The complaints of the test (deadlines from `base` on, SPACING_S apart), and controls:
    complaints acknowledged or resolved before their deadline, and one not due for days."""
    planned = []

    def open_(severity, received_ts, description):
        return rpc.complaints.open_complaint(
            channel="phone",
            category="waiting_time",
            severity=severity,
            description=description,
            received_at=iso(received_ts),
            department="心内科",
            opened_by="chaos",
        )

    # The acknowledge deadline passes during the test: one breach, one escalation.
    for i in range(ACK_DURING):
        severity = ("high", "medium")[i % 2]
        ack_due = base + i * SPACING_S
        complaint = open_(severity, ack_due - ACK_HOURS[severity] * 3600, f"候诊太久 {i}")
        planned.append(Planned(complaint, {"acknowledge": ack_due}, {"acknowledge"}))
    for offset in BURSTS_AT:
        for i in range(BURST):
            severity = ("medium", "high")[i % 2]
            ack_due = base + offset
            complaint = open_(severity, ack_due - ACK_HOURS[severity] * 3600, f"排队 {offset} {i}")
            planned.append(Planned(complaint, {"acknowledge": ack_due}, {"acknowledge"}))
    # The acknowledge deadline passed long ago (breached and escalated right after opening),
    # the resolve deadline passes during the test: a second breach, no second escalation.
    for i in range(RESOLVE_DURING):
        resolve_due = base + SPACING_S / 2 + i * 3 * SPACING_S
        complaint = open_("high", resolve_due - RESOLVE_HOURS["high"] * 3600, f"一直没有答复 {i}")
        planned.append(Planned(complaint, {"resolve": resolve_due}, {"acknowledge", "resolve"}))
    # Controls: acknowledged (or resolved) before a deadline that passes during the fault.
    for i in range(4):
        ack_due = base + FAULT_AFTER_S + 1 + i * 2
        complaint = open_("high", ack_due - ACK_HOURS["high"] * 3600, f"已及时答复 {i}")
        rpc.complaints.acknowledge(complaint_id=complaint["complaint_id"], actor="chaos")
        if i % 2:
            rpc.complaints.resolve(
                complaint_id=complaint["complaint_id"], actor="chaos", resolution="apology"
            )
        planned.append(Planned(complaint, {}, set()))
    complaint = open_("medium", time.time(), "刚收到")  # due in a day
    planned.append(Planned(complaint, {}, set()))
    return planned


class Witness:
    """Every event seen on complaints.events (the witness queue is drained as it fills)."""

    def __init__(self, platform):
        self.platform = platform
        self.events = []
        platform.witness("complaints.events")

    def collect(self):
        self.events += [json.loads(body) for body, _ in self.platform.drain("witness")]
        return self.events

    def distinct(self, event_type, key):
        """{key(event): set of event_ids} for the events of `event_type`."""
        found = collections.defaultdict(set)
        for event in self.events:
            if event["event_type"] == event_type:
                found[key(event)].add(event["event_id"])
        return found

    def copies(self, event_type):
        return sum(event["event_type"] == event_type for event in self.events)


def breach_key(event):
    return event["data"]["complaint_id"], event["data"]["deadline"]


def complaint_key(event):
    return event["data"]["complaint_id"]


def busy_replica_first(replicas, first_burst_ts):
    """Wait for the first burst's deadlines to pass and for a replica to log a breach then,
    and put that replica first in `replicas` (the one kill_the_busy_replica kills): it is in
    the middle of its SLA check, with more breaches of the burst to record and publish."""
    time.sleep(max(0.0, first_burst_ts - time.time()))  # the burst's moment, by design
    processes = replicas["complaints"]
    before = [process.output().count(BREACH_LOGGED) for process in processes]

    def busy():
        return next(
            (
                process
                for process, count in zip(processes, before, strict=True)
                if process.output().count(BREACH_LOGGED) > count
            ),
            None,
        )

    replica = wait_until(
        busy, timeout=10, interval=0.02, message="a replica recording the burst's breaches"
    )
    processes.remove(replica)
    processes.insert(0, replica)


def kill_the_busy_replica(platform, replicas, store):
    """kill -9 the first replica; its replacement starts REPLACED_AFTER_S later (an
    orchestrator's restart takes a while), so deadlines pass meanwhile with one replica."""
    victim = replicas["complaints"].pop(0)
    victim.kill()
    time.sleep(REPLACED_AFTER_S)  # the outage under test
    replicas["complaints"].append(platform.start_service("complaints"))


def history_of(doc):
    return [json.loads(h) if isinstance(h, str) else h for h in doc.get("history") or []]


@pytest.mark.parametrize(
    "fault", [kill_the_busy_replica, restart_the_broker], ids=["kill-9-a-replica", "broker-restart"]
)
def test_each_passed_deadline_breaches_once_through_the_fault(store_server, log_dir, fault):
    started = time.monotonic()
    platform = Platform(
        store_server,
        log_dir,
        extra_env={
            "COMPLAINTS_SLA_CHECK_INTERVAL_S": str(SLA_CHECK_INTERVAL_S),
            "HCRM_RETRY_DELAYS_MS": "1000,3000,6000,12000,20000",
        },
    )
    try:
        replicas = {
            "complaints": [
                platform.start_service("complaints"),
                platform.start_service("complaints"),
            ]
        }
        witness = Witness(platform)
        db = MongoClient(
            platform.database_uri("complaints"),
            serverSelectionTimeoutMS=3000,
            socketTimeoutMS=30000,
        ).get_default_database()
        base = time.time() + LEAD_S
        with ClusterRpcProxy(
            {"AMQP_URI": platform.amqp_uri, "serializer": "json"}, timeout=20
        ) as rpc:
            planned = open_complaints(rpc, base)
        opened_by = time.time()

        busy_replica_first(replicas, base + BURSTS_AT[0])
        fault_from = time.time()
        fault(platform, replicas, None)
        fault_to = time.time()
        deadlines = [ts for p in planned for ts in p.due.values()]
        during = sum(fault_from <= ts <= fault_to for ts in deadlines)
        print(
            f"\n[{fault.__name__}] opened in {opened_by - base + LEAD_S:.1f}s "
            f"(first deadline {base - opened_by:+.1f}s after); fault {fault_to - fault_from:.1f}s; "
            "deadlines passing before / during / after it: "
            f"{sum(ts < fault_from for ts in deadlines)} / "
            f"{during} / {sum(ts > fault_to for ts in deadlines)}"
        )
        assert during >= AT_LEAST_DURING_FAULT, "the fault missed the deadlines: nothing was tested"

        # The last deadlines pass after the fault: the replicas as they are then record them.
        wait_until(lambda: time.time() > max(deadlines), timeout=60, message="the last deadline")
        by_id = {p.id: p for p in planned}

        def flags_exact():
            docs = {
                d["_id"]: d for d in db.complaints.find({}, {"ack_breach": 1, "resolve_breach": 1})
            }
            return all(
                (docs[cid]["ack_breach"] == "breached") == ("acknowledge" in p.breaches)
                and (docs[cid]["resolve_breach"] == "breached") == ("resolve" in p.breaches)
                for cid, p in by_id.items()
            )

        wait_until(
            flags_exact,
            timeout=60,
            interval=0.5,
            message="each passed deadline recorded as breached",
        )
        # Published: no document's events wait in its outbox (a killed writer's wait out its
        # claim, 30 s, then the relay of the other replica publishes them).
        wait_until(
            lambda: db.complaints.count_documents({"outbox_state": "pending"}) == 0,
            timeout=120,
            interval=0.5,
            message="every complaint's events published",
        )
        expected_breaches = {(p.id, deadline) for p in planned for deadline in p.breaches}
        escalated = {p.id for p in planned if p.breaches}
        wait_until(
            lambda: (
                witness.collect()
                and set(witness.distinct("ComplaintSlaBreached", breach_key)) == expected_breaches
            ),
            timeout=30,
            interval=0.5,
            message=lambda: (
                f"{len(expected_breaches)} breaches on complaints.events; seen "
                f"{len(witness.distinct('ComplaintSlaBreached', breach_key))}"
            ),
        )
        witness.collect()

        # Once per passed deadline, once per complaint: in the events...
        breaches = witness.distinct("ComplaintSlaBreached", breach_key)
        assert set(breaches) == expected_breaches
        assert {key: len(ids) for key, ids in breaches.items() if len(ids) != 1} == {}
        escalations = witness.distinct("ComplaintEscalated", complaint_key)
        assert set(escalations) == escalated
        assert {cid: len(ids) for cid, ids in escalations.items() if len(ids) != 1} == {}
        # ...and in each complaint's own history.
        for doc in db.complaints.find({}, {"history": 1, "status": 1}):
            plan, history = by_id[doc["_id"]], history_of(doc)
            recorded = collections.Counter(
                h["note"].split()[0] for h in history if h["action"] == "sla_breach"
            )
            assert recorded == collections.Counter(plan.breaches), (doc["_id"], recorded)
            escalations_recorded = sum(h["to"] == "escalated" != h["from"] for h in history)
            assert escalations_recorded == (1 if plan.breaches else 0), (doc["_id"], history)
            if plan.breaches:
                assert doc["status"] == "escalated"
        assert platform.queue_depth("complaints.dlq") == 0
        assert all(process.alive() for process in replicas["complaints"]), (
            "a replica died of the fault"
        )
        print(
            f"[{fault.__name__}] {len(expected_breaches)} breaches and {len(escalated)} "
            "escalations, each once; raw copies on the queue: "
            f"{witness.copies('ComplaintSlaBreached')} ComplaintSlaBreached, "
            f"{witness.copies('ComplaintEscalated')} ComplaintEscalated; outbox relay take-overs: "
            f"{sum(p.output().count('outbox relay published') for p in platform.processes)}; "
            f"{time.monotonic() - started:.0f}s"
        )
    finally:
        platform.close()
