"""Patients' data rights through the gateway, on the real broker and store (issue 18):

- the stream hcrm.analytics carries minimal copies only (no name, phone, MRN, birth date or
  free text), appended by analytics; an old installation's bindings are removed by `hcrm init`;
- GET /api/v1/patients/{id}/export: what every service holds, for managers and admins, audited;
- POST /api/v1/patients/{id}/erase: afterwards EVERY database of every service and every
  service's log holds neither the person's name nor their phone, the figures are the same,
  the pending calls, reminders and open complaints are closed, and the same MRN starts a new
  record;
- retention: old events, call notes, HL7 texts, audit entries and rejected messages go.
"""

import datetime
import json
import re
import subprocess
import sys
import urllib.parse
import zoneinfo

import pytest
from kombu import Connection
from pymongo import MongoClient

from shared.phones import phone_digits
from tests import factories
from tests.support import wait_until

pytestmark = pytest.mark.integration

HOSPITAL_TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
P = {
    "mrn": "DR-P-1",
    "name": "欧阳娜娜",
    "phone": "139-1234-0001",
    "birth_date": "1961-05-04",
    "gender": "female",
    "region": "海淀区",
    "key": "101",
}
Q = {
    "mrn": "DR-Q-1",
    "name": "司马光明",
    "phone": "13912340002",
    "birth_date": "1990-01-01",
    "gender": "male",
    "region": "朝阳区",
    "key": "202",
}
EVERY_SERVICE = ("intake", "followup", "appointments", "complaints", "analytics")


# -- times relative to today (hospital time), so calls are due and appointments are ahead ---
def today():
    return datetime.datetime.now(HOSPITAL_TZ).date()


def at_day(offset, hour, minute=0):
    return datetime.datetime.combine(
        today() + datetime.timedelta(days=offset), datetime.time(hour, minute), HOSPITAL_TZ
    ).isoformat()


def person(who):
    return {k: who[k] for k in ("name", "phone", "birth_date", "gender", "region")}


def events_of(who):
    """Registration, a phone consultation, a visit yesterday, an admission and a discharge."""
    registered = factories.registered(who["mrn"], **person(who))
    registered["occurred_at"] = at_day(-6, 8)
    consultation = factories.consultation(who["phone"], name=who["name"])
    consultation["occurred_at"] = at_day(-5, 15)
    consultation["data"]["topic"] = (
        f"{who['name']}咨询膝关节手术，回电 {phone_digits(who['phone'])}"
    )
    visit = factories.visit(who["mrn"], visit_id=f"V-{who['key']}", **person(who))
    visit["data"]["visited_at"], visit["occurred_at"] = at_day(-1, 9, 30), at_day(-1, 10, 10)
    admitted = factories.admitted(who["mrn"], f"A-{who['key']}", **person(who))
    admitted["data"]["admitted_at"] = admitted["occurred_at"] = at_day(-4, 11)
    discharged = factories.discharged(who["mrn"], f"A-{who['key']}", **person(who))
    discharged["data"]["discharged_at"] = discharged["occurred_at"] = at_day(-2, 16)
    return [registered, consultation, visit, admitted, discharged]


def hl7_a04(control_id, who):
    family, given = who["name"][:2], who["name"][2:]
    return (
        f"MSH|^~\\&|HIS|XHYY|HCRM|HCRM|20260302093000||ADT^A04^ADT_A01|{control_id}|P|2.5"
        "||||||UNICODE UTF-8\r"
        "EVN|A04|20260302093000||||20260302092500\r"
        f"PID|1||{who['mrn']}^^^XHYY^MR||{family}^{given}||19610504|F|||^^北京市^北京市^^CHN^H^^海淀区"
        f"||{phone_digits(who['phone'])}\r"
        f"PV1|1|O|0301^^^XHYY||||D017^刘^洋|||CARD|||||||||HL7V{control_id}\r"
    ).encode()


# -- reading every store and log -------------------------------------------------------------
def as_text(value):
    """A stored value as searchable text: bytes decoded (a raw HL7 message), JSON text kept
    as it is and also with its \\u escapes resolved."""
    if isinstance(value, dict):
        return " ".join(f"{k} {as_text(v)}" for k, v in value.items())
    if isinstance(value, (list, tuple)):
        return " ".join(as_text(v) for v in value)
    if isinstance(value, (bytes, bytearray)):
        return (
            bytes(value).decode("utf-8", "replace")
            + " "
            + bytes(value).decode("gb18030", "replace")
        )
    text = str(value)
    if "\\u" in text:
        try:
            text += " " + text.encode("utf-8").decode("unicode_escape")
        except UnicodeDecodeError:
            pass
    return text


def needles(who):
    digits = phone_digits(who["phone"])
    return [who["name"], who["name"][:2] + "^" + who["name"][2:], digits]


def found_in(text, who):
    flat = re.sub(r"[ \-]", "", text)  # a phone written with spaces or dashes
    return [needle for needle in needles(who) if needle in text or needle in flat]


def scan_databases(platform):
    """Every database of this installation (one per service and the gateway's), every
    collection, every document: [(database, collection, _id, what was found)]."""
    client = MongoClient(platform.store.uri, serverSelectionTimeoutMS=5000)
    hits = []
    prefix = f"t{platform.run_id}_"
    databases = [name for name in client.list_database_names() if name.startswith(prefix)]
    for name in databases:
        db = client[name]
        for collection in db.list_collection_names():
            for doc in db[collection].find({}):
                found = found_in(as_text(doc), P)
                if found:
                    hits.append((name, collection, doc.get("_id"), found))
    return databases, hits


def scan_logs(platform):
    return [
        (process.name, found)
        for process in platform.processes
        for found in [found_in(process.output(), P)]
        if found
    ]


def summary(platform, token):
    start, end = (today() - datetime.timedelta(days=10)).isoformat(), today().isoformat()
    status, body = platform.http(
        "GET", f"/api/v1/analytics/summary?from={start}&to={end}", token=token
    )
    assert status == 200, body
    return body


def settled(platform):
    queues = [f"{service}.inbound" for service in EVERY_SERVICE + ("hl7",)]
    return platform.idle(*queues)


def read_stream(platform, limit=None):
    args = [sys.executable, "-m", "shared.cli", "stream", "--offset", "first"] + (
        ["--limit", str(limit)] if limit else []
    )
    done = subprocess.run(
        args, env=platform.env("stream"), capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return [json.loads(line) for line in done.stdout.splitlines()]


# -- the stream ---------------------------------------------------------------------------------
def test_the_stream_carries_minimal_copies_and_an_old_installations_bindings_are_removed(platform):
    # An installation of an earlier release: its stream bound straight to the service exchanges.
    done = subprocess.run(
        [sys.executable, "-m", "shared.cli", "init"],
        env=platform.env("init"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    with Connection(platform.amqp_uri) as connection:
        channel = connection.channel()
        channel.queue_bind("hcrm.analytics", "intake.events", "#")
        channel.queue_bind("hcrm.analytics", "followup.events", "#")
    done = subprocess.run(
        [sys.executable, "-m", "shared.cli", "init"],
        env=platform.env("init"),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    platform.start_service("intake")
    platform.start_service("followup")
    platform.start_service("analytics")
    sent = events_of(P)
    scheduled = factories.appointment_scheduled(P["mrn"], "HIS-1", at_day(3, 9), **person(P))
    for event in sent + [scheduled]:
        platform.publish(event)
    expected = {
        "PatientRegistered",
        "ConsultationLogged",
        "PatientVisited",
        "PatientAdmitted",
        "PatientDischarged",
        "FollowUpScheduled",
    }
    copies = wait_until(
        lambda: (lambda got: got if expected <= {c["event_type"] for c in got} else None)(
            read_stream(platform)
        ),
        timeout=60,
        message="the copies of every event on the stream",
    )
    types = [c["event_type"] for c in copies]
    assert "AppointmentScheduled" not in types  # one name per fact (docs/EVENTS.md v1.1)
    assert len(types) == len({c["event_id"] for c in copies}), "each event appended once"
    text = json.dumps(copies, ensure_ascii=False)
    for secret in (
        P["name"],
        phone_digits(P["phone"]),
        P["phone"],
        P["mrn"],
        P["birth_date"],
        "膝关节",
    ):
        assert secret not in text, secret
    visit = next(c for c in copies if c["event_type"] == "PatientVisited")
    assert visit["data"]["patient"] == {"gender": "female", "region": "海淀区", "age_band": "60-79"}
    assert visit["data"]["visit_id"] == f"V-{P['key']}" and visit["patient_id"]
    assert set(visit) <= {
        "event_id",
        "event_type",
        "schema_version",
        "occurred_at",
        "recorded_at",
        "service",
        "source",
        "source_event_id",
        "patient_id",
        "data",
        "_offset",
    }


# -- export and erasure ---------------------------------------------------------------------------
@pytest.fixture
def everything(platform):
    started = [
        platform.start_service(service, wait=False)
        for service in ("intake", "followup", "analytics", "complaints")
    ]
    started.append(
        platform.start_service(
            "appointments",
            wait=False,
            APPOINTMENTS_TIMER_INTERVAL_S="1",
            APPOINTMENTS_REMINDER_HOURS_BEFORE="300",
        )
    )  # reminded at once
    started.append(platform.start_hl7(wait=False))
    for process in started:  # started side by side: a few seconds instead of half a minute
        wait_until(
            lambda: '"service started"' in process.output() or not process.alive(),
            timeout=90,
            message=f"{process.name} to start",
        )
        assert process.alive(), process.output()[-3000:]
    platform.start_gateway()
    admin = platform.token()
    for username, role in (("dr.agent", "agent"), ("dr.manager", "manager")):
        status, body = platform.http(
            "POST",
            "/api/v1/users",
            {"username": username, "password": f"{username}-password", "role": role},
            token=admin,
        )
        assert status == 201, body
    platform.tokens = {
        "admin": admin,
        "agent": platform.token("dr.agent", "dr.agent-password"),
        "manager": platform.token("dr.manager", "dr.manager-password"),
    }
    return platform


def find_patient(platform, mrn):
    status, body = platform.http(
        "GET", f"/api/v1/patients?mrn={mrn}", token=platform.tokens["admin"]
    )
    return body["items"][0] if status == 200 and body["total"] == 1 else None


def live_everywhere(platform):
    """P's life in every service: events, an HL7 message, a call with notes and a low score (a
    complaint), a complaint typed by staff, a booked appointment reminded, searches."""
    tokens = platform.tokens
    for event in events_of(P) + events_of(Q):
        platform.publish(event)
    status, ack = platform.http(
        "POST",
        "/api/v1/hl7",
        raw=hl7_a04("DRHL7001", P),
        token=tokens["admin"],
        headers={"Content-Type": "x-application/hl7-v2+er7"},
    )
    assert status == 200 and "MSA|AA|DRHL7001" in ack, ack
    patient = wait_until(
        lambda: (lambda p: p if p and p["visit_count"] >= 1 else None)(
            find_patient(platform, P["mrn"])
        ),
        timeout=60,
        message="P's record",
    )
    call = wait_until(
        lambda: next(
            (
                t
                for t in platform.http(
                    "GET",
                    f"/api/v1/followups?patient_id={patient['patient_id']}&kind=post_visit_call",
                    token=tokens["agent"],
                )[1]["items"]
            ),
            None,
        ),
        timeout=60,
        message="P's post-visit call",
    )
    assert (
        platform.http(
            "POST", f"/api/v1/followups/{call['followup_id']}/claim", token=tokens["agent"]
        )[0]
        == 200
    )
    status, done = platform.http(
        "POST",
        f"/api/v1/followups/{call['followup_id']}/complete",
        {
            "outcome": "reached",
            "satisfaction": 1,
            "notes": f"{P['name']}说医生很好，但是等了很久",
            "complaint": f"{P['name']}等了两个小时，请回电 {P['phone']}",
        },
        token=tokens["agent"],
    )
    assert status == 200, done
    status, opened = platform.http(
        "POST",
        "/api/v1/complaints",
        {
            "patient_id": patient["patient_id"],
            "channel": "phone",
            "category": "attitude",
            "severity": "low",
            "department": "心内科",
            "description": f"{P['name']}投诉挂号处态度，电话 {phone_digits(P['phone'])}",
        },
        token=tokens["agent"],
    )
    assert status == 201, opened
    starts = datetime.datetime.combine(
        today() + datetime.timedelta(days=1), datetime.time(9), HOSPITAL_TZ
    )
    while starts.weekday() > 4:
        starts += datetime.timedelta(days=1)
    status, booked = platform.http(
        "POST",
        "/api/v1/appointments",
        {
            "patient_id": patient["patient_id"],
            "department": "心内科",
            "starts_at": starts.isoformat(),
            "channel": "phone",
        },
        token=tokens["agent"],
    )
    assert status == 201, booked
    for query in (f"phone={P['phone']}", f"q={urllib.parse.quote(P['name'])}", f"mrn={P['mrn']}"):
        assert platform.http("GET", f"/api/v1/patients?{query}", token=tokens["agent"])[0] == 200
    late = factories.admitted(
        P["mrn"], "A-HTTP-1", **person(P)
    )  # an event posted over HTTP: audited by MRN
    assert platform.http("POST", "/api/v1/events", late, token=tokens["admin"])[0] == 202
    db = MongoClient(platform.database_uri("appointments")).get_default_database()
    wait_until(
        lambda: db.notifications.count_documents({"patient_id": patient["patient_id"]}) == 1,
        timeout=30,
        message="P's reminder sent",
    )
    wait_until(
        lambda: (
            platform.http(
                "GET",
                f"/api/v1/complaints?patient_id={patient['patient_id']}",
                token=tokens["agent"],
            )[1]["total"]
            == 2
        ),
        timeout=60,
        message="both of P's complaints",
    )
    wait_until(lambda: settled(platform), timeout=60, message="every queue drained")
    return patient


def test_the_export_holds_what_every_service_holds_for_managers_only(everything):
    platform = everything
    patient = live_everywhere(platform)
    pid = patient["patient_id"]
    status, _body = platform.http(
        "GET", f"/api/v1/patients/{pid}/export", token=platform.tokens["agent"]
    )
    assert status == 403
    status, export = platform.http(
        "GET", f"/api/v1/patients/{pid}/export", token=platform.tokens["manager"]
    )
    assert status == 200, export
    assert export["patient_id"] == pid and export["mrns"] == [P["mrn"]]
    assert export["intake"]["record"]["name"] == P["name"]
    assert {e["event_type"] for e in export["intake"]["events"]} >= {
        "PatientRegistered",
        "ConsultationLogged",
        "PatientVisited",
        "PatientAdmitted",
        "PatientDischarged",
    }
    tasks = export["followup"]["tasks"]
    assert any(
        t["kind"] == "post_visit_call" and t["status"] == "done" and t["satisfaction"] == 1
        for t in tasks
    )
    assert any(t["status"] == "pending" for t in tasks)
    assert (
        len(export["appointments"]["appointments"]) == 1
        and len(export["appointments"]["reminders"]) == 1
    )
    complaints = export["complaints"]["complaints"]
    assert len(complaints) == 2 and all(c["history"] for c in complaints)
    assert export["analytics"]["facts"] and export["hl7"]["messages"][0]["control_id"] == "DRHL7001"
    assert P["name"][:2] in export["hl7"]["messages"][0]["raw"]
    routes = {entry["route"] for entry in export["gateway"]["audit"]}
    assert (
        "/api/v1/events" in routes and f"/api/v1/patients/{pid}/export" in routes
    )  # the agent's 403
    assert not any(k.startswith("outbox") for t in tasks for k in t)

    status, page = platform.http(
        "GET", f"/api/v1/patients/{pid}/export?format=html", token=platform.tokens["admin"]
    )
    assert status == 200 and isinstance(page, str) and page.startswith("<!doctype html>")
    assert P["name"] in page and "DRHL7001" in page and "<script" not in page
    _, audit = platform.http(
        "GET", f"/api/v1/audit?patient_id={pid}", token=platform.tokens["admin"]
    )
    exports = {(e["user"], e["status"]) for e in audit["items"] if e["route"].endswith("/export")}
    assert exports == {("dr.agent", 403), ("dr.manager", 200), ("admin", 200)}


def test_an_erasure_leaves_the_persons_name_and_phone_in_no_database_and_no_log(everything):
    platform = everything
    tokens = platform.tokens
    patient = live_everywhere(platform)
    pid = patient["patient_id"]
    databases, hits = scan_databases(platform)
    assert {f"t{platform.run_id}_{name}" for name in EVERY_SERVICE + ("hl7", "gateway")} <= set(
        databases
    )
    assert {db.rsplit("_", 1)[1] for db, *_ in hits} == {
        "intake",
        "followup",
        "appointments",
        "complaints",
        "analytics",
        "hl7",
    }, hits  # the scan sees them before
    # The gateway's audit kept the searches, masked as they were written: not for whom.
    _, audit = platform.http("GET", "/api/v1/audit?user=dr.agent&limit=100", token=tokens["admin"])
    searches = {e["query"] for e in audit["items"] if e["route"] == "/api/v1/patients"}
    assert searches == {"phone=*******0001", "q=%E6%AC%A7***", "mrn=DR****"}, searches
    before = summary(platform, tokens["admin"])
    counted = find_patient(platform, P["mrn"])  # the visits now (the HL7 one came after `patient`)

    assert (
        platform.http(
            "POST",
            f"/api/v1/patients/{pid}/erase",
            {"reason": "DPO ticket 7"},
            token=tokens["manager"],
        )[0]
        == 403
    )
    assert (
        platform.http("POST", f"/api/v1/patients/{pid}/erase", {}, token=tokens["admin"])[0] == 400
    )
    reason = f"PIPL art. 47 request DPO-2026-17 from {P['name']}, phone {P['phone']}"
    status, erased = platform.http(
        "POST", f"/api/v1/patients/{pid}/erase", {"reason": reason}, token=tokens["admin"]
    )
    assert status == 202, erased
    assert erased["patient_id"] == pid and erased["erasure_id"]

    last = {}

    def clean():
        last["db"] = scan_databases(platform)[1]
        return not last["db"] and settled(platform)

    wait_until(
        clean, timeout=90, message=lambda: f"no trace of P left; still found: {last.get('db')}"
    )
    assert not scan_logs(platform), scan_logs(platform)
    after = summary(platform, tokens["admin"])
    assert after == before

    # The record keeps its id and counters; the person is gone.
    status, record = platform.http("GET", f"/api/v1/patients/{pid}", token=tokens["admin"])
    assert (
        status == 200
        and record["name"] is None
        and record["phone"] is None
        and record["mrn"] is None
    )
    assert record["visit_count"] == counted["visit_count"] == 2 and record["erased_at"]
    # Pending calls, the reminder and the open complaints are closed as "erased".
    _, tasks = platform.http("GET", f"/api/v1/followups?patient_id={pid}", token=tokens["admin"])
    assert tasks["items"] and not [t for t in tasks["items"] if t["status"] == "pending"]
    assert "erased" in {t["cancel_reason"] for t in tasks["items"] if t["status"] == "cancelled"}
    _, appointments = platform.http(
        "GET", f"/api/v1/appointments?patient_id={pid}", token=tokens["admin"]
    )
    assert [a["status"] for a in appointments["items"]] == ["cancelled"]
    _, complaints = platform.http(
        "GET", f"/api/v1/complaints?patient_id={pid}", token=tokens["admin"]
    )
    assert {c["status"] for c in complaints["items"]} == {"cancelled"}
    assert {c["description"] for c in complaints["items"]} == {"(erased)"}
    # The erasure is audited: who, when, why - without whom.
    _, audit = platform.http("GET", f"/api/v1/audit?patient_id={pid}", token=tokens["admin"])
    entry = next(e for e in audit["items"] if e["route"].endswith("/erase") and e["status"] == 202)
    assert entry["user"] == "admin" and entry["erasure_id"] == erased["erasure_id"]
    assert (
        "DPO-2026-17" in entry["reason"]
        and P["name"] not in entry["reason"]
        and "0001" not in entry["reason"]
    )
    # Asked again: the same erasure.
    status, again = platform.http(
        "POST", f"/api/v1/patients/{pid}/erase", {"reason": "again"}, token=tokens["admin"]
    )
    assert status == 202 and again["erasure_id"] == erased["erasure_id"]
    # The MRN is released: the same MRN later is a new record.
    platform.publish(factories.visit(P["mrn"], name="新患者", phone="13700000009"))
    newcomer = wait_until(
        lambda: find_patient(platform, P["mrn"]), timeout=60, message="a new record for the MRN"
    )
    assert newcomer["patient_id"] != pid and newcomer["name"] == "新患者"
    status, export = platform.http("GET", f"/api/v1/patients/{pid}/export", token=tokens["admin"])
    assert status == 200 and P["name"] not in json.dumps(export, ensure_ascii=False)


# -- retention -------------------------------------------------------------------------------------
def test_retention_strips_old_events_notes_hl7_texts_audit_and_rejected_messages(platform):
    short = "0.00003"  # about 2.6 s
    platform.start_service(
        "intake",
        HCRM_RETENTION_INTERVAL_S="0.5",
        INTAKE_EVENT_RETENTION_DAYS=short,
        INTAKE_INPATIENT_EVENT_RETENTION_DAYS=short,
        HCRM_REJECTED_RETENTION_DAYS=short,
    )
    followup_process = platform.start_service("followup")
    platform.start_hl7(HCRM_RETENTION_INTERVAL_S="0.5", HL7_RAW_RETENTION_DAYS=short)
    platform.start_gateway(HCRM_RETENTION_INTERVAL_S="0.5", GATEWAY_AUDIT_RETENTION_DAYS=short)
    admin = platform.token()
    intake = MongoClient(platform.database_uri("intake")).get_default_database()
    followup = MongoClient(platform.database_uri("followup")).get_default_database()
    hl7 = MongoClient(platform.database_uri("hl7")).get_default_database()
    gateway = MongoClient(platform.database_uri("gateway")).get_default_database()

    # Two statements of the phone: the older one goes, the latest stays (the record shows it).
    first = factories.registered(P["mrn"], day=1, **dict(person(P), phone="13800000001"))
    visit = factories.visit(P["mrn"], day=2, **person(P))
    visit["data"]["doctor_name"] = "刘洋"
    for event in (first, visit):
        platform.publish(event)
    record = wait_until(
        lambda: (lambda p: p if p and p["view"]["visit_count"] == 1 else None)(
            find_patient_db(intake, P["mrn"])
        ),
        timeout=60,
        message="P's record",
    )
    stripped = wait_until(
        lambda: intake.events.count_documents({"retained_at": {"$exists": True}}) == 2,
        timeout=60,
        message="both events past their retention",
    )
    assert stripped
    old = intake.events.find_one({"source_event_id": first["event_id"]})
    assert old["data"]["patient"] == {}  # the visit states every field again, later
    assert "13800000001" not in json.dumps(old, default=str) and old["outbox_state"] == "published"
    assert P["name"] not in json.dumps(old["outbox_queue"], ensure_ascii=False)
    latest = intake.events.find_one({"source_event_id": visit["event_id"]})
    assert (
        latest["data"]["patient"]["phone"] == P["phone"]
        and latest["data"]["patient"]["name"] == P["name"]
    )
    assert "mrn" not in latest["data"]["patient"] and "doctor_name" not in latest["data"]
    assert latest["data"]["visit_id"] == visit["data"]["visit_id"]
    # A resend of a stripped event is a plain duplicate, not a conflicting one.
    platform.publish(first)
    wait_until(
        lambda: platform.queue_depth("intake.inbound") == 0,
        timeout=30,
        message="the resend handled",
    )
    assert platform.queue_depth("hospital.events.rejected") == 0
    # A new event that states no phone re-projects the record from the stripped events:
    # same profile.
    admitted = factories.admitted(P["mrn"], "A-RET-1", day=3, name=P["name"])
    admitted["data"]["patient"].pop("phone")
    platform.publish(admitted)
    after = wait_until(
        lambda: (lambda p: p if p and p["view"]["admission_count"] == 1 else None)(
            find_patient_db(intake, P["mrn"])
        ),
        timeout=60,
        message="the admission projected",
    )
    assert {k: after["view"][k] for k in ("name", "phone", "birth_date", "gender", "region")} == {
        k: record["view"][k] for k in ("name", "phone", "birth_date", "gender", "region")
    }

    # A call's notes go once the task was due long enough ago (the task is due on 3 March 2026;
    # its notes were written after followup last looked, so followup restarts with the short
    # period).
    task = wait_until(
        lambda: followup.tasks.find_one({"kind": "post_visit_call"}), timeout=60, message="the call"
    )
    followup.tasks.update_one(
        {"_id": task["_id"]}, {"$set": {"notes": "患者说很好", "complaint": "等太久"}}
    )
    followup_process.stop()
    platform.start_service(
        "followup", HCRM_RETENTION_INTERVAL_S="0.5", FOLLOWUP_TASK_NOTES_RETENTION_DAYS=short
    )
    wait_until(
        lambda: followup.tasks.find_one({"_id": task["_id"], "notes": None, "complaint": None}),
        timeout=30,
        message="the call's notes removed",
    )

    # An HL7 message's text goes; the record of it stays.
    status, _ = platform.http(
        "POST",
        "/api/v1/hl7",
        raw=hl7_a04("RETHL7001", Q),
        token=admin,
        headers={"Content-Type": "x-application/hl7-v2+er7"},
    )
    assert status == 200
    message = wait_until(
        lambda: hl7.messages.find_one({"control_id": "RETHL7001", "raw_removed": "retention"}),
        timeout=60,
        message="the HL7 text removed",
    )
    assert message["raw"] is None and message["ack_code"] == "AA"

    # Audit entries go (an entry lives at least the 2.6 s of its period); a rejected message
    # expires in the broker.
    assert platform.http("GET", f"/api/v1/patients?mrn={P['mrn']}", token=admin)[0] == 200
    assert gateway.audit.count_documents({}) >= 1
    platform.publish(
        {"event_type": "PatientVisited", "data": {"patient": {"name": Q["name"]}}}, "PatientVisited"
    )
    wait_until(
        lambda: platform.queue_depth("hospital.events.rejected") == 1,
        timeout=30,
        message="the rejection",
    )
    wait_until(
        lambda: platform.queue_depth("hospital.events.rejected") == 0,
        timeout=60,
        message="it expired",
    )
    wait_until(
        lambda: gateway.audit.count_documents({}) == 0,
        timeout=30,
        message="old audit entries deleted",
    )


def find_patient_db(db, mrn):
    return db.patients.find_one({"mrn": mrn, "event_count": {"$gt": 0}})
