"""The whole pipeline under faults, with events flowing and two replicas of every service:
intake -> followup -> complaints (service recovery), every event into analytics.

Each fault runs while a hospital system publishes visits, discharges and consultations, and
the corrections and merges of contract v1.1 (docs/EVENTS.md): visits cancelled (half of the
cancellations sent before their visit), discharges cancelled (some discharged again later),
pairs of records merged into one person, and duplicates of some corrections. Agents
meanwhile complete calls with a low score (each opens a complaint). Afterwards every figure
is exact: patients in intake, tasks in followup, complaints in complaints, and the same
counts in analytics. Nothing is lost, nothing is doubled, nothing voided is counted."""

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
# v1.1 traffic (docs/EVENTS.md § Version 1.1: corrections, merges, scheduling):
CANCELLED_VISITS = 15  # a visit and its VisitCancelled: the visit never counts
DISCHARGES_CANCELLED, DISCHARGED_AGAIN = 6, 3  # of those cancelled, the first 3 leave again later
MERGES = 5  # two records with a visit each, the retired MRN merged into the survivor
SAME_DAY_MERGES = 3  # the first 3 pairs visited the same day: one post_visit_call slot
# docs/RULES.md § Follow-ups: a visit gives one post_visit_call (one per person per day); a
# discharge (home) gives a post_discharge_call, a recovery_check and a return_visit_reminder;
# a consultation with a phone that never visits gives a prospect_call. Tasks counted are the
# ones not cancelled: a cancelled visit's call and a cancelled discharge's three are
# cancelled (or never made), a discharge after its cancellation makes three anew, and a
# merged pair keeps one call per day (the extra pending one is cancelled as "merged").
MERGED_CALLS = SAME_DAY_MERGES * 1 + (MERGES - SAME_DAY_MERGES) * 2
EXPECTED_TASKS = VISITS + 3 * DISCHARGES + CONSULTATIONS + 3 * DISCHARGED_AGAIN + MERGED_CALLS
# Live patient records: a merged (retired) record is no longer one, a cancelled visit's or
# discharge's patient still is (intake keeps the person, the corrected event stops counting).
EXPECTED_PATIENTS = VISITS + DISCHARGES + CANCELLED_VISITS + DISCHARGES_CANCELLED + MERGES
# Analytics (docs/RULES.md § Figures): voided events count nowhere; a merge makes one person of
# two, but both of their visits were visits.
EXPECTED_VISITS = VISITS + 2 * MERGES
EXPECTED_DISCHARGES = DISCHARGES + DISCHARGED_AGAIN
# Only these patients' calls are completed: no correction or merge ever touches them, so
# which of their tasks end done does not depend on timing.
RECOVERABLE_MRN = "^P-"


def expected_tasks_by_person():
    """{mrn: tasks not cancelled} (prospects under "prospect"): the totals above, person by
    person, so that two errors cannot cancel out (a voided call kept, a merged one lost)."""
    expected = {f"P-{i:04d}": 1 for i in range(VISITS)}
    expected.update({f"D-{i:04d}": 3 for i in range(DISCHARGES)})
    expected.update({f"C-{i:04d}": 3 for i in range(DISCHARGED_AGAIN)})
    expected.update({f"S-{i:04d}": 1 if i < SAME_DAY_MERGES else 2 for i in range(MERGES)})
    expected["prospect"] = CONSULTATIONS
    return expected


def weave(base, phases):
    """`base` with the events of each phase spread evenly over its k-th part (k = phase index):
    every event of phase k is published before every event of phase k+1."""
    size = -(-len(base) // len(phases))
    out = []
    for index, extra in enumerate(phases):
        chunk = base[index * size : (index + 1) * size]
        step = max(1, len(chunk) // (len(extra) + 1))
        for position, item in enumerate(chunk):
            out.append(item)
            if position % step == step - 1 and extra:
                out.append(extra.pop(0))
        out += extra
    return out


def corrections_and_merges():
    """The v1.1 events, as groups published in the given order (one group member per phase,
    in three phases), and the duplicates to publish after them."""
    groups, duplicates = [], []
    for i in range(CANCELLED_VISITS):
        mrn, phone, day = f"X-{i:04d}", f"1370003{i:04d}", 2 + i % 5
        visit = factories.visit(mrn, phone=phone, day=day, visit_id=f"XV-{i}")
        cancel = factories.visit_cancelled(mrn, f"XV-{i}", day=day, phone=phone)
        # Half the cancellations are published before the visit they cancel.
        groups.append([cancel, None, visit] if i % 2 else [visit, None, cancel])
        if i < 3:
            duplicates.append(cancel)
    for i in range(DISCHARGES_CANCELLED):
        mrn, phone, admission = f"C-{i:04d}", f"1370004{i:04d}", f"CADM-{i}"
        first = factories.discharged(mrn, admission, phone=phone, day=10)  # 10th 16:00
        cancel = factories.discharge_cancelled(mrn, admission, day=10, hour=18, phone=phone)
        again = factories.discharged(mrn, admission, phone=phone, day=12)  # after the cancel
        groups.append(
            [
                [first, cancel, again],
                [cancel, first, again],
                [again, first, cancel],
                [first, None, cancel],
                [cancel, None, first],
                [None, first, cancel],
            ][i]
        )
        if i in (0, 3):
            duplicates.append(cancel)
    for i in range(MERGES):
        survivor, retired = f"S-{i:04d}", f"R-{i:04d}"
        phone = f"1370005{i:04d}"
        survivor_visit = factories.visit(survivor, phone=phone, day=3)
        retired_visit = factories.visit(
            retired, phone=f"1370006{i:04d}", day=3 if i < SAME_DAY_MERGES else 4
        )
        merge = factories.merged(survivor, retired, day=9, phone=phone)
        groups.append(
            [
                [survivor_visit, retired_visit, merge],
                [merge, survivor_visit, retired_visit],
                [retired_visit, merge, survivor_visit],
                [survivor_visit, merge, retired_visit],
                [merge, retired_visit, survivor_visit],
            ][i]
        )
        if i < 2:
            duplicates.append(merge)
    return groups, duplicates


def pipeline_events():
    events = [
        factories.visit(f"P-{i:04d}", phone=f"1370000{i:04d}", day=2 + i % 5) for i in range(VISITS)
    ]
    events += [
        factories.discharged(f"D-{i:04d}", f"ADM-{i}", phone=f"1370001{i:04d}", day=10)
        for i in range(DISCHARGES)
    ]
    events += [factories.consultation(f"1370002{i:04d}", day=1) for i in range(CONSULTATIONS)]
    events = [e for pair in zip(events, events[::-1], strict=True) for e in pair][
        : len(events)
    ]  # interleave kinds
    groups, duplicates = corrections_and_merges()
    phases = [[group[k] for group in groups if group[k]] for k in range(3)]
    events = weave(events, phases) + duplicates
    return events + events[::9]  # and some duplicates, as an at-least-once publisher sends


class Figures:
    def __init__(self, platform):
        self.platform = platform
        self.db = {
            s: MongoClient(
                platform.database_uri(s), serverSelectionTimeoutMS=3000, socketTimeoutMS=30000
            ).get_default_database()
            for s in ("intake", "followup", "complaints")
        }

    def safely(self, read):
        try:
            return read()
        except Exception:  # the store may be the fault under test
            return None

    def patients(self):
        """Live patient records: a retired MRN's record carries `merged_into` (intake's store)."""
        return self.safely(
            lambda: self.db["intake"].patients.count_documents(
                {"mrn": {"$type": "string"}, "merged_into": {"$exists": False}}
            )
        )

    def tasks(self):
        """Tasks not cancelled (a voided visit's or discharge's, or a merged slot's extra one
        is)."""
        return self.safely(
            lambda: self.db["followup"].tasks.count_documents({"status": {"$ne": "cancelled"}})
        )

    def complaints(self):
        return self.safely(lambda: self.db["complaints"].complaints.count_documents({}))

    def tasks_by_person(self):
        """{mrn: tasks not cancelled}; a task still filed under a retired record counts for
        the retired MRN (followup re-points them to the survivor)."""
        mrns = {
            p["_id"]: p.get("mrn") or "prospect"
            for p in self.db["intake"].patients.find({}, {"mrn": 1})
        }
        counts = {}
        for task in self.db["followup"].tasks.find(
            {"status": {"$ne": "cancelled"}}, {"patient_id": 1}
        ):
            mrn = mrns.get(task["patient_id"], task["patient_id"])
            counts[mrn] = counts.get(mrn, 0) + 1
        return counts

    def merges(self):
        """{retired mrn: the mrn of the record it leads to}, and {survivor mrn: its merged_mrns}."""
        patients = {
            p["_id"]: p
            for p in self.db["intake"].patients.find(
                {"mrn": {"$regex": "^[RS]-"}}, {"mrn": 1, "merged_into": 1, "view": 1}
            )
        }
        retired = {
            p["mrn"]: patients.get(p["merged_into"], {}).get("mrn")
            for p in patients.values()
            if p.get("merged_into")
        }
        survivors = {
            p["mrn"]: (p.get("view") or {}).get("merged_mrns")
            for p in patients.values()
            if not p.get("merged_into")
        }
        return retired, survivors

    def pending_post_visit_calls(self):
        """Pending calls of the patients no correction or merge touches (RECOVERABLE_MRN):
        completing one of a visit cancelled later would keep it done (history stays), so
        the figures would depend on timing."""

        def read():
            recoverable = {
                p["_id"]
                for p in self.db["intake"].patients.find(
                    {"mrn": {"$regex": RECOVERABLE_MRN}}, {"_id": 1}
                )
            }
            return [
                t["_id"]
                for t in self.db["followup"]
                .tasks.find(
                    {"kind": "post_visit_call", "status": "pending"}, {"_id": 1, "patient_id": 1}
                )
                .sort("_id", 1)
                if t["patient_id"] in recoverable
            ]

        return self.safely(read)

    def analytics(self):
        today = hospital_today().isoformat()  # complaints are filed under the hospital's day
        try:
            with ClusterRpcProxy(
                {"AMQP_URI": self.platform.amqp_uri, "serializer": "json"}, timeout=20
            ) as rpc:
                return rpc.analytics.summary(date_from="2026-03-01", date_to=today)
        except Exception:
            return None


def recover_calls(platform, figures, done):
    """Agents complete RECOVERIES calls with satisfaction 1, retrying through the faults; each
    opens one complaint (service recovery). A retry after an unseen success gets 409: done."""

    def run():
        def enough():
            calls = figures.pending_post_visit_calls()  # None while the store is down
            return calls if calls and len(calls) >= RECOVERIES else None

        calls = wait_until(enough, timeout=240, interval=0.5, message="calls to complete")
        for task_id in calls[:RECOVERIES]:
            while True:
                try:
                    with ClusterRpcProxy(
                        {"AMQP_URI": platform.amqp_uri, "serializer": "json"}, timeout=20
                    ) as rpc:
                        rpc.followup.complete(
                            followup_id=task_id,
                            outcome="reached",
                            agent="chaos",
                            satisfaction=1,
                            notes="long wait",
                        )
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


class Supervisor:
    """Restarts a replica whose process exited, as the orchestrator does (k8s restartPolicy
    Always, compose `restart:`), and notes each death: a replica may die of a fault (nameko
    stops a service whose RPC reply cannot be sent while the broker is down), not later."""

    GRACE_S = 15  # a death noticed this long after the fault ended is still the fault's

    def __init__(self, platform, replicas):
        self.platform, self.replicas = platform, replicas
        self.deaths = []  # (seconds after the supervisor started, service, the log's last line)
        self.started = time.time()
        self._stopped = threading.Event()
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        noted = set()
        while not self._stopped.wait(0.5):
            for service, processes in self.replicas.items():
                for index, process in enumerate(list(processes)):
                    if process.alive():
                        continue
                    if id(process) not in noted:
                        noted.add(id(process))
                        last = (process.output().strip().splitlines() or [""])[-1][:200]
                        self.deaths.append((round(time.time() - self.started, 1), service, last))
                    try:
                        processes[index] = self.platform.start_service(service)
                    except Exception:  # e.g. the broker not back yet: next round
                        pass

    def stop(self):
        self._stopped.set()

    def late_deaths(self):
        return [death for death in self.deaths if death[0] > self.GRACE_S]


def kill_each_service_in_turn(platform, replicas, store):
    """Each service in `replicas` loses a replica to kill -9, and gets a new one."""
    for service in list(replicas):
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


@pytest.mark.parametrize(
    "fault",
    [kill_each_service_in_turn, restart_the_broker, stop_the_store_for_ten_seconds],
    ids=["kill-9-each-service", "broker-restart", "store-down-10s"],
)
def test_the_figures_are_exact_after_the_fault(log_dir, fault):
    store = StoreServer(log_dir)
    # Every process of the installation (replacements too) retries long enough to outlast the fault.
    platform = Platform(
        store, log_dir, extra_env={"HCRM_RETRY_DELAYS_MS": "1000,3000,6000,12000,20000"}
    )
    try:
        replicas = {s: [platform.start_service(s), platform.start_service(s)] for s in SERVICES}
        figures = Figures(platform)
        events = pipeline_events()
        publisher = publish_steadily(platform, events, rate=25)
        recovered = threading.Event()
        recover_calls(platform, figures, recovered)
        wait_until(lambda: (figures.patients() or 0) >= 20, timeout=120, message="events flowing")
        fault(platform, replicas, store)
        supervisor = Supervisor(platform, replicas)  # from the fault's end on
        publisher.join(timeout=300)
        assert not publisher.is_alive(), "the publisher never got every event confirmed"
        assert recovered.wait(timeout=300), "the agents could not complete their calls"

        wait_until(
            lambda: figures.patients() == EXPECTED_PATIENTS,
            timeout=300,
            interval=1,
            message=lambda: (
                f"{EXPECTED_PATIENTS} live patients in intake (last {figures.patients()})"
            ),
        )
        wait_until(
            lambda: figures.tasks() == EXPECTED_TASKS,
            timeout=300,
            interval=1,
            message=lambda: (
                f"{EXPECTED_TASKS} follow-up tasks not cancelled (last {figures.tasks()})"
            ),
        )
        wait_until(
            lambda: figures.complaints() == RECOVERIES,
            timeout=300,
            interval=1,
            message=f"{RECOVERIES} complaints from service recovery",
        )

        seen = []

        def analytics_exact():
            summary = figures.analytics()
            seen.append(
                summary
                and (
                    summary["visits"],
                    summary["discharges"],
                    summary["consultations"],
                    summary["followups_due"],
                    summary["followups_completed"],
                    summary["complaints_opened"],
                )
            )
            return seen[-1] == (
                EXPECTED_VISITS,
                EXPECTED_DISCHARGES,
                CONSULTATIONS,
                EXPECTED_TASKS,
                RECOVERIES,
                RECOVERIES,
            )

        wait_until(
            analytics_exact,
            timeout=300,
            interval=2,
            message=lambda: (
                f"exact analytics figures; last (visits, discharges, consultations, "
                f"followups_due, followups_completed, complaints_opened): {seen[-1:]}"
            ),
        )
        # Exact and stable: nothing more arrives late, nothing sits in a dead-letter queue.
        time.sleep(3)  # a doubled event would land within the relay's interval: look again after it
        assert (figures.patients(), figures.tasks(), figures.complaints()) == (
            EXPECTED_PATIENTS,
            EXPECTED_TASKS,
            RECOVERIES,
        )
        assert figures.tasks_by_person() == expected_tasks_by_person()
        assert figures.merges() == (
            {f"R-{i:04d}": f"S-{i:04d}" for i in range(MERGES)},
            {f"S-{i:04d}": [f"R-{i:04d}"] for i in range(MERGES)},
        )
        assert analytics_exact()
        for service in SERVICES:
            assert platform.queue_depth(f"{service}.dlq") == 0, f"{service}.dlq"
        assert platform.queue_depth("hospital.events.rejected") == 0
        supervisor.stop()
        print(
            f"\n[{fault.__name__}] replicas that died of the fault (restarted): {supervisor.deaths}"
        )
        assert supervisor.late_deaths() == [], "a replica died after the fault"
    finally:
        platform.close()
        store.close()
