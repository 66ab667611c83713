"""Campaigns through the gateway on the real broker and store (issue 22 point 3,
docs/RULES.md § Campaigns): exactly the consenting people of the segment get exactly one
message, whatever the replicas and restarts (two replicas, quiet hours holding the sending,
then a restart of both and of one more mid-way); the per-day limit defers a second campaign;
a call campaign puts a task in the agents' worklist, which an opt-out cancels; the report's
figures; CampaignMessageSent on campaigns.events with ids only.

The SMS gateway is a real HTTP server on loopback (the webhook notifier), so every message
handed over is seen, with its Idempotency-Key.
"""

import collections
import datetime
import http.server
import json
import threading
import uuid
import zlib
import zoneinfo

import pytest
from pymongo import MongoClient

from tests import factories
from tests.support import wait_until

pytestmark = pytest.mark.integration

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
MANAGER = ("zhou.min", "manager-password-1")
AGENT = ("li.na", "agent-password-1")
CONSENTING = [f"CMP-{n:02}" for n in range(24)]
TEMPLATE = {
    "zh": "{name}您好，心内科义诊周邀请您参加。回TD退订",
    "en": "Dear {name}, join our heart clinic week.",
}


class SmsGateway:
    """An SMS gateway stand-in: records every POSTed message with its Idempotency-Key."""

    def __init__(self):
        self.received = []
        received = self.received

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                received.append((self.headers["Idempotency-Key"], body))
                self.send_response(202)
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/sms"

    def keys(self):
        return collections.Counter(key for key, _ in self.received)


def now_local():
    return datetime.datetime.now(TZ).replace(microsecond=0)


def campaigns_env(sms, quiet=("00:00", "00:00")):
    return {
        "CAMPAIGNS_TIMER_INTERVAL_S": "0.3",
        "CAMPAIGNS_SEND_BATCH": "4",
        "CAMPAIGNS_CLAIM_SECONDS": "5",
        "CAMPAIGNS_NOTIFIER": "webhook",
        "CAMPAIGNS_WEBHOOK_URL": sms.url,
        "CAMPAIGNS_QUIET_START": quiet[0],
        "CAMPAIGNS_QUIET_END": quiet[1],
    }


def quiet_now():
    """Quiet hours that hold now, in the hospital's time zone (wrapping midnight if need be)."""
    now = now_local()
    return (
        (now - datetime.timedelta(hours=1)).strftime("%H:%M"),
        (now + datetime.timedelta(hours=2)).strftime("%H:%M"),
    )


def visit(mrn, department="心内科", phone="", visited_at=None, **patient_fields):
    """A visit of `mrn`, with a phone of its own unless one is given (None: no phone at all)."""
    event = factories.visit(
        mrn,
        department=department,
        phone=phone or f"139{zlib.crc32(mrn.encode()) % 10**8:08d}",
        **patient_fields,
    )
    if phone is None:
        del event["data"]["patient"]["phone"]
    if visited_at:
        event["data"]["visited_at"] = visited_at.isoformat()
        event["occurred_at"] = visited_at.isoformat()
    return event


@pytest.fixture
def center(platform):
    platform.sms = SmsGateway()
    platform.witness("campaigns.events", "campaigns-witness")
    platform.start_service("intake")
    platform.start_service("followup")
    quiet = quiet_now()
    platform.replicas = [
        platform.start_service("campaigns", **campaigns_env(platform.sms, quiet)) for _ in range(2)
    ]
    platform.start_gateway(GATEWAY_SERVICES="intake,followup,campaigns")
    admin = platform.token()
    for (username, password), role in ((MANAGER, "manager"), (AGENT, "agent")):
        status, body = platform.http(
            "POST",
            "/api/v1/users",
            {"username": username, "password": password, "role": role},
            token=admin,
        )
        assert status == 201, body
    platform.db = MongoClient(
        platform.database_uri("campaigns"), tz_aware=True
    ).get_default_database()
    yield platform
    platform.db.client.close()
    platform.sms.server.shutdown()


def patient_id(platform, token, mrn):
    status, body = platform.http("GET", f"/api/v1/patients?mrn={mrn}", token=token)
    return body["items"][0]["patient_id"] if status == 200 and body["items"] else None


def report(platform, token, campaign_id):
    status, body = platform.http("GET", f"/api/v1/campaigns/{campaign_id}", token=token)
    assert status == 200, body
    return body


def report_when(platform, token, campaign_id, status, timeout=30):
    """The campaign's report once its status is `status`."""
    return wait_until(
        lambda: (lambda r: r if r["status"] == status else None)(
            report(platform, token, campaign_id)
        ),
        timeout=timeout,
        message=f"campaign {campaign_id} {status}",
    )


def witnessed(platform):
    """Every event campaigns published so far (the witness queue is drained into platform.seen)."""
    drained = [json.loads(body) for body, _ in platform.drain("campaigns-witness")]
    platform.seen = getattr(platform, "seen", []) + drained
    return platform.seen


def test_each_consenting_patient_gets_one_message_and_a_call_campaign_fills_the_worklist(center):
    platform, sms = center, center.sms
    manager, agent, admin = platform.token(*MANAGER), platform.token(*AGENT), platform.token()
    phones = {}
    for mrn in CONSENTING:
        event = visit(mrn, marketing_consent=True)
        phones[mrn] = event["data"]["patient"]["phone"]
        platform.publish(event)
    others = [
        visit("CMP-NO-MKT", marketing_consent=False),
        visit("CMP-UNSTATED"),
        visit("CMP-NO-CONTACT", marketing_consent=True, contact_consent=False),
        visit("CMP-NO-PHONE", marketing_consent=True, phone=None),
        visit("CMP-OPT-AGENT", marketing_consent=True),
        visit("CMP-OPT-SMS", marketing_consent=True),
        visit("CMP-ORTHO", department="骨科", marketing_consent=True),
        visit("CMP-ORTHO-NO", department="骨科", marketing_consent=False),
    ]
    for event in others:
        platform.publish(event)
    wait_until(
        lambda: platform.db.people.count_documents({}) == len(CONSENTING) + len(others),
        timeout=60,
        message="campaigns knows every person",
    )
    ids = {
        mrn: wait_until(lambda mrn=mrn: patient_id(platform, agent, mrn), timeout=30, message=mrn)
        for mrn in ["CMP-00", "CMP-OPT-AGENT", "CMP-ORTHO", "CMP-ORTHO-NO"]
    }

    # -- opt-outs: an agent's note, an SMS reply --------------------------------------------------
    status, body = platform.http(
        "POST",
        f"/api/v1/patients/{ids['CMP-OPT-AGENT']}/marketing-opt-out",
        {"note": "患者电话中表示不需要活动信息"},
        token=agent,
    )
    assert status == 200 and body["opted_out"] is True and body["changed"] is True, body
    assert body["marketing_consent"] is False and body["stated_marketing_consent"] is True
    assert (
        platform.http(
            "POST", f"/api/v1/patients/{ids['CMP-OPT-AGENT']}/marketing-opt-out", token=agent
        )[1]["changed"]
        is False
    )  # once is enough
    opt_sms_phone = others[5]["data"]["patient"]["phone"]
    assert platform.http(
        "POST", "/api/v1/campaigns/replies", {"phone": opt_sms_phone, "text": "谢谢"}, token=admin
    )[1] == {"opt_out": False, "patients": 0}
    status, body = platform.http(
        "POST", "/api/v1/campaigns/replies", {"phone": opt_sms_phone, "text": " 退订 "}, token=admin
    )
    assert (status, body) == (200, {"opt_out": True, "patients": 1})
    assert (
        platform.http("POST", "/api/v1/campaigns", {"name": "x"}, token=agent)[0] == 403
    )  # managers only

    # -- an SMS campaign, targeted while quiet hours hold the sending -----------------------------
    status, created = platform.http(
        "POST",
        "/api/v1/campaigns",
        {
            "name": "心内科义诊周",
            "segment": {"department": "心内科"},
            "channel": "sms",
            "template": TEMPLATE,
            "send_at": now_local().isoformat(),
        },
        token=manager,
    )
    assert status == 201, created
    campaign_id = created["campaign_id"]
    held = report_when(platform, manager, campaign_id, "sending")  # targeted
    assert (held["targeted"], held["waiting"], held["sent"]) == (30, 24, 0)
    assert sms.received == []  # quiet hours

    # -- both replicas restarted without quiet hours, and one more restart while sending ----------
    for replica in platform.replicas:
        replica.stop()
    replicas = [platform.start_service("campaigns", **campaigns_env(sms)) for _ in range(2)]
    wait_until(lambda: len(sms.received) >= 6, timeout=30, message="sending under way")
    replicas[0].stop()
    replicas.append(platform.start_service("campaigns", **campaigns_env(sms)))
    done = report_when(platform, manager, campaign_id, "done", timeout=60)
    assert {
        key: done[key]
        for key in (
            "targeted",
            "excluded_no_consent",
            "excluded_no_phone",
            "sent",
            "calls_created",
            "waiting",
            "returned_within_30d",
        )
    } == {
        "targeted": 30,
        "excluded_no_consent": 5,
        "excluded_no_phone": 1,
        "sent": 24,
        "calls_created": 0,
        "waiting": 0,
        "returned_within_30d": 0,
    }
    keys = sms.keys()
    assert len(keys) == 24 and set(keys.values()) == {1}, keys  # each consenting person once
    assert sorted(body["phone"] for _, body in sms.received) == sorted(phones.values())
    first = next(body for _, body in sms.received if body["phone"] == phones["CMP-00"])
    assert (
        first["text"] == "王芳您好，心内科义诊周邀请您参加。回TD退订"
        and first["purpose"] == "campaign"
    )

    sent_events = [e for e in witnessed(platform) if e["event_type"] == "CampaignMessageSent"]
    assert len({e["event_id"] for e in sent_events}) == 24
    for event in sent_events:  # ids, channel and time only: no name, number or text
        assert set(event["data"]) == {"campaign_id", "delivery_id", "channel", "sent_at"}
        assert event["service"] == "campaigns" and event["data"]["campaign_id"] == campaign_id

    # -- a patient who came back after the message -------------------------------------------------
    platform.publish(
        visit(
            "CMP-00",
            visited_at=now_local() + datetime.timedelta(minutes=1),
            marketing_consent=True,
            phone=phones["CMP-00"],
        )
    )
    wait_until(
        lambda: report(platform, manager, campaign_id)["returned_within_30d"] == 1,
        timeout=30,
        message="the return counted",
    )

    # -- the per-day limit: a second campaign the same day waits for tomorrow ----------------------
    status, second = platform.http(
        "POST",
        "/api/v1/campaigns",
        {
            "name": "第二次",
            "segment": {"department": "心内科"},
            "channel": "sms",
            "template": TEMPLATE,
            "send_at": now_local().isoformat(),
        },
        token=manager,
    )
    assert status == 201
    tomorrow = datetime.datetime.combine(
        now_local().date() + datetime.timedelta(days=1), datetime.time(0), TZ
    )
    wait_until(
        lambda: (
            len(
                list(
                    platform.db.deliveries.find(
                        {"campaign_id": second["campaign_id"], "deferred": "daily_limit"}
                    )
                )
            )
            == 24
        ),
        timeout=30,
        message="the second campaign deferred",
    )
    deferred = list(
        platform.db.deliveries.find(
            {"campaign_id": second["campaign_id"], "deferred": "daily_limit"}
        )
    )
    # the next day, outside quiet hours (none configured here: from midnight)
    assert {d["queue_ts"] for d in deferred} == {tomorrow.timestamp()}
    assert report(platform, manager, second["campaign_id"])["sent"] == 0 and len(sms.received) == 24

    # -- a call campaign: tasks in the agents' worklist, cancelled by an opt-out -------------------
    status, call = platform.http(
        "POST",
        "/api/v1/campaigns",
        {
            "name": "骨科康复关怀",
            "segment": {"department": "骨科"},
            "channel": "call",
            "template": {
                "zh": "您好，骨科康复讲座下周三举行。",
                "en": "Our orthopaedic recovery talk is next Wednesday.",
            },
            "send_at": now_local().isoformat(),
        },
        token=manager,
    )
    assert status == 201
    call_done = report_when(platform, manager, call["campaign_id"], "done")
    assert (
        call_done["targeted"],
        call_done["calls_created"],
        call_done["excluded_no_consent"],
        call_done["sent"],
    ) == (2, 1, 1, 0)
    tasks = wait_until(
        lambda: platform.http("GET", "/api/v1/followups?kind=campaign_call", token=agent)[1][
            "items"
        ],
        timeout=30,
        message="the campaign call in the worklist",
    )
    assert [(t["patient_id"], t["status"]) for t in tasks] == [(ids["CMP-ORTHO"], "pending")]
    assert tasks[0]["script"]["zh"] == "您好，骨科康复讲座下周三举行。"
    status, body = platform.http(
        "POST", f"/api/v1/patients/{ids['CMP-ORTHO']}/marketing-opt-out", token=agent
    )
    assert status == 200 and body["changed"] is True
    cancelled = wait_until(
        lambda: (lambda t: t if t["status"] == "cancelled" else None)(
            platform.http("GET", f"/api/v1/followups/{tasks[0]['followup_id']}", token=agent)[1]
        ),
        timeout=30,
        message="call cancelled",
    )
    assert cancelled["cancel_reason"] == "no_consent"

    withdrawn = [e for e in witnessed(platform) if e["event_type"] == "MarketingConsentWithdrawn"]
    assert sorted(e["data"]["via"] for e in withdrawn) == ["agent", "agent", "sms_reply"]
    assert all(set(e["data"]) == {"via", "withdrawn_at"} for e in withdrawn)

    # -- a renewed consent lifts the opt-out (managers only) ---------------------------------------
    assert (
        platform.http(
            "DELETE", f"/api/v1/patients/{ids['CMP-ORTHO']}/marketing-opt-out", token=agent
        )[0]
        == 403
    )
    status, body = platform.http(
        "DELETE", f"/api/v1/patients/{ids['CMP-ORTHO']}/marketing-opt-out", token=manager
    )
    assert status == 200 and body["opted_out"] is False and body["marketing_consent"] is True

    listed = platform.http("GET", "/api/v1/campaigns", token=manager)[1]
    assert listed["total"] == 3 and {c["campaign_id"] for c in listed["items"]} == {
        campaign_id,
        second["campaign_id"],
        call["campaign_id"],
    }


def test_validation_a_holiday_greeting_a_merged_person_once_and_data_rights(platform):
    platform.start_service("intake")
    platform.start_service(
        "campaigns",
        CAMPAIGNS_TIMER_INTERVAL_S="0.3",
        CAMPAIGNS_QUIET_START="00:00",
        CAMPAIGNS_QUIET_END="00:00",
    )
    platform.start_gateway(GATEWAY_SERVICES="intake,campaigns")
    admin = platform.token()
    status, body = platform.http(
        "POST",
        "/api/v1/campaigns",
        {
            "name": "x",
            "channel": "fax",
            "template": {"zh": "a"},
            "segment": {"visit_count": {"min": 3, "max": 1}},
        },
        token=admin,
    )
    assert status == 400
    assert set(body["error"]["details"]) == {"channel", "template.en", "segment.visit_count.min"}, (
        body
    )
    holidays = platform.http("GET", "/api/v1/campaigns/holidays", token=admin)[1]
    spring = next(item for item in holidays["items"] if item["holiday"] == "spring_festival")
    status, created = platform.http(
        "POST",
        "/api/v1/campaigns",
        {
            "name": "春节问候",
            "channel": "sms",
            "holiday": "spring_festival",
            "template": {
                "zh": "{name}您好，祝您春节快乐、身体健康！",
                "en": "Happy Spring Festival, {name}!",
            },
        },
        token=admin,
    )
    assert status == 201, created
    assert created["send_at"] == spring["send_at"] and created["send_at"].endswith(
        "T09:00:00+08:00"
    )
    assert created["status"] == "scheduled" and created["holiday"] == "spring_festival"
    assert platform.http("GET", f"/api/v1/campaigns/{uuid.uuid4()}", token=admin)[0] == 404

    # -- two records merged into one person: one message -------------------------------------------
    for mrn in ("CMP-EYE-A", "CMP-EYE-B"):
        platform.publish(visit(mrn, department="眼科", marketing_consent=True, phone="13900000555"))
    wait_until(
        lambda: (
            platform.http("GET", "/api/v1/patients?mrn=CMP-EYE-B", token=admin)[1].get("total") == 1
        ),
        timeout=30,
        message="both records",
    )
    platform.publish(
        factories.merged("CMP-EYE-A", "CMP-EYE-B", phone="13900000555", marketing_consent=True)
    )
    merged_db = MongoClient(
        platform.database_uri("campaigns"), tz_aware=True
    ).get_default_database()
    try:
        wait_until(
            lambda: merged_db.aliases.count_documents({}) == 1,
            timeout=30,
            message="the merge in campaigns",
        )
    finally:
        merged_db.client.close()
    status, eye = platform.http(
        "POST",
        "/api/v1/campaigns",
        {
            "name": "眼科",
            "segment": {"department": "眼科", "visit_count": {"min": 2}},
            "channel": "sms",
            "template": TEMPLATE,
            "send_at": now_local().isoformat(),
        },
        token=admin,
    )
    assert status == 201
    eye = report_when(platform, admin, eye["campaign_id"], "done")
    assert (eye["targeted"], eye["sent"]) == (1, 1)  # one person, with both records' visits

    # -- the patients' data rights: the export lists what campaigns keeps of the person; an
    # erasure clears it there (README.md § Data protection) --------------------------------------
    platform.publish(visit("CMP-RIGHTS", marketing_consent=True, name="赵敏"))
    db = MongoClient(platform.database_uri("campaigns"), tz_aware=True).get_default_database()
    try:
        pid = wait_until(
            lambda: patient_id(platform, admin, "CMP-RIGHTS"), timeout=30, message="the record"
        )
        wait_until(
            lambda: db.people.find_one({"_id": pid}),
            timeout=30,
            message="campaigns knows the person",
        )
        assert (
            platform.http(
                "POST",
                f"/api/v1/patients/{pid}/marketing-opt-out",
                {"note": "赵敏说不要再发"},
                token=admin,
            )[0]
            == 200
        )
        status, export = platform.http("GET", f"/api/v1/patients/{pid}/export", token=admin)
        assert status == 200, export
        kept = export["campaigns"]
        assert (
            kept["people"][0]["name"] == "赵敏" and kept["opt_outs"][0]["note"] == "赵敏说不要再发"
        )
        status, _ = platform.http(
            "POST", f"/api/v1/patients/{pid}/erase", {"reason": "request 2026-17"}, token=admin
        )
        assert status == 202
        wait_until(
            lambda: db.people.find_one({"_id": pid}) is None, timeout=30, message="the view dropped"
        )
        wait_until(
            lambda: db.opt_outs.find_one({"_id": pid})["note"] is None,
            timeout=30,
            message="the note cleared",
        )
        assert (
            db.opt_outs.find_one({"_id": pid})["state"] == "withdrawn"
        )  # still no campaign for that id
        assert all(
            "赵敏" not in json.dumps(doc, ensure_ascii=False, default=str)
            for doc in db.events.find({"patient_id": pid})
        )
    finally:
        db.client.close()
