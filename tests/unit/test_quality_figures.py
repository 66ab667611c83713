"""Service-quality figures (docs/RULES.md § Service quality) and the monthly report's quality
section, with exact expected values."""

import csv
import io
import zoneinfo

from services.analytics import quality, report

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")


def answered(
    event_id,
    scores,
    department="心内科",
    doctor_id="DR-LIU",
    channel="call",
    at="2026-10-02T10:00:00+08:00",
):
    return {
        "event_id": event_id,
        "event_type": "SurveyAnswered",
        "occurred_at": at,
        "patient_id": "P1",
        "data": {
            "followup_id": f"F-{event_id}",
            "kind": "post_visit_call",
            "department": department,
            "doctor_id": doctor_id,
            "scores": scores,
            "channel": channel,
            "visit_date": "2026-10-01",
        },
    }


EVENTS = [
    answered("s1", {"doctor": 5, "nurse": 4, "waiting": 2}),
    answered("s2", {"doctor": 4, "environment": 5}, channel="link"),
    answered(
        "s3",
        {"doctor": 3, "nurse": 5, "process": 4, "parking": 1},
        department="骨科",
        doctor_id="DR-WU",
    ),
    answered(
        "s4", {"waiting": 4}, department="普外科", doctor_id=None, at="2026-10-01T16:30:00+00:00"
    ),
]


def answers():
    return [a for a in (quality.answer_of(e, TZ) for e in EVENTS) if a]


def test_an_answer_record():
    record = answers()[0]
    assert record == {
        "_id": "s1",
        "followup_id": "F-s1",
        "date": "2026-10-02",
        "day": 20261002,
        "department": "心内科",
        "doctor_id": "DR-LIU",
        "kind": "post_visit_call",
        "channel": "call",
        "scores": {"doctor": 5, "nurse": 4, "waiting": 2},
    }
    assert answers()[3]["date"] == "2026-10-02"  # 00:30 in Shanghai
    assert (
        quality.answer_of(
            {
                "event_id": "x",
                "event_type": "SurveyAnswered",
                "occurred_at": "2026-10-02T10:00:00+08:00",
                "data": {"scores": {"doctor": 9, "nurse": True}},
            },
            TZ,
        )
        is None
    )
    assert (
        quality.answer_of({"event_id": "y", "event_type": "FollowUpCompleted", "data": {}}, TZ)
        is None
    )


def test_counts_and_means_per_item_overall_per_department_and_per_doctor():
    figures = quality.figures(answers())
    assert figures["answers"] == 4
    # Every item score: 5+4+2 + 4+5 + 3+5+4+1 + 4 = 37 over 10.
    assert figures["overall"] == {"count": 10, "average": 3.7}
    assert figures["items"] == [
        {"item": "doctor", "count": 3, "average": 4.0},
        {"item": "nurse", "count": 2, "average": 4.5},
        {"item": "environment", "count": 1, "average": 5.0},
        {"item": "waiting", "count": 2, "average": 3.0},
        {"item": "process", "count": 1, "average": 4.0},
        {"item": "parking", "count": 1, "average": 1.0},
    ]
    assert figures["low_answers"] == 2  # s1 (waiting 2), s3 (parking 1)
    assert figures["by_channel"] == {"call": 3, "link": 1}
    assert [d["department"] for d in figures["by_department"]] == ["心内科", "普外科", "骨科"]
    cardiology = figures["by_department"][0]
    assert cardiology == {
        "department": "心内科",
        "answers": 2,
        "overall": {"count": 5, "average": 4.0},
        "items": [
            {"item": "doctor", "count": 2, "average": 4.5},
            {"item": "nurse", "count": 1, "average": 4.0},
            {"item": "environment", "count": 1, "average": 5.0},
            {"item": "waiting", "count": 1, "average": 2.0},
        ],
    }
    # A discharge's answer names no doctor: it counts for its department only.
    assert [d["doctor_id"] for d in figures["by_doctor"]] == ["DR-LIU", "DR-WU"]
    assert figures["by_doctor"][1]["overall"] == {"count": 4, "average": 3.25}


def test_no_answers():
    assert quality.figures([]) == {
        "answers": 0,
        "overall": {"count": 0, "average": None},
        "items": [],
        "low_answers": 0,
        "by_channel": {"call": 0, "link": 0},
        "by_department": [],
        "by_doctor": [],
    }


def test_the_monthly_report_has_a_quality_section():
    import datetime

    first = datetime.date(2026, 10, 1)
    empty = {"by_department": [], "by_source": [], "top_complaint_categories": []}
    built = report.build(first, None, empty, {}, {}, [(first, {})], quality.figures(answers()))
    assert built["quality"]["overall"] == {"count": 10, "average": 3.7}
    rows = list(csv.reader(io.StringIO(report.to_csv(built))))
    assert ["quality:all", "overall", "average", "2026-10", "3.7", "", "", "", ""] in rows
    assert ["quality:department:骨科", "parking", "count", "2026-10", "1", "", "", "", ""] in rows
    assert ["quality:doctor:DR-WU", "doctor", "average", "2026-10", "3.0", "", "", "", ""] in rows
    page = report.to_html(built)
    assert "服务质量 Service quality" in page and "答卷 4 份" in page and "3.70" in page
    assert "科室平均分" in page and "<script" not in page
    assert "服务质量" not in report.to_html(report.build(first, None, empty, {}, {}, [(first, {})]))
