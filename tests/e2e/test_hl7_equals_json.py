"""Issue 16 point 4: one hospital week, sent once as HL7 v2 over MLLP and once as the JSON
events that say the same, into two installations: the figures, tasks, appointments and
patients come out equal (docs/HL7.md: "an HL7 feed and a JSON feed of the same facts give
exactly the same patients, tasks and figures").

The week (tests/hl7_week.py, one list of facts, both forms): ten people, eleven MRNs, in
GB18030 and UTF-8; first, return and emergency visits; admissions, a death, a transfer; a
profile update (A08) and a registration (A28); a visit and an admission entered in error
(A11); a discharge cancelled and discharged again later (A13 + A03); a merge (A40);
appointments booked, moved, withdrawn, missed and attended (SIU S12, S13, S15, S26);
departments through the listener's code table (HL7_DEPARTMENTS), one code left unmapped.
The week is last week (hospital time), its appointments reach into the coming days, so the
calls are overdue and the reminders still ahead, as in a live installation.

Both installations run intake, followup, appointments, analytics and the gateway on the
session's NX-27017; the first also runs the HL7 listener. Patient ids differ between them,
so everything is compared by MRN. What is compared, once both have settled:
- the events intake recorded (same source and event ids on both sides by construction), the
  first place a mapping difference would show;
- the analytics summary for the week and for the month after it (every figure);
- patients (mrn, visit_count, stage, segment, merged_mrns and the profile);
- follow-up tasks per MRN (kind, due_at, status, department) and appointments per MRN
  (department, starts_at, duration, doctor, status).
Whether a task or appointment that a correction voids was ever created depends on which
arrived first (docs/EVENTS.md: a Withdrawn before its Scheduled, or a DischargeCancelled
before the discharge, means it never was), so those are compared among the live ones only
(pending / done tasks, appointments not cancelled); the figures count neither.
"""

import datetime
import json
import os
import signal
import uuid

import pytest
from pymongo import MongoClient

from services.hl7.client import MllpClient, ack_summary
from services.hl7.mapping import MappingSettings, parse, to_events
from services.hl7.store import Hl7Store, message_key
from shared.store import connect
from tests import hl7_week
from tests.support import Platform, hospital_today, port_open, wait_until

pytestmark = pytest.mark.e2e

SERVICES = ("intake", "followup", "appointments", "analytics")
# The appointments timer declares its own no-shows 30 minutes after a booked start; with the
# week's past appointments it would race the messages that attend or miss them (a no-show
# declared before the visit arrives makes a no_show_call that stays). The hospital's system
# says who came here, so the timer waits longer than the test.
ENV = {"APPOINTMENTS_TIMER_INTERVAL_S": "3600"}
SETTLE_TIMEOUT = 90

# What the week gives, worked out from the facts: the waits below end when each side shows
# it (then the two are compared in full, times and figures included).
PATIENTS = {  # mrn: (visit_count, stage, merged_mrns)
    "M2001": (2, "returning", []),  # first visit, return visit; phone changed by A08
    "M2002": (1, "recovering", []),  # emergency, admitted, discharge cancelled, discharged
    "M2003": (0, "new", []),  # her only visit was entered in error: registered, no visit
    "M2004": (2, "returning", ["M2005"]),  # a visit under each MRN, then merged
    "M2006": (0, "recovering", []),  # died in hospital
    "M2007": (1, "new", []),  # a visit; her admission was entered in error
    "M2008": (1, "new", []),
    "M2009": (2, "returning", []),
    "M2010": (0, "recovering", []),  # registered (A28), admitted, transferred out
    "M2011": (1, "new", []),  # department code not in the table
}
LIVE_TASKS = {  # mrn: the kinds of its pending tasks
    "M2001": ["post_visit_call", "post_visit_call"],
    "M2002": ["post_discharge_call", "post_visit_call", "recovery_check", "return_visit_reminder"],
    "M2004": ["no_show_call", "post_visit_call", "post_visit_call"],
    "M2007": ["post_visit_call"],
    "M2008": ["post_visit_call"],
    "M2009": ["post_visit_call", "post_visit_call"],
    "M2010": ["post_discharge_call", "recovery_check", "return_visit_reminder"],
    "M2011": ["post_visit_call"],
}
LIVE_APPOINTMENTS = {"M2001": ["booked"], "M2004": ["no_show"], "M2009": ["attended"]}
WEEK_FIGURES = {
    "visits": 10,
    "first_visits": 7,
    "return_visits": 2,
    "admissions": 3,
    "discharges": 3,
    "unique_patients": 7,
}


@pytest.fixture(scope="module")
def week():
    today = hospital_today()
    monday = today - datetime.timedelta(days=today.weekday() + 7)
    return hl7_week.hospital_week(monday, today)


def test_each_message_maps_to_the_events_its_json_twin_states(week):
    """In process, no broker: the mapping of every message of the week equals the events the
    JSON side sends (the listener's tables; an earlier visit of the MRN makes a return)."""
    settings = MappingSettings(
        departments=hl7_week.DEPARTMENTS, patient_sources=hl7_week.PATIENT_SOURCES
    )
    seen = set()
    for message in week.messages:
        mapped = to_events(
            parse(message.er7, "UTF-8"), settings, has_earlier_visit=seen.__contains__
        )
        seen.update(
            e["data"]["patient"]["mrn"] for e in mapped if e["event_type"] == "PatientVisited"
        )
        assert mapped == message.events, f"{message.control_id} {message.fact.trigger}"


def test_a_visit_received_milliseconds_earlier_is_an_earlier_visit(store_server):
    """The listener's own lookup behind `return` (services/hl7/store.py) on the store the
    installations use: NX-27017 compares dates to the second, and this week sends a visit,
    a booking and the same patient's next visit within milliseconds (first found here)."""
    store = Hl7Store()
    store.db = connect(f"{store_server.uri}/t{uuid.uuid4().hex[:10]}_hl7", "hl7")
    try:
        first = datetime.datetime.now(datetime.UTC)
        store.record_visits(message_key("HIS", "XHYY", "C1"), ["M1"], first)
        later = first + datetime.timedelta(milliseconds=20)
        assert store.has_earlier_visit("M1", later, message_key("HIS", "XHYY", "C2"))
        assert not store.has_earlier_visit("M1", later, message_key("HIS", "XHYY", "C1"))  # its own
        assert not store.has_earlier_visit(
            "M1", first - datetime.timedelta(milliseconds=20), message_key("HIS", "XHYY", "C0")
        )  # a replay of an older one
        # A visit remembered before received_ts existed still counts (by its date).
        store.db.visits.insert_one(
            {
                "_id": "old",
                "mrn": "M2",
                "message_key": "old",
                "received_at": first - datetime.timedelta(minutes=5),
            }
        )
        assert store.has_earlier_visit("M2", first, message_key("HIS", "XHYY", "C3"))
    finally:
        store.db.client.drop_database(store.db.name)
        store.db.client.close()


@pytest.fixture
def installations(store_server, log_dir):
    by_hl7 = Platform(store_server, log_dir, extra_env=ENV)
    by_json = Platform(store_server, log_dir, extra_env=ENV)
    try:
        for service in SERVICES:  # all at once: the starts overlap
            by_hl7.start_service(service, wait=False)
            by_json.start_service(service, wait=False)
        by_hl7.start_hl7(wait=False, **hl7_week.listener_env())
        by_hl7.start_gateway()
        by_json.start_gateway()
        for platform in (by_hl7, by_json):
            wait_until(
                lambda: platform.http("GET", "/readyz")[0] == 200,
                timeout=90,
                message=lambda: f"every service ready: {platform.http('GET', '/readyz')[1]}",
            )
        wait_until(lambda: port_open(by_hl7.hl7_port), timeout=30, message="the MLLP port")
        for platform in (by_hl7, by_json):
            platform.intake_db = MongoClient(platform.database_uri("intake")).get_default_database()
        yield by_hl7, by_json
    finally:
        # Both installations stop at once (each process is given its TERM first).
        for process in by_hl7.processes + by_json.processes:
            if process.alive():
                os.killpg(process.popen.pid, signal.SIGTERM)
        for platform in (by_hl7, by_json):
            if hasattr(platform, "intake_db"):
                platform.intake_db.client.close()
        by_hl7.close()
        by_json.close()


def test_the_week_as_hl7_equals_the_week_as_json(installations, week):
    by_hl7, by_json = installations
    with MllpClient("127.0.0.1", by_hl7.hl7_port, timeout=30) as client:
        answers = {m.control_id: ack_summary(client.send(m.er7)) for m in week.messages}
    assert {cid: code for cid, (code, _) in answers.items() if code != "AA"} == {}, answers
    for event in week.events:
        by_json.publish(event)

    for platform in (by_hl7, by_json):
        wait_until(
            lambda: len(recorded(platform)) == len(week.events),
            timeout=60,
            message=lambda: (
                f"intake to record the week's {len(week.events)} events "
                f"({len(recorded(platform))} so far)"
            ),
        )
    # The first place a mapping difference shows: what intake recorded, event by event.
    assert_same(
        recorded(by_hl7), recorded(by_json), "the events intake recorded (HL7 side, JSON side)"
    )

    start, end = week.monday, week.monday + datetime.timedelta(days=6)
    month_end = week.today + datetime.timedelta(days=40)  # the 30-day reminders included
    ranges = {"week": (start, end), "month": (start, month_end)}
    sides = {}
    for name, platform in (("hl7", by_hl7), ("json", by_json)):
        token = platform.token()
        sides[name] = wait_until(
            lambda: settled(snapshot(platform, token, ranges)),
            timeout=SETTLE_TIMEOUT,
            interval=0.5,
            message=lambda: (
                f"the {name} installation to settle: {progress(snapshot(platform, token, ranges))}"
            ),
        )
    hl7_side, json_side = sides["hl7"], sides["json"]
    for part in ("patients", "tasks", "appointments", "summary_week", "summary_month"):
        assert_same(hl7_side[part], json_side[part], f"{part} (HL7 side, JSON side)")
    departments = {
        d["department"]: (d["visits"], d["first_visits"], d["discharges"])
        for d in json_side["summary_week"]["by_department"]
    }
    assert departments == {
        "心内科": (3, 2, 1),
        "急诊科": (1, 0, 0),
        "妇科": (1, 1, 0),
        "骨科": (4, 3, 0),
        "普外科": (0, 0, 1),
        "肿瘤科": (0, 0, 1),
        "0999": (1, 1, 0),
    }
    # The moved appointment is at its new time; the withdrawn one is never live.
    assert json_side["appointments"]["M2001"] == [
        [
            "心内科",
            hl7_week.iso(hl7_week.at(week.today + datetime.timedelta(days=3), "10:00")),
            30,
            "D017",
            "booked",
        ]
    ]
    assert all(a[-1] == "cancelled" for a in json_side["cancelled_appointments"].get("M2003", []))
    dead = json_side["patients"]["M2006"]
    assert dead["contact_consent"] is False and dead["marketing_consent"] is False
    for platform in (by_hl7, by_json):  # the retired MRN finds the survivor on both sides
        found = get(platform, platform.token(), "/api/v1/patients?mrn=M2005")["items"]
        assert [p["mrn"] for p in found] == ["M2004"]


# -- reading an installation ---------------------------------------------------------------
def recorded(platform):
    """{source event id: (type, occurred_at, data)} of the week's events intake recorded
    (without merged_patient_id, intake's own id of the retired record)."""
    return {
        doc["source_event_id"]: [
            doc["event_type"],
            doc["occurred_at"].isoformat(),
            {k: v for k, v in doc["data"].items() if k != "merged_patient_id"},
        ]
        for doc in platform.intake_db.events.find({"source": hl7_week.SOURCE})
    }


def get(platform, token, path):
    status, body = platform.http("GET", path, token=token)
    assert status == 200, (path, body)
    return body


def snapshot(platform, token, ranges):
    """What staff see through the gateway, by MRN."""
    patients = get(platform, token, "/api/v1/patients?limit=500")["items"]
    mrn_of = {p["patient_id"]: p["mrn"] for p in patients}

    def mrn(patient_id):
        if patient_id not in mrn_of:  # not a live record: what the retired id shows
            mrn_of[patient_id] = get(platform, token, f"/api/v1/patients/{patient_id}")["mrn"]
        return mrn_of[patient_id]

    state = {
        "patients": {
            p["mrn"]: {
                k: p[k]
                for k in (
                    "visit_count",
                    "stage",
                    "segment",
                    "merged_mrns",
                    "name",
                    "phone",
                    "gender",
                    "birth_date",
                    "region",
                    "contact_consent",
                    "marketing_consent",
                )
            }
            for p in patients
        }
    }
    tasks = get(platform, token, "/api/v1/followups?limit=500")["items"]
    appointments = get(platform, token, "/api/v1/appointments?limit=500")["items"]
    state["tasks"] = by_mrn(
        (mrn(t["patient_id"]), [t["kind"], t["due_at"], t["status"], t["department"]])
        for t in tasks
        if t["status"] != "cancelled"
    )
    state["cancelled_tasks"] = by_mrn(
        (mrn(t["patient_id"]), [t["kind"], t["due_at"], t["cancel_reason"]])
        for t in tasks
        if t["status"] == "cancelled"
    )
    rows = [
        (
            mrn(a["patient_id"]),
            [a["department"], a["starts_at"], a["duration_minutes"], a["doctor_id"], a["status"]],
        )
        for a in appointments
    ]
    state["appointments"] = by_mrn(row for row in rows if row[1][-1] != "cancelled")
    state["cancelled_appointments"] = by_mrn(row for row in rows if row[1][-1] == "cancelled")
    for name, (first, last) in ranges.items():
        summary = get(platform, token, f"/api/v1/analytics/summary?from={first}&to={last}")
        state[f"summary_{name}"] = {
            k: v
            for k, v in summary.items()
            if k not in ("from", "to", "generated_at", "computed_at")
        }
    return state


def by_mrn(rows):
    grouped = {}
    for mrn, row in rows:
        grouped.setdefault(mrn, []).append(row)
    return {mrn: sorted(items, key=json.dumps) for mrn, items in grouped.items()}


def observed(state):
    """The shape the waits look for (PATIENTS, LIVE_TASKS, LIVE_APPOINTMENTS, WEEK_FIGURES)."""
    return {
        "patients": {
            m: (p["visit_count"], p["stage"], p["merged_mrns"])
            for m, p in state["patients"].items()
        },
        "tasks": {
            m: sorted(t[0] for t in ts if t[2] == "pending") for m, ts in state["tasks"].items()
        },
        "appointments": {m: [a[-1] for a in ts] for m, ts in state["appointments"].items()},
        "week": {k: state["summary_week"].get(k) for k in WEEK_FIGURES},
        # Every live task is due within the month's range; cancelled ones are not counted.
        "followups_due": state["summary_month"]["followups_due"],
    }


def expected():
    return {
        "patients": {m: tuple(v) for m, v in PATIENTS.items()},
        "tasks": LIVE_TASKS,
        "appointments": LIVE_APPOINTMENTS,
        "week": WEEK_FIGURES,
        "followups_due": sum(len(kinds) for kinds in LIVE_TASKS.values()),
    }


def settled(state):
    return state if observed(state) == expected() else None


def progress(state):
    return differences(observed(state), expected())


def assert_same(left, right, what):
    found = differences(left, right)
    assert not found, f"{what} differ:\n" + json.dumps(
        found, ensure_ascii=False, indent=1, default=str
    )


def differences(left, right, path=""):
    """{path: (left, right)} where two JSON-like values differ (empty when equal)."""
    if isinstance(left, dict) and isinstance(right, dict):
        found = {}
        for key in sorted(set(left) | set(right), key=str):
            found.update(
                differences(left.get(key, "<absent>"), right.get(key, "<absent>"), f"{path}/{key}")
            )
        return found
    return {} if left == right else {path or "/": (left, right)}
