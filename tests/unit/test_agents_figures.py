"""The agents' figures, their assessment and the quarterly report (docs/RULES.md § Agents),
with exact expected values."""

import csv
import io
import zoneinfo

import pytest

from services.analytics import agents, agents_report

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")


def call(event_id, agent, outcome, recorded, due, satisfaction=None, final=True):
    return {
        "event_id": event_id,
        "event_type": "FollowUpCompleted" if final else "FollowUpAttempted",
        "occurred_at": recorded,
        "patient_id": "P1",
        "data": {
            "followup_id": f"F-{event_id}",
            "kind": "post_visit_call",
            "department": "心内科",
            "due_at": due,
            "outcome": outcome,
            "agent": agent,
            "completed_by": agent,
            "attempts": 1,
            "satisfaction": satisfaction,
        },
    }


def resolved(event_id, actor, at, resolve_due):
    return {
        "event_id": event_id,
        "event_type": "ComplaintResolved",
        "occurred_at": at,
        "patient_id": "P1",
        "data": {
            "complaint_id": f"C-{event_id}",
            "actor": actor,
            "resolve_due_at": resolve_due,
            "received_at": "2026-10-01T08:00:00+08:00",
        },
    }


DUE = "2026-10-02T23:59:59+08:00"
EVENTS = [
    # li.na: reached (5) on time, an unreachable attempt late, declined on time, reached (3) late.
    call("a1", "li.na", "reached", "2026-10-02T10:00:00+08:00", DUE, 5),
    call("a2", "li.na", "unreachable", "2026-10-03T09:00:00+08:00", DUE, final=False),
    call("a3", "li.na", "declined", "2026-10-02T23:59:59+08:00", DUE),
    call("a4", "li.na", "reached", "2026-10-04T10:00:00+08:00", DUE, 3),
    # wang.wei: one reached call (4) on time.
    call(
        "b1", "wang.wei", "reached", "2026-10-01T16:00:00+00:00", DUE, 4
    ),  # 00:00 on 10-02 in Shanghai
    resolved("r1", "li.na", "2026-10-02T12:00:00+08:00", "2026-10-03T08:00:00+08:00"),  # in SLA
    resolved("r2", "li.na", "2026-10-05T12:00:00+08:00", "2026-10-03T08:00:00+08:00"),  # late
    resolved(
        "r3", "zhao.lei", "2026-10-02T12:00:00+08:00", "2026-10-02T12:00:00+08:00"
    ),  # on the dot
]
CONVERSIONS = [
    {"agent_id": "li.na", "consultations": 4, "conversions": 1, "conversion_rate": 0.25},
    {"agent_id": "unknown", "consultations": 7, "conversions": 2, "conversion_rate": 0.2857},
    {"agent_id": "sun.li", "consultations": 2, "conversions": 2, "conversion_rate": 1.0},
]


def work():
    return [w for w in (agents.work_of(e, TZ) for e in EVENTS) if w]


def test_work_records_carry_the_day_and_the_punctuality():
    records = {w["_id"]: w for w in work()}
    assert records["a1"] == {
        "_id": "a1",
        "kind": "call",
        "agent": "li.na",
        "outcome": "reached",
        "date": "2026-10-02",
        "day": 20261002,
        "followup_id": "F-a1",
        "on_time": True,
        "satisfaction": 5,
    }
    assert records["a2"]["on_time"] is False and records["a2"]["satisfaction"] is None
    assert records["a3"]["on_time"] is True  # recorded exactly at due_at
    assert records["b1"]["date"] == "2026-10-02"  # the hospital's day, not UTC's
    assert records["r1"] == {
        "_id": "r1",
        "kind": "resolution",
        "agent": "li.na",
        "date": "2026-10-02",
        "day": 20261002,
        "complaint_id": "C-r1",
        "in_sla": True,
    }
    assert records["r2"]["in_sla"] is False and records["r3"]["in_sla"] is True
    # Nobody's work: no agent, an unknown outcome, other types.
    assert agents.work_of(call("x", None, "reached", DUE, DUE), TZ) is None
    assert agents.work_of(call("y", "li.na", "maybe", DUE, DUE), TZ) is None
    assert (
        agents.work_of(
            {
                "event_id": "z",
                "event_type": "FollowUpScheduled",
                "occurred_at": DUE,
                "data": {"agent": "li.na"},
            },
            TZ,
        )
        is None
    )


def test_each_agents_line_and_the_team():
    result = agents.figures(work(), CONVERSIONS)
    assert [item["agent"] for item in result["items"]] == [
        "li.na",
        "sun.li",
        "wang.wei",
        "zhao.lei",
    ]
    lines = {item["agent"]: item for item in result["items"]}
    assert lines["li.na"] == {
        "agent": "li.na",
        "calls": 4,
        "reached": 2,
        "unreachable": 1,
        "declined": 1,
        "reach_rate": 0.5,
        "on_time_rate": 0.5,
        "avg_satisfaction": 4.0,
        "complaints_resolved": 2,
        "complaints_resolved_in_sla_rate": 0.5,
        "consultations": 4,
        "conversions": 1,
    }
    assert lines["wang.wei"] == {
        "agent": "wang.wei",
        "calls": 1,
        "reached": 1,
        "unreachable": 0,
        "declined": 0,
        "reach_rate": 1.0,
        "on_time_rate": 1.0,
        "avg_satisfaction": 4.0,
        "complaints_resolved": 0,
        "complaints_resolved_in_sla_rate": None,
        "consultations": 0,
        "conversions": 0,
    }
    assert lines["zhao.lei"]["calls"] == 0 and lines["zhao.lei"]["reach_rate"] is None
    assert lines["zhao.lei"]["complaints_resolved_in_sla_rate"] == 1.0
    assert lines["sun.li"]["consultations"] == 2 and lines["sun.li"]["conversions"] == 2
    assert result["team"] == {
        "calls": 5,
        "reached": 3,
        "unreachable": 1,
        "declined": 1,
        "reach_rate": 0.6,
        "on_time_rate": 0.6,
        "avg_satisfaction": 4.0,
        "complaints_resolved": 3,
        "complaints_resolved_in_sla_rate": 0.6667,
        "consultations": 6,
        "conversions": 3,
    }  # a consultation without an agent is nobody's


def test_one_agent_sees_their_line_alone_even_without_work():
    mine = agents.figures(work(), CONVERSIONS, only="wang.wei")
    assert [item["agent"] for item in mine["items"]] == ["wang.wei"]
    idle = agents.figures(work(), CONVERSIONS, only="new.agent")
    assert idle["items"] == [
        {
            "agent": "new.agent",
            "calls": 0,
            "reached": 0,
            "unreachable": 0,
            "declined": 0,
            "reach_rate": None,
            "on_time_rate": None,
            "avg_satisfaction": None,
            "complaints_resolved": 0,
            "complaints_resolved_in_sla_rate": None,
            "consultations": 0,
            "conversions": 0,
        }
    ]


def test_targets_and_the_assessment():
    assert agents.targets_of({}) == agents.DEFAULT_TARGETS
    targets = agents.targets_of(
        {"reach_rate": 0.5, "avg_satisfaction": None, "conversion_rate": 0.3}
    )
    assert targets == {
        "reach_rate": 0.5,
        "on_time_rate": 0.95,
        "complaints_resolved_in_sla_rate": 0.95,
        "followup_completion_rate": 0.95,
        "conversion_rate": 0.3,
    }
    result = agents.with_assessment(
        agents.figures(work(), CONVERSIONS), targets, {"followup_completion_rate": 0.96}
    )
    lines = {item["agent"]: item for item in result["items"]}
    assert lines["li.na"]["assessment"] == {
        "reach_rate": "met",
        "on_time_rate": "missed",
        "complaints_resolved_in_sla_rate": "missed",
        "conversion_rate": "missed",
    }
    assert lines["wang.wei"]["assessment"] == {
        "reach_rate": "met",
        "on_time_rate": "met",
        "complaints_resolved_in_sla_rate": None,
        "conversion_rate": None,
    }
    assert result["team"]["followup_completion_rate"] == 0.96
    assert result["team"]["assessment"] == {
        "reach_rate": "met",
        "on_time_rate": "missed",
        "complaints_resolved_in_sla_rate": "missed",
        "followup_completion_rate": "met",
        "conversion_rate": "met",
    }
    assert result["targets"] == targets


def test_quarters():
    assert agents_report.parse_quarter("2026-Q4") == (
        agents_report.datetime.date(2026, 10, 1),
        agents_report.datetime.date(2026, 12, 31),
    )
    assert agents_report.parse_quarter("2026-Q1")[1].isoformat() == "2026-03-31"
    assert agents_report.previous_quarter("2026-Q1") == "2025-Q4"
    assert agents_report.previous_quarter("2026-Q4") == "2026-Q3"
    assert agents_report.previous_quarter("0702-Q1") == "0701-Q4"  # a quarter it can parse
    assert (
        agents_report.parse_quarter(agents_report.previous_quarter("0702-Q1"))[0].isoformat()
        == "0701-10-01"
    )
    for bad in ("2026-Q5", "2026-4", "Q4-2026", None, "0000-Q1", "9999-Q4"):
        with pytest.raises(ValueError):
            agents_report.parse_quarter(bad)


def quarter_report():
    targets = agents.targets_of({})
    current = agents.with_assessment(
        agents.figures(work(), CONVERSIONS), targets, {"followup_completion_rate": 0.9}
    )
    earlier = [w for w in work() if w["agent"] == "li.na" and w["kind"] == "call"][:2]
    previous = agents.with_assessment(
        agents.figures(earlier), targets, {"followup_completion_rate": None}
    )
    return agents_report.build("2026-Q4", current, previous, targets)


def test_the_quarterly_report_sets_each_figure_beside_the_previous_quarter_and_its_target():
    report = quarter_report()
    assert (report["from"], report["to"]) == ("2026-10-01", "2026-12-31")
    assert report["previous"] == {"quarter": "2026-Q3", "from": "2026-07-01", "to": "2026-09-30"}
    people = {p["agent"]: p for p in report["agents"]}
    rows = {r["figure"]: r for r in people["li.na"]["figures"]}
    assert rows["calls"] == {
        "figure": "calls",
        "label_zh": "通话量",
        "label_en": "Calls",
        "kind": "count",
        "value": 4,
        "previous": 2,
        "change": 2,
        "target": None,
        "assessment": None,
    }
    assert rows["reach_rate"] == {
        "figure": "reach_rate",
        "label_zh": "接通率",
        "label_en": "Reach rate",
        "kind": "rate",
        "value": 0.5,
        "previous": 0.5,
        "change": 0.0,
        "target": 0.9,
        "assessment": "missed",
    }
    assert rows["conversion_rate"]["value"] == 0.25 and rows["conversion_rate"]["target"] is None
    assert (people["li.na"]["met"], people["li.na"]["missed"]) == (0, 4)
    # Absent the quarter before: counts 0, rates without a value.
    wang = {r["figure"]: r for r in people["wang.wei"]["figures"]}
    assert wang["calls"]["previous"] == 0 and wang["reach_rate"]["previous"] is None
    assert (people["wang.wei"]["met"], people["wang.wei"]["missed"]) == (
        2,
        1,
    )  # satisfaction 4.0 < 4.5
    team = {r["figure"]: r for r in report["team"]["figures"]}
    assert (
        team["followup_completion_rate"]["value"] == 0.9
        and team["followup_completion_rate"]["assessment"] == "missed"
    )
    assert team["calls"]["value"] == 5 and team["calls"]["previous"] == 2


def test_the_quarterly_report_as_csv_and_html():
    report = quarter_report()
    rows = list(csv.reader(io.StringIO(agents_report.to_csv(report))))
    assert rows[0] == [
        "section",
        "agent",
        "figure",
        "label",
        "quarter",
        "value",
        "previous_quarter",
        "change",
        "target",
        "assessment",
    ]
    assert [
        "team",
        "",
        "reach_rate",
        "接通率",
        "2026-Q4",
        "0.6",
        "0.5",
        "0.1",
        "0.9",
        "missed",
    ] in rows
    assert ["agent", "li.na", "calls", "通话量", "2026-Q4", "4", "2", "2", "", ""] in rows
    assert [
        "agent",
        "wang.wei",
        "complaints_resolved_in_sla_rate",
        "投诉按时解决率",
        "2026-Q4",
        "",
        "",
        "",
        "0.95",
        "",
    ] in rows
    assert len(rows) == 1 + len(agents_report.TEAM_FIGURES) + 4 * len(agents_report.FIGURES)
    page = agents_report.to_html(report)
    assert page.count("<svg") == len(agents_report.CHARTED)
    assert "<script" not in page and "2026-Q3" in page
    assert 'class="v missed">未达标 missed' in page and 'class="v met">达标 met' in page
    assert "<h3>li.na <small>" in page
    # How each figure is counted is in the report itself, not in a document the reader lacks.
    assert set(agents_report.DEFINITIONS) == {key for key, _, _, _ in agents_report.TEAM_FIGURES}
    assert "指标口径 How the figures are counted" in page and "docs/" not in page
    assert "<td>接通率 Reach rate</td><td>接通 / 通话量<br><small>reached / calls" in page
