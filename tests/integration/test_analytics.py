"""Analytics on the real broker and store: a shuffled, duplicated week of inbound events
gives the figures of docs/RULES.md, computed here independently."""

import datetime
import random

import pytest

from tests import factories
from tests.support import wait_until

pytestmark = pytest.mark.integration

WORD_OF_MOUTH = {"friend_referral", "nearby", "passing_by"}


def week(rng):
    events = []
    phones = [f"134{i:08d}" for i in range(30)]
    for _ in range(120):
        mrn = f"AN{rng.randrange(30):03d}"
        event = factories.visit(
            mrn,
            day=rng.randint(2, 8),
            phone=phones[int(mrn[2:])],
            visit_type=rng.choice(["first", "return", "walk_in"]),
            department=rng.choice(["心内科", "骨科", "儿科"]),
        )
        event["data"]["source_channel"] = rng.choice(
            ["friend_referral", "nearby", "advertising", "online", None]
        )
        if event["data"]["source_channel"] is None:
            del event["data"]["source_channel"]
        events.append(event)
    for i in range(10):
        events.append(factories.admitted(f"AN{i:03d}", f"A{i}", day=3, phone=phones[i]))
        events.append(
            factories.discharged(f"AN{i:03d}", f"A{i}", day=rng.randint(4, 8), phone=phones[i])
        )
    for i in range(20):  # half of them phone from a number that visits later in the week
        phone = phones[i] if i % 2 else f"133{i:08d}"
        events.append(factories.consultation(phone, day=rng.randint(1, 5)))
    return events


def expected_figures(events):
    visits = [e for e in events if e["event_type"] == "PatientVisited"]
    first = [v for v in visits if v["data"]["visit_type"] == "first"]
    sourced = [v for v in first if v["data"].get("source_channel")]
    consultations = [e for e in events if e["event_type"] == "ConsultationLogged"]

    def when(value):
        return datetime.datetime.fromisoformat(value)

    conversions = 0
    for c in consultations:
        t = when(c["occurred_at"])
        digits = c["data"]["patient"]["phone"]
        conversions += any(
            v["data"]["patient"]["phone"] == digits
            and t <= when(v["data"]["visited_at"]) <= t + datetime.timedelta(days=30)
            for v in visits
        )
    sources = {}
    for v in sourced:
        sources[v["data"]["source_channel"]] = sources.get(v["data"]["source_channel"], 0) + 1
    return {
        "visits": len(visits),
        "first_visits": len(first),
        "return_visits": sum(v["data"]["visit_type"] == "return" for v in visits),
        "admissions": sum(e["event_type"] == "PatientAdmitted" for e in events),
        "discharges": sum(e["event_type"] == "PatientDischarged" for e in events),
        "consultations": len(consultations),
        "conversions": conversions,
        "conversion_rate": round(conversions / len(consultations), 4),
        "word_of_mouth_share": round(
            sum(v["data"]["source_channel"] in WORD_OF_MOUTH for v in sourced) / len(sourced), 4
        ),
        "by_source": [{"source_channel": k, "first_visits": n} for k, n in sorted(sources.items())],
    }


def test_a_shuffled_duplicated_week_gives_the_contract_figures(platform):
    platform.start_service("intake")
    platform.start_service("analytics")
    platform.start_gateway()
    token = platform.token()
    rng = random.Random(11)
    events = week(rng)
    messages = events + rng.sample(events, 25)
    rng.shuffle(messages)
    for event in messages:
        platform.publish(event)
    expected = expected_figures(events)

    def summary():
        status, body = platform.http(
            "GET", "/api/v1/analytics/summary?from=2026-03-01&to=2026-03-31", token=token
        )
        assert status == 200, body
        return body

    wait_until(
        lambda: (
            summary()["visits"] == expected["visits"]
            and summary()["consultations"] == expected["consultations"]
            and summary()["discharges"] == expected["discharges"]
        ),
        timeout=120,
        interval=1,
        message="every event counted",
    )
    wait_until(lambda: platform.idle("analytics.inbound"), message="analytics idle")
    body = summary()
    assert {k: body[k] for k in expected} == expected
    departments = {d["department"]: d for d in body["by_department"]}
    assert sum(d["visits"] for d in departments.values()) == expected["visits"]
    one_day = platform.http(
        "GET",
        "/api/v1/analytics/summary?from=2026-03-02&to=2026-03-02&department=%E9%AA%A8%E7%A7%91",
        token=token,
    )[1]
    assert one_day["visits"] == sum(
        1
        for e in events
        if e["event_type"] == "PatientVisited"
        and e["data"]["department"] == "骨科"
        and e["data"]["visited_at"][:10] == "2026-03-02"
    )
    compared = platform.http(
        "GET",
        "/api/v1/analytics/summary?from=2026-03-01&to=2026-03-31&compare=previous_year",
        token=token,
    )[1]
    assert compared["comparison"]["figures"]["visits"] == 0
    assert compared["comparison"]["change"]["visits"] == expected["visits"]
    series = platform.http(
        "GET",
        "/api/v1/analytics/series?from=2026-03-01&to=2026-03-31&granularity=week",
        token=token,
    )[1]
    assert sum(p["visits"] for p in series["points"]) == expected["visits"]
    assert (
        platform.http(
            "GET", "/api/v1/analytics/summary?from=2026-03-31&to=2026-03-01", token=token
        )[0]
        == 400
    )

    # The monthly leadership report: the same figures, as JSON, CSV and HTML, by route and command.
    status, monthly = platform.http(
        "GET", "/api/v1/analytics/reports/monthly?month=2026-03", token=token
    )
    assert status == 200, monthly
    figures = {row["figure"]: row for row in monthly["figures"]}
    assert figures["visits"]["value"] == expected["visits"]
    assert figures["conversion_rate"]["value"] == expected["conversion_rate"]
    assert (
        figures["visits"]["previous_year"] == 0
        and figures["visits"]["year_on_year"]["delta"] == expected["visits"]
    )
    assert [p["month"] for p in monthly["trend"]][-2:] == ["2026-02", "2026-03"]
    assert monthly["trend"][-1]["visits"] == expected["visits"]
    status, csv_text = platform.http(
        "GET", "/api/v1/analytics/reports/monthly?month=2026-03&format=csv", token=token
    )
    assert status == 200 and f"figures,visits,门诊人次,2026-03,{expected['visits']}," in csv_text
    assert (
        platform.http("GET", "/api/v1/analytics/reports/monthly?month=2026-13", token=token)[0]
        == 400
    )
    import subprocess
    import sys

    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "shared.cli",
            "report",
            "monthly",
            "--month",
            "2026-03",
            "--format",
            "html",
        ],
        env=platform.env("report"),
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("<!doctype html>") and done.stdout.count("<svg") >= 6
    assert f">{expected['visits']:,}<" in done.stdout

    # A visit that arrives days late changes its day's stored partial: the figures follow.
    late = factories.visit("AN-LATE", day=3, phone="13499999999")
    platform.publish(late)
    wait_until(
        lambda: summary()["visits"] == expected["visits"] + 1,
        timeout=60,
        message="the late visit counted",
    )
    assert summary()["first_visits"] == expected["first_visits"] + 1


def test_hcrm_stream_replays_every_event_and_resumes_from_an_offset(platform):
    import json as json_module

    platform.start_service("intake")
    platform.start_service("analytics")  # it appends the stream's (minimal) copies
    events = [factories.visit(f"ST{i}", day=2) for i in range(12)]
    for event in events + events[:3]:  # duplicates are recorded once
        platform.publish(event)
    wait_until(
        lambda: platform.queue_depth("hcrm.analytics") >= 12, message="12 events on the stream"
    )

    def stream(*args):
        return [
            json_module.loads(line)
            for line in platform.hcrm("stream", *args, name="stream").splitlines()
        ]

    # A service that died between the broker's confirm and its record publishes again: the
    # stream holds that event twice, and a fresh consumer still sees it once.
    recorded = stream("--offset", "first", "--limit", "1")[0]
    recorded.pop("_offset")
    from shared.messaging import publish as publish_canonical

    publish_canonical(platform.amqp_uri, "hcrm.stream", recorded["event_type"], recorded)
    wait_until(
        lambda: platform.queue_depth("hcrm.analytics") >= 13,
        message="the repeated publish on the stream",
    )
    replay = stream("--offset", "first")
    assert sorted(e["source_event_id"] for e in replay) == sorted(e["event_id"] for e in events)
    assert all(e["event_type"] == "PatientVisited" and e["patient_id"] for e in replay)
    resume_at = replay[5]["_offset"]
    resumed = stream("--offset", str(resume_at))
    # A resumed reader has not seen the first copy of the repeated event, so it prints it: across
    # runs a consumer keeps its own ids (the README says so).
    assert [e["event_id"] for e in resumed] == [e["event_id"] for e in replay[5:]] + [
        recorded["event_id"]
    ]
    assert stream("--offset", "first", "--limit", "4") == replay[:4]


def test_refreshed_partials_serve_the_whole_hospital_and_each_department(platform):
    """The refresh timer stores each changed day's partials (hospital and departments); a summary
    then reads them, and equals what the facts give."""
    from pymongo import MongoClient

    platform.start_service("intake")
    platform.start_service("analytics", ANALYTICS_FIGURES_REFRESH_INTERVAL_S="0.5")
    platform.start_gateway()
    token = platform.token()
    for i, department in enumerate(["心内科", "骨科", "骨科"]):
        platform.publish(
            factories.visit(f"RF{i}", day=4, department=department, phone=f"1350000000{i}")
        )
    db = MongoClient(
        platform.database_uri("analytics"), serverSelectionTimeoutMS=3000, socketTimeoutMS=30000
    ).get_default_database()
    wait_until(
        lambda: (
            db.day_changes.count_documents({"_id": "2026-03-04", "dirty": 0}) == 1
            and db.day_figures.count_documents({"date": "2026-03-04"}) >= 3
            and platform.queue_depth("analytics.inbound") == 0
        ),
        timeout=60,
        message="the day refreshed",
    )
    scopes = {doc["scope"] for doc in db.day_figures.find({"date": "2026-03-04"})}
    assert scopes >= {"*", "心内科", "骨科"}
    for department, visits in ((None, 3), ("骨科", 2), ("心内科", 1)):
        query = "from=2026-03-04&to=2026-03-04" + (
            f"&department={department}" if department else ""
        )
        status, body = platform.http(
            "GET",
            f"/api/v1/analytics/summary?{query}".replace("骨科", "%E9%AA%A8%E7%A7%91").replace(
                "心内科", "%E5%BF%83%E5%86%85%E7%A7%91"
            ),
            token=token,
        )
        assert status == 200 and body["visits"] == visits, (department, body)


def test_a_bad_message_in_a_batch_costs_the_others_nothing(platform):
    """Analytics writes what arrives together in bulk. Events queued while it was down arrive
    together with a broken one among them: every good event is counted in bulk, the broken
    one alone goes to the dead-letter queue with its reason, the not-JSON one too, and no
    batch fails for them."""
    import json as json_module

    from pymongo import MongoClient

    from shared.messaging import publish as publish_raw

    first = platform.start_service("analytics")
    first.stop()
    good = [factories.visit(f"BA{i}", day=5, phone=f"1360000{i:04d}") for i in range(60)]
    broken = {"event_type": "PatientVisited", "data": {}}  # no event_id: breaks the contract
    for i, event in enumerate(good):
        publish_raw(platform.amqp_uri, "", "analytics.inbound", event)
        if i == 30:
            publish_raw(platform.amqp_uri, "", "analytics.inbound", broken)
            publish_raw(platform.amqp_uri, "", "analytics.inbound", b"{not json")
    assert platform.queue_depth("analytics.inbound") == 62
    process = platform.start_service("analytics")
    db = MongoClient(
        platform.database_uri("analytics"), serverSelectionTimeoutMS=3000, socketTimeoutMS=30000
    ).get_default_database()
    wait_until(
        lambda: (
            db.facts.count_documents({"type": "PatientVisited"}) == 60
            and platform.queue_depth("analytics.inbound") == 0
            and platform.queue_depth("analytics.dlq") == 2
        ),
        timeout=60,
        message="60 counted, 2 dead-lettered",
    )
    output = process.output()
    assert '"batch": ' in output  # the good events were written in bulk
    # The broken one was refused as it arrived (the consumer's check): no batch failed for it.
    assert "a batch failed" not in output
    dead = platform.drain("analytics.dlq")
    reasons = sorted(headers["x-hcrm-reason"] for _, headers in dead)
    assert "event_id" in reasons[0] or "event_id" in reasons[1], reasons
    assert any("Not valid JSON" in reason for reason in reasons), reasons
    assert {
        json_module.loads(body).get("event_type") for body, _ in dead if body.startswith(b'{"')
    } == {"PatientVisited"}
    assert sorted(f["_id"] for f in db.facts.find({"type": "PatientVisited"})) == sorted(
        e["event_id"] for e in good
    )
