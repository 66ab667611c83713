"""Issue 22 through the gateway, on the real broker and store: the agents' figures (each
agent's line, the team's, the targets), an agent limited to their own line, the quarterly
assessment, and the service-quality surveys answered during the call and through the
one-time link (hashed token, used once, expiring, rate-limited), their figures by department
and doctor, their service recovery and their event on the stream.

Calls are recorded now, so the tasks come from visits placed relative to today (hospital
time): yesterday's visit is due at the end of today (on time), one three days ago was due two
days ago (late). Every expected value is written out below.
"""

import datetime
import hashlib
import http.client
import json
import re
import urllib.parse
import zoneinfo

import pymongo
import pytest
from kombu import Connection

from tests import factories
from tests.support import hospital_today, wait_until

pytestmark = pytest.mark.integration

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
PASSWORD = "agent-password-1"
PATIENTS = {  # name: (days before today, department, doctor, phone)
    "甲": (1, "心内科", "DR-LIU", "13900000001"),
    "乙": (1, "骨科", "DR-WU", "13900000002"),
    "丙": (3, "心内科", "DR-LIU", "13900000003"),
    "丁": (1, "儿科", "DR-MA", "13900000004"),
}
TOKEN_IN_TEXT = re.compile(r"/survey/([A-Za-z0-9_-]{43})")


def visit(name, today):
    days, department, doctor, phone = PATIENTS[name]
    visited = datetime.datetime.combine(
        today - datetime.timedelta(days=days), datetime.time(9, 30), TZ
    )
    event = factories.visit(f"CTR-{phone[-1]}", department=department, name=name, phone=phone)
    event["data"].update(visited_at=visited.isoformat(), doctor_id=doctor)
    event["occurred_at"] = (visited + datetime.timedelta(minutes=30)).isoformat()
    return event


def consultation_by_li_na(today):
    """Two days ago, from 甲's phone, taken by li.na: 甲 visits yesterday, so it converts."""
    event = factories.consultation(PATIENTS["甲"][3])
    event["occurred_at"] = datetime.datetime.combine(
        today - datetime.timedelta(days=2), datetime.time(15, 0), TZ
    ).isoformat()
    event["data"]["agent_id"] = "li.na"
    return event


def page(platform, method, path, form=None, headers=None):
    """(status, headers, text) of a survey page, form-encoded when a form is given."""
    url = urllib.parse.urlsplit(platform.gateway_url)
    connection = http.client.HTTPConnection(url.hostname, url.port, timeout=30)
    body = urllib.parse.urlencode(form) if form is not None else None
    sent = {"Content-Type": "application/x-www-form-urlencoded"} if form is not None else {}
    try:
        connection.request(method, path, body=body, headers={**sent, **(headers or {})})
        response = connection.getresponse()
        return (
            response.status,
            {k.lower(): v for k, v in response.getheaders()},
            response.read().decode(),
        )
    finally:
        connection.close()


def stream_events(amqp_uri, event_type, count, timeout=30):
    """The first `count` events of `event_type` on the hcrm.analytics stream."""
    found = []
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        channel.basic_qos(0, 500, False)

        def on_message(message):
            body = json.loads(message.body)
            if body["event_type"] == event_type:
                found.append(body)
            channel.basic_ack(message.delivery_tag)

        channel.basic_consume(
            "hcrm.analytics", callback=on_message, arguments={"x-stream-offset": "first"}
        )

        def enough():
            try:
                connection.drain_events(timeout=0.5)
            except TimeoutError:
                pass
            return len(found) >= count

        wait_until(enough, timeout=timeout, message=f"{count} {event_type} on the stream")
    return found


@pytest.fixture
def center(platform):
    platform.start_service("intake")
    platform.start_service(
        "followup",
        FOLLOWUP_MAX_ATTEMPTS="2",
        FOLLOWUP_SURVEY_LINK_INTERVAL_S="0.3",
        FOLLOWUP_SURVEY_LINK_BASE="https://crm.hospital.example",
    )
    platform.start_service("complaints")
    platform.start_service("analytics", ANALYTICS_FIGURES_REFRESH_INTERVAL_S="0.5")
    # One worker: one survey rate limiter to count against (each process has its own).
    platform.start_gateway(
        GATEWAY_WORKERS=1,
        GATEWAY_SURVEY_RATE_LIMIT_PER_MINUTE=12,
        GATEWAY_SURVEY_RATE_LIMIT_BURST=12,
    )
    admin = platform.token()
    for username, role in (("li.na", "agent"), ("wang.wei", "agent"), ("zhao.lei", "manager")):
        status, body = platform.http(
            "POST",
            "/api/v1/users",
            {"username": username, "password": PASSWORD, "role": role},
            token=admin,
        )
        assert status == 201, body
    return platform


def test_agents_figures_and_surveys_through_the_gateway(center):
    platform = center
    today = hospital_today()
    li, wang, manager = (
        platform.token(user, PASSWORD) for user in ("li.na", "wang.wei", "zhao.lei")
    )
    platform.publish(consultation_by_li_na(today))
    for name in PATIENTS:
        platform.publish(visit(name, today))
    tasks = wait_until(
        lambda: (
            lambda body: (
                {t["patient_name"]: t for t in body["items"]} if body["total"] == 4 else None
            )
        )(platform.http("GET", "/api/v1/followups?kind=post_visit_call", token=li)[1]),
        timeout=60,
        message="four post-visit calls",
    )
    assert tasks["甲"]["doctor_id"] == "DR-LIU" and tasks["乙"]["doctor_id"] == "DR-WU"

    def complete(token, name, body):
        followup_id = tasks[name]["followup_id"]
        assert (
            platform.http("POST", f"/api/v1/followups/{followup_id}/claim", token=token)[0] == 200
        )
        status, done = platform.http(
            "POST", f"/api/v1/followups/{followup_id}/complete", body, token=token
        )
        assert status == 200, done
        return done

    # A survey is checked at the gateway (shape) and in followup (the configured items).
    甲 = tasks["甲"]["followup_id"]
    for bad, field in (
        ({"doctor": 6}, "survey.doctor"),
        ({"doctor": "5"}, "survey.doctor"),
        ({}, "survey"),
        ({"parking": 3}, "survey.parking"),
    ):
        status, body = platform.http(
            "POST",
            f"/api/v1/followups/{甲}/complete",
            {"outcome": "reached", "survey": bad},
            token=li,
        )
        assert status == 400 and any(path.startswith(field) for path in body["error"]["details"]), (
            bad,
            body,
        )
    status, body = platform.http(
        "POST",
        f"/api/v1/followups/{甲}/complete",
        {"outcome": "unreachable", "survey": {"doctor": 4}},
        token=li,
    )
    assert status == 400 and body["error"]["details"] == {"survey": ["Only with outcome reached."]}

    # li.na: 甲 reached (5) with a survey during the call (waiting 2: service recovery);
    # 乙 unreachable twice (the second attempt is the last: a survey link is sent).
    done = complete(
        li,
        "甲",
        {
            "outcome": "reached",
            "satisfaction": 5,
            "survey": {"waiting": 2, "doctor": 5, "nurse": 4},
        },
    )
    assert (
        done["survey"] == {"doctor": 5, "nurse": 4, "waiting": 2}
        and done["survey_channel"] == "call"
    )
    assert complete(li, "乙", {"outcome": "unreachable"})["status"] == "pending"
    assert complete(li, "乙", {"outcome": "unreachable"})["survey_state"] == "to_send"
    # wang.wei: 丙 reached (4) two days late, no survey (a link is sent); 丁 declined (no link).
    complete(wang, "丙", {"outcome": "reached", "satisfaction": 4})
    assert complete(wang, "丁", {"outcome": "declined"})["survey_state"] is None
    # li.na resolves a complaint within its deadline.
    status, complaint = platform.http(
        "POST",
        "/api/v1/complaints",
        {
            "channel": "phone",
            "category": "waiting_time",
            "severity": "medium",
            "description": "候诊太久",
        },
        token=li,
    )
    assert status == 201, complaint
    for action in ("acknowledge", "resolve"):
        assert (
            platform.http(
                "POST",
                f"/api/v1/complaints/{complaint['complaint_id']}/{action}",
                {"note": "已致歉并说明原因", "resolution": "已改进叫号"},
                token=li,
            )[0]
            == 200
        )

    span = (
        f"from={(today - datetime.timedelta(days=3)).isoformat()}"
        f"&to={(today + datetime.timedelta(days=1)).isoformat()}"
    )
    li_line = {
        "agent": "li.na",
        "calls": 3,
        "reached": 1,
        "unreachable": 2,
        "declined": 0,
        "reach_rate": 0.3333,
        "on_time_rate": 1.0,
        "avg_satisfaction": 5.0,
        "complaints_resolved": 1,
        "complaints_resolved_in_sla_rate": 1.0,
        "consultations": 1,
        "conversions": 1,
        "assessment": {
            "reach_rate": "missed",
            "on_time_rate": "met",
            "avg_satisfaction": "met",
            "complaints_resolved_in_sla_rate": "met",
        },
    }
    wang_line = {
        "agent": "wang.wei",
        "calls": 2,
        "reached": 1,
        "unreachable": 0,
        "declined": 1,
        "reach_rate": 0.5,
        "on_time_rate": 0.5,
        "avg_satisfaction": 4.0,
        "complaints_resolved": 0,
        "complaints_resolved_in_sla_rate": None,
        "consultations": 0,
        "conversions": 0,
        "assessment": {
            "reach_rate": "missed",
            "on_time_rate": "missed",
            "avg_satisfaction": "missed",
            "complaints_resolved_in_sla_rate": None,
        },
    }

    def agents():
        status, body = platform.http("GET", f"/api/v1/analytics/agents?{span}", token=manager)
        assert status == 200, body
        return body

    body = wait_until(
        lambda: (lambda b: b if b["items"] == [li_line, wang_line] else None)(agents()),
        timeout=60,
        interval=0.5,
        message=lambda: f"the agents' lines (last: {agents()['items']})",
    )
    assert body["team"] == {
        "calls": 5,
        "reached": 2,
        "unreachable": 2,
        "declined": 1,
        "reach_rate": 0.4,
        "on_time_rate": 0.8,
        "avg_satisfaction": 4.5,
        "complaints_resolved": 1,
        "complaints_resolved_in_sla_rate": 1.0,
        "consultations": 1,
        "conversions": 1,
        "followup_completion_rate": 1.0,
        "assessment": {
            "reach_rate": "missed",
            "on_time_rate": "missed",
            "avg_satisfaction": "met",
            "complaints_resolved_in_sla_rate": "met",
            "followup_completion_rate": "met",
        },
    }
    assert body["targets"] == {
        "reach_rate": 0.9,
        "on_time_rate": 0.95,
        "avg_satisfaction": 4.5,
        "complaints_resolved_in_sla_rate": 0.95,
        "followup_completion_rate": 0.95,
    }

    # Object-level access: an agent reads their own line, by no parameter anyone else's.
    status, mine = platform.http("GET", f"/api/v1/analytics/agents/me?{span}", token=wang)
    assert status == 200 and mine["items"] == [wang_line] and "team" not in mine
    assert platform.http("GET", f"/api/v1/analytics/agents/me?{span}", token=li)[1]["items"] == [
        li_line
    ]
    for path in (
        f"/api/v1/analytics/agents?{span}",
        f"/api/v1/analytics/agents?{span}&agent=li.na",
        "/api/v1/analytics/reports/agents?quarter=2026-Q4",
        f"/api/v1/analytics/quality?{span}",
    ):
        assert platform.http("GET", path, token=wang)[0] == 403, path
    status, body = platform.http(
        "GET", f"/api/v1/analytics/agents/me?{span}&agent=li.na", token=wang
    )
    assert status == 400 and "agent" in body["error"]["details"]  # no such parameter
    status, manager_me = platform.http("GET", f"/api/v1/analytics/agents/me?{span}", token=manager)
    assert status == 200 and [i["agent"] for i in manager_me["items"]] == ["zhao.lei"]
    assert manager_me["items"][0]["calls"] == 0

    # The quarterly assessment: the quarter's figures, the previous quarter's beside them.
    quarter = f"{today.year}-Q{(today.month - 1) // 3 + 1}"
    status, report = platform.http(
        "GET", f"/api/v1/analytics/reports/agents?quarter={quarter}", token=manager
    )
    assert status == 200, report
    people = {p["agent"]: {r["figure"]: r for r in p["figures"]} for p in report["agents"]}
    assert people["li.na"]["reach_rate"] == {
        "figure": "reach_rate",
        "label_zh": "接通率",
        "label_en": "Reach rate",
        "kind": "rate",
        "value": 0.3333,
        "previous": None,
        "change": None,
        "target": 0.9,
        "assessment": "missed",
    }
    assert people["li.na"]["calls"]["previous"] == 0
    status, csv_text = platform.http(
        "GET", f"/api/v1/analytics/reports/agents?quarter={quarter}&format=csv", token=manager
    )
    assert status == 200 and csv_text.startswith("section,agent,figure,label,quarter,value")
    status, headers, html_page = page(
        platform,
        "GET",
        f"/api/v1/analytics/reports/agents?quarter={quarter}&format=html",
        headers={"Authorization": f"Bearer {manager}"},
    )
    assert (
        status == 200
        and "<svg" in html_page
        and headers["content-security-policy"].startswith("default-src 'none'")
    )
    assert (
        platform.http("GET", "/api/v1/analytics/reports/agents?quarter=2026-Q5", token=manager)[0]
        == 400
    )

    # -- the survey links: sent by the notifier, the token kept only as its hash ------------
    db = pymongo.MongoClient(platform.database_uri("followup")).get_default_database()
    try:
        links = wait_until(
            lambda: (lambda found: found if len(found) == 2 else None)(
                {n["followup_id"]: n for n in db.notifications.find({"purpose": "survey"})}
            ),
            timeout=30,
            message="two survey links sent",
        )
        assert set(links) == {tasks["乙"]["followup_id"], tasks["丙"]["followup_id"]}
        tokens = {fid: TOKEN_IN_TEXT.search(n["text"]).group(1) for fid, n in links.items()}
        for followup_id, token in tokens.items():
            stored = db.tasks.find_one({"_id": followup_id})
            assert stored["survey_token_hash"] == hashlib.sha256(token.encode()).hexdigest()
            assert token not in json.dumps(stored, default=str)  # only the hash
            assert (
                links[followup_id]["text"].startswith("【医院客服中心】")
                and "https://crm.hospital.example/survey/" in links[followup_id]["text"]
            )
        丙_token, 乙_token = tokens[tasks["丙"]["followup_id"]], tokens[tasks["乙"]["followup_id"]]

        # The page: the department and the day, nothing about the person; a strict CSP.
        status, headers, text = page(platform, "GET", f"/survey/{丙_token}")
        assert (
            status == 200
            and "心内科" in text
            and (today - datetime.timedelta(days=3)).isoformat() in text
        )
        assert "丙" not in text and PATIENTS["丙"][3] not in text and "DR-LIU" not in text
        assert headers["content-security-policy"].startswith(
            "default-src 'none'; style-src 'sha256-"
        )
        assert headers["referrer-policy"] == "no-referrer" and headers["x-frame-options"] == "DENY"
        status, _, english = page(platform, "GET", f"/survey/{丙_token}?lang=en")
        assert status == 200 and "Service satisfaction survey" in english
        status, _, text = page(
            platform, "POST", f"/survey/{丙_token}", form={"doctor": "", "nurse": "9"}
        )
        assert status == 400 and "评分须为 1 到 5 分" in text
        status, _, text = page(
            platform, "POST", f"/survey/{丙_token}", form={"doctor": "2", "environment": "5"}
        )
        assert status == 200 and "感谢您的评价" in text
        # Used once: a second answer and a second look are refused.
        status, _, text = page(platform, "POST", f"/survey/{丙_token}", form={"doctor": "5"})
        assert status == 410 and "此链接已使用" in text
        assert page(platform, "GET", f"/survey/{丙_token}")[0] == 410
        # Expired: 乙's link, its time moved past.
        db.tasks.update_one(
            {"_id": tasks["乙"]["followup_id"]}, {"$set": {"survey_expires_ts": 1.0}}
        )
        status, _, text = page(platform, "GET", f"/survey/{乙_token}")
        assert status == 410 and "此链接已过期" in text
        assert page(platform, "POST", f"/survey/{乙_token}", form={"doctor": "4"})[0] == 410
        assert page(platform, "GET", "/survey/" + "A" * 43)[0] == 404
        assert page(platform, "GET", "/survey/not-a-token")[0] == 404
    finally:
        db.client.close()

    # The figures: the call's answer and the link's, by item, department and doctor.
    def quality(query=""):
        status, body = platform.http(
            "GET", f"/api/v1/analytics/quality?{span}{query}", token=manager
        )
        assert status == 200, body
        return body

    figures = wait_until(
        lambda: (lambda b: b if b["answers"] == 2 else None)(quality()),
        timeout=30,
        message="two survey answers counted",
    )
    assert figures["overall"] == {"count": 5, "average": 3.6}
    assert figures["items"] == [
        {"item": "doctor", "count": 2, "average": 3.5},
        {"item": "nurse", "count": 1, "average": 4.0},
        {"item": "environment", "count": 1, "average": 5.0},
        {"item": "waiting", "count": 1, "average": 2.0},
    ]
    assert figures["by_channel"] == {"call": 1, "link": 1} and figures["low_answers"] == 2
    assert [(d["department"], d["answers"]) for d in figures["by_department"]] == [("心内科", 2)]
    assert [
        (d["doctor_id"], d["answers"], d["overall"]["average"]) for d in figures["by_doctor"]
    ] == [("DR-LIU", 2, 3.6)]
    assert quality("&department=%E9%AA%A8%E7%A7%91")["answers"] == 0  # 骨科
    status, monthly = platform.http(
        "GET", f"/api/v1/analytics/reports/monthly?month={today:%Y-%m}", token=manager
    )
    assert status == 200 and monthly["quality"]["answers"] == 2

    # A low item opened service recovery, like a low score: one complaint per task.
    recovered = wait_until(
        lambda: (lambda items: items if len(items) == 2 else None)(
            platform.http("GET", "/api/v1/complaints?status=open", token=manager)[1]["items"]
        ),
        timeout=30,
        message="two service-recovery complaints",
    )
    by_task = {c["followup_id"]: c for c in recovered}
    assert "waiting 2 分" in by_task[甲]["description"] and by_task[甲]["channel"] == "follow_up"
    assert "doctor 2 分" in by_task[tasks["丙"]["followup_id"]]["description"]

    # On the stream: SurveyAnswered with ids, department, doctor and scores; no free text.
    answered = stream_events(platform.amqp_uri, "SurveyAnswered", 2)
    assert sorted(e["data"]["channel"] for e in answered) == ["call", "link"]
    for event in answered:
        assert set(event["data"]) == {
            "followup_id",
            "kind",
            "department",
            "doctor_id",
            "due_at",
            "scores",
            "channel",
            "visit_date",
            "answered_at",
        }
        assert event["data"]["doctor_id"] == "DR-LIU" and event["patient_id"]

    # The public page is rate-limited per address (12 a minute here): a burst is refused.
    statuses = [page(platform, "GET", "/survey/" + "B" * 43)[0] for _ in range(14)]
    assert 429 in statuses and set(statuses) <= {404, 429}
