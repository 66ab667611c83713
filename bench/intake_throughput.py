"""Pipeline throughput: publish N inbound PatientVisited and PatientDischarged events as fast
as the broker confirms them, then time until intake, followup AND analytics have each
recorded every one of them (intake's `events`, followup's `events`, analytics' `facts`, all
keyed by the canonical event id); assert nothing is missing; report events/s end to end,
when each stage had everything, the follow-up cascade (FollowUpScheduled folded by
analytics), and the peak RSS and CPU time of every process.

  .venv/bin/python -m bench.intake_throughput [N] [replicas]

N defaults to 2000; `replicas` (default 1) is the number of processes of each service.
Patients get about three events each (4 visits : 1 discharge), each with a phone, so
followup schedules tasks and publishes FollowUpScheduled, which analytics folds as well.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo

from pymongo import MongoClient

from bench.common import (
    Resources,
    commands_per_event,
    installation,
    record,
    start_services,
    store_commands,
    watch_platform,
)
from services.intake.domain import canonical_event_id
from tests import factories

PIPELINE = ("intake", "followup", "analytics")
# Where each service keeps one document per canonical event it has recorded.
RECORDED = {"intake": "events", "followup": "events", "analytics": "facts"}


def make_events(count):
    patients = count // 3 or 1
    events = []
    for i in range(count):
        mrn, phone = f"B{i % patients:06d}", f"137{i % patients:08d}"
        events.append(
            factories.visit(mrn, phone=phone)
            if i % 5
            else factories.discharged(mrn, f"A{i}", phone=phone)
        )
    return events


def main(count=2000, replicas=1, timeout=900):
    platform, store = installation()
    resources = Resources().start()
    try:
        for _ in range(replicas):
            start_services(platform, *PIPELINE)
        watch_platform(resources, platform, store)
        dbs = {
            name: MongoClient(platform.database_uri(name)).get_default_database()
            for name in PIPELINE
        }
        events = make_events(count)
        expected = {canonical_event_id(e["source"], e["event_id"]) for e in events}
        resources.mark()
        before = resources.snapshot()
        commands_before = store_commands(platform)
        started = time.perf_counter()
        for event in events:
            platform.publish(event)
        published = time.perf_counter() - started

        done_at = {}
        while len(done_at) < len(PIPELINE):
            for name in PIPELINE:
                if (
                    name not in done_at
                    and dbs[name][RECORDED[name]].estimated_document_count() >= count
                ):
                    done_at[name] = time.perf_counter() - started
            if time.perf_counter() - started > timeout:
                have = {n: dbs[n][RECORDED[n]].estimated_document_count() for n in PIPELINE}
                raise SystemExit(f"not every event recorded within {timeout} s: {have} of {count}")
            time.sleep(0.1)
        elapsed = max(done_at.values())
        cpu = resources.per_unit(
            before, resources.snapshot(), count, "event (publish to recorded by all three)"
        )

        missing = {}
        for name in PIPELINE:
            found = {doc["_id"] for doc in dbs[name][RECORDED[name]].find({}, {"_id": 1})}
            missing[name] = len(expected - found)
        assert not any(missing.values()), f"events missing: {missing}"

        # The cascade: every task followup scheduled is folded by analytics (FollowUpScheduled).
        cascade_started = time.perf_counter()
        tasks = folded = 0
        while time.perf_counter() - cascade_started < 120:
            tasks = dbs["followup"].tasks.estimated_document_count()
            folded = dbs["analytics"].followups.estimated_document_count()
            if tasks and folded >= tasks:
                break
            time.sleep(0.1)
        cascade = time.perf_counter() - started
        commands = commands_per_event(commands_before, store_commands(platform), count)
        resources.stop()
        record(
            f"pipeline throughput (intake → followup → analytics), {count} events, "
            f"{replicas} replica(s) each",
            [
                f"publish: {count / published:.0f} events/s ({published:.1f} s)",
                f"end to end (publish → recorded by intake, followup and analytics): "
                f"{count / elapsed:.0f} events/s ({elapsed:.1f} s)",
                "every event recorded by: "
                + ", ".join(
                    f"{name} at {done_at[name]:.1f} s ({count / done_at[name]:.0f} events/s)"
                    for name in PIPELINE
                ),
                f"checked by event id: {count} of {count} in each of {', '.join(PIPELINE)}, "
                "none missing",
                f"cascade: {folded} of {tasks} follow-up tasks folded by analytics "
                f"at {cascade:.1f} s",
                cpu,
                commands,
                *resources.lines(),
            ],
        )
    finally:
        resources.stop()
        platform.close()
        store.close()


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:]))
