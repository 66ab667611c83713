"""The whole pipeline under faults, with events flowing and two replicas of every service:
intake -> followup -> complaints (service recovery), every event into analytics.

Each fault runs while a hospital system publishes visits, discharges and consultations and
agents complete calls with a low score (each opens a complaint). Afterwards every figure is
exact: patients in intake, tasks in followup, complaints in complaints, and the same counts
in analytics. Nothing is lost, nothing is doubled."""
import subprocess
import threading
import time

import pytest
from nameko.exceptions import RemoteError
from nameko.standalone.rpc import ClusterRpcProxy
from pymongo import MongoClient

from shared.errors import Conflict
from tests import factories
from tests.reliability.test_intake_chaos import publish_steadily
from tests.support import Platform, StoreServer, hospital_today, port_open, wait_until

pytestmark = pytest.mark.reliability

SERVICES = ("intake", "followup", "complaints", "analytics", "appointments")
VISITS, DISCHARGES, CONSULTATIONS, RECOVERIES = 150, 30, 30, 20
# PROTOCOLS.md § Follow-ups: a visit gives one post_visit_call; a discharge (home) gives a
# post_discharge_call, a recovery_check and a return_visit_reminder; a consultation with a
# phone that never visits gives a prospect_call.
EXPECTED_TASKS = VISITS + 3 * DISCHARGES + CONSULTATIONS


def pipeline_events():
    events = [factories.visit(f"P-{i:04d}", phone=f"1370000{i:04d}", day=2 + i % 5) for i in range(VISITS)]
    events += [factories.discharged(f"D-{i:04d}", f"ADM-{i}", phone=f"1370001{i:04d}", day=10)
               for i in range(DISCHARGES)]
    events += [factories.consultation(f"1370002{i:04d}", day=1) for i in range(CONSULTATIONS)]
    events = [e for pair in zip(events, events[::-1]) for e in pair][:len(events)]  # interleave kinds
    return events + events[:: 9]  # and some duplicates, as an at-least-once publisher sends


class Figures:
    def __init__(self, platform):
        self.platform = platform
        self.db = {s: MongoClient(platform.database_uri(s), serverSelectionTimeoutMS=3000).get_default_database()
                   for s in ("intake", "followup", "complaints")}

    def safely(self, read):
        try:
            return read()
        except Exception:  # the store may be the fault under test
            return None

    def patients(self):
        return self.safely(lambda: self.db["intake"].patients.count_documents({"mrn": {"$type": "string"}}))

    def tasks(self):
        return self.safely(lambda: self.db["followup"].tasks.count_documents({}))

    def complaints(self):
        return self.safely(lambda: self.db["complaints"].complaints.count_documents({}))

    def pending_post_visit_calls(self):
        return self.safely(lambda: [t["_id"] for t in self.db["followup"].tasks.find(
            {"kind": "post_visit_call", "status": "pending"}, {"_id": 1}).sort("_id", 1)])

    def analytics(self):
        today = hospital_today().isoformat()  # complaints are filed under the hospital's day
        try:
            with ClusterRpcProxy({"AMQP_URI": self.platform.amqp_uri, "serializer": "json"}, timeout=20) as rpc:
                return rpc.analytics.summary(date_from="2026-03-01", date_to=today)
        except Exception:
            return None


def recover_calls(platform, figures, done):
    """Agents complete RECOVERIES calls with satisfaction 1, retrying through the faults; each
    opens one complaint (service recovery). A retry after an unseen success gets 409: done."""
    def run():
        wait_until(lambda: len(figures.pending_post_visit_calls() or []) >= RECOVERIES, timeout=240,
                   interval=0.5, message="calls to complete")
        for task_id in figures.pending_post_visit_calls()[:RECOVERIES]:
            while True:
                try:
                    with ClusterRpcProxy({"AMQP_URI": platform.amqp_uri, "serializer": "json"},
                                         timeout=20) as rpc:
                        rpc.followup.complete(followup_id=task_id, outcome="reached", agent="chaos",
                                              satisfaction=1, notes="long wait")
                    break
                except Conflict:  # done already: its first completion's answer was lost
                    break
                except RemoteError:
                    time.sleep(0.5)
                except Exception:
                    time.sleep(0.5)
        done.set()
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def kill_each_service_in_turn(platform, replicas, store):
    for service in SERVICES:
        victim = replicas[service].pop(0)
        victim.kill()
        replicas[service].append(platform.start_service(service))


def restart_the_broker(platform, replicas, store):
    subprocess.run(["rabbitmqctl", "stop_app"], check=True, capture_output=True, timeout=120)
    time.sleep(2)  # a real outage has a length
    subprocess.run(["rabbitmqctl", "start_app"], check=True, capture_output=True, timeout=120)
    wait_until(lambda: port_open(5672), timeout=60, message="the broker back")


def stop_the_store_for_ten_seconds(platform, replicas, store):
    store.kill()
    time.sleep(10)  # the fault under test is an outage of ten seconds
    store.start()


@pytest.mark.parametrize("fault", [kill_each_service_in_turn, restart_the_broker, stop_the_store_for_ten_seconds],
                         ids=["kill-9-each-service", "broker-restart", "store-down-10s"])
def test_the_figures_are_exact_after_the_fault(log_dir, fault):
    store = StoreServer(log_dir)
    platform = Platform(store, log_dir)
    try:
        env = {"HCRM_RETRY_DELAYS_MS": "1000,3000,6000,12000,20000"}
        replicas = {s: [platform.start_service(s, **env), platform.start_service(s, **env)] for s in SERVICES}
        figures = Figures(platform)
        events = pipeline_events()
        publisher = publish_steadily(platform, events, rate=25)
        recovered = threading.Event()
        recover_calls(platform, figures, recovered)
        wait_until(lambda: (figures.patients() or 0) >= 20, timeout=120, message="events flowing")
        fault(platform, replicas, store)
        publisher.join(timeout=300)
        assert not publisher.is_alive(), "the publisher never got every event confirmed"
        assert recovered.wait(timeout=300), "the agents could not complete their calls"

        wait_until(lambda: figures.patients() == VISITS + DISCHARGES, timeout=300, interval=1,
                   message=f"{VISITS + DISCHARGES} patients in intake")
        wait_until(lambda: figures.tasks() == EXPECTED_TASKS, timeout=300, interval=1,
                   message=f"{EXPECTED_TASKS} follow-up tasks")
        wait_until(lambda: figures.complaints() == RECOVERIES, timeout=300, interval=1,
                   message=f"{RECOVERIES} complaints from service recovery")

        seen = []

        def analytics_exact():
            summary = figures.analytics()
            seen.append(summary and (summary["visits"], summary["discharges"], summary["consultations"],
                                     summary["followups_due"], summary["followups_completed"],
                                     summary["complaints_opened"]))
            return seen[-1] == (VISITS, DISCHARGES, CONSULTATIONS, EXPECTED_TASKS, RECOVERIES, RECOVERIES)
        wait_until(analytics_exact, timeout=300, interval=2,
                   message=lambda: f"exact analytics figures; last (visits, discharges, consultations, "
                                   f"followups_due, followups_completed, complaints_opened): {seen[-1:]}")
        # Exact and stable: nothing more arrives late, nothing sits in a dead-letter queue.
        time.sleep(3)  # a doubled event would land within the relay's interval: look again after it
        assert (figures.patients(), figures.tasks(), figures.complaints()) == (
            VISITS + DISCHARGES, EXPECTED_TASKS, RECOVERIES)
        assert analytics_exact()
        for service in SERVICES:
            assert platform.queue_depth(f"{service}.dlq") == 0, f"{service}.dlq"
        assert platform.queue_depth("hospital.events.rejected") == 0
    finally:
        platform.close()
        store.close()
