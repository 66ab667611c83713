"""Complaint rules: deadline arithmetic, the transition table, breaches, the weekly report."""

import datetime
import zoneinfo

import pytest

from services.complaints import domain

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
T0 = datetime.datetime(2026, 3, 2, 9, 0, tzinfo=TZ)  # a Monday


@pytest.mark.parametrize(
    "severity,ack,resolve",
    [
        ("low", T0 + datetime.timedelta(hours=24), T0 + datetime.timedelta(hours=48)),
        ("medium", T0 + datetime.timedelta(hours=24), T0 + datetime.timedelta(hours=48)),
        ("high", T0 + datetime.timedelta(hours=2), T0 + datetime.timedelta(hours=24)),
    ],
)
def test_deadlines_count_from_received_at(severity, ack, resolve):
    assert domain.deadlines(T0, severity) == (ack, resolve)


def test_deadlines_from_configuration():
    assert domain.deadlines(T0, "high", {"high": (1, 8)})[1] == T0 + datetime.timedelta(hours=8)


@pytest.mark.parametrize(
    "action,status,acked,expected",
    [
        ("acknowledge", "open", False, "acknowledged"),
        ("acknowledge", "escalated", False, "escalated"),
        ("acknowledge", "escalated", True, None),
        ("acknowledge", "acknowledged", True, None),
        ("acknowledge", "resolved", True, None),
        ("resolve", "open", False, None),
        ("resolve", "acknowledged", True, "resolved"),
        ("resolve", "escalated", False, "resolved"),
        ("resolve", "resolved", True, None),
        ("escalate", "open", False, "escalated"),
        ("escalate", "acknowledged", True, "escalated"),
        ("escalate", "escalated", False, None),
        ("escalate", "resolved", True, None),
    ],
)
def test_transition_table(action, status, acked, expected):
    complaint = {"status": status, "acknowledged_ts": 1.0 if acked else 0.0}
    if expected is None:
        with pytest.raises(domain.IllegalTransition):
            domain.next_status(action, complaint)
    else:
        assert domain.next_status(action, complaint) == expected


def complaint(received, severity="medium", status="open", acked=None, resolved=None, **extra):
    ack_due, resolve_due = domain.deadlines(received, severity)
    return {
        "_id": extra.pop("_id", "c"),
        "status": status,
        "severity": severity,
        "category": "attitude",
        "department": extra.pop("department", "心内科"),
        "received_ts": received.timestamp(),
        "ack_due_ts": ack_due.timestamp(),
        "resolve_due_ts": resolve_due.timestamp(),
        "resolve_due_at": resolve_due.isoformat(),
        "acknowledged_ts": acked.timestamp() if acked else 0.0,
        "resolved_ts": resolved.timestamp() if resolved else 0.0,
        "ack_breach": "no",
        "resolve_breach": "no",
        **extra,
    }


def test_breaches_are_found_once_per_deadline():
    three_days_ago = T0 - datetime.timedelta(days=3)
    fresh = complaint(three_days_ago)
    assert domain.breached_deadlines(fresh, T0.timestamp()) == ["acknowledge", "resolve"]
    fresh["ack_breach"] = "breached"
    assert domain.breached_deadlines(fresh, T0.timestamp()) == ["resolve"]
    fresh["resolve_breach"] = "breached"
    assert domain.breached_deadlines(fresh, T0.timestamp()) == []
    acknowledged_in_time = complaint(
        three_days_ago, acked=three_days_ago + datetime.timedelta(hours=1)
    )
    assert domain.breached_deadlines(acknowledged_in_time, T0.timestamp()) == ["resolve"]
    assert (
        domain.breached_deadlines(complaint(three_days_ago, status="resolved"), T0.timestamp())
        == []
    )
    assert domain.breached_deadlines(complaint(T0), T0.timestamp() + 60) == []


def test_weekly_report_figures_on_hand_made_data():
    h = datetime.timedelta(hours=1)
    complaints = [
        complaint(
            T0, _id="a", acked=T0 + 2 * h, resolved=T0 + 30 * h, status="resolved"
        ),  # both met
        complaint(T0, _id="b", acked=T0 + 30 * h, status="acknowledged"),  # ack late
        complaint(
            T0, _id="c", severity="high", acked=T0 + 1 * h, resolved=T0 + 26 * h, status="resolved"
        ),  # resolve late
        complaint(T0, _id="d", department="骨科", status="escalated", escalated_ts=1.0),
        complaint(T0 + datetime.timedelta(days=7), _id="next-week"),
    ]
    report = domain.weekly_report(complaints, T0.date(), TZ, T0 + datetime.timedelta(days=5))
    assert report["total_received"] == 4 and report["total_open"] == 2
    cardiology, orthopaedics = report["rows"]
    assert (
        cardiology["department"],
        cardiology["received"],
        cardiology["acknowledged"],
        cardiology["resolved"],
    ) == ("心内科", 3, 3, 2)
    assert cardiology["avg_ack_hours"] == 11.0 and cardiology["avg_resolve_hours"] == 28.0
    assert (cardiology["ack_sla_met"], cardiology["resolve_sla_met"]) == (2, 1)
    assert cardiology["ack_sla_rate"] == round(2 / 3, 4)
    assert [i["complaint_id"] for i in cardiology["open_items"]] == ["b"]
    assert orthopaedics["escalated"] == 1 and orthopaedics["avg_ack_hours"] is None
    csv_text = domain.report_csv(report)
    assert csv_text.splitlines()[0].startswith("category,department,received")
    assert len(csv_text.splitlines()) == 3


def test_service_recovery_severity():
    assert domain.severity_for_recovery(1) == "high"
    assert domain.severity_for_recovery(2) == "medium"
    assert domain.severity_for_recovery(None) == "medium"


# -- v1.1: merged patients ---------------------------------------------------------------------
def test_aliases_resolve_transitively_and_stop_at_a_cycle():
    aliases = {"R": "S", "S": "T"}
    assert domain.resolve_alias("R", aliases.get) == "T"
    assert domain.resolve_alias("S", aliases.get) == "T"
    assert domain.resolve_alias("T", aliases.get) == "T"
    assert domain.resolve_alias("A", {"A": "B", "B": "A"}.get) == "B"


def test_a_merge_must_name_two_patients_and_not_close_a_cycle():
    aliases = {"R": "S"}
    assert domain.merge_is_usable("R", "S", aliases.get)  # a duplicate is harmless
    assert domain.merge_is_usable("S", "T", aliases.get)  # a chain R -> S -> T
    assert not domain.merge_is_usable("S", "R", aliases.get)
    assert not domain.merge_is_usable("S", "S", aliases.get)
    assert not domain.merge_is_usable("", "S", aliases.get)
