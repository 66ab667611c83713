"""Follow-up rules (PROTOCOLS.md § Follow-ups) as tables: due dates, gating, dedupe."""
import datetime
import itertools
import zoneinfo

import holidays
import pytest

from services.followup import domain

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
CN = holidays.country_holidays("CN")


def is_holiday(day):
    return day in CN


def local(y, m, d, h=10, mi=0):
    return datetime.datetime(y, m, d, h, mi, tzinfo=TZ)


def eod(y, m, d):
    return datetime.datetime(y, m, d, 23, 59, 59, tzinfo=TZ)


@pytest.mark.parametrize("kind,anchor,expected", [
    ("post_visit_call", local(2026, 3, 2), eod(2026, 3, 3)),
    ("post_visit_call", local(2026, 3, 31, 23, 50), eod(2026, 4, 1)),          # month end, near midnight
    ("post_visit_call", local(2026, 12, 31, 20), eod(2027, 1, 1)),            # year end
    # 23:30 UTC on 2 March is already 3 March in Shanghai: the next day is the 4th.
    ("post_visit_call", datetime.datetime(2026, 3, 2, 23, 30, tzinfo=datetime.timezone.utc), eod(2026, 3, 4)),
    ("post_discharge_call", local(2026, 3, 6, 15), eod(2026, 3, 10)),          # Friday afternoon -> Tuesday
    ("post_discharge_call", local(2026, 3, 2), eod(2026, 3, 4)),               # Monday -> Wednesday
    ("post_discharge_call", local(2026, 9, 30, 16), eod(2026, 10, 9)),         # National Day week
    ("post_discharge_call", local(2026, 2, 13, 12), eod(2026, 2, 25)),         # Spring Festival
    ("recovery_check", local(2026, 3, 6, 15), local(2026, 3, 13, 15)),
    ("return_visit_reminder", local(2026, 3, 6, 15), local(2026, 4, 5, 15)),
    ("prospect_call", local(2026, 3, 2, 23, 59), eod(2026, 3, 3)),
    ("no_show_call", local(2026, 3, 2, 9), eod(2026, 3, 3)),
])
def test_due_dates(kind, anchor, expected):
    assert domain.due_at(domain.DEFAULT_RULES[kind], anchor, TZ, is_holiday) == expected


def event(kind, data, when, event_id, patient=None):
    data = dict(data)
    data.setdefault("patient", patient if patient is not None else {"mrn": "M1", "name": "王芳", "phone": "13800138000"})
    return {"event_id": event_id, "event_type": kind, "occurred_at": when.isoformat(), "data": data}


def visit(day, hour=10, vid=None, **patient):
    person = {"mrn": "M1", "name": "王芳", "phone": "13800138000", **patient}
    return event("PatientVisited", {"visit_id": vid or f"V{day}{hour}", "department": "心内科",
                                    "visit_type": "first", "visited_at": local(2026, 3, day, hour).isoformat()},
                 local(2026, 3, day, hour), f"e-v{day}-{hour}-{vid}", person)


def discharge(day, disposition="home", admission="A1"):
    return event("PatientDischarged", {"admission_id": admission, "department": "骨科",
                                       "discharged_at": local(2026, 3, day, 15).isoformat(),
                                       "disposition": disposition}, local(2026, 3, day, 15), f"e-d{day}-{disposition}")


def kinds(planned):
    return sorted(task.kind for task in planned.values())


def test_each_event_type_creates_its_kinds():
    consult = event("ConsultationLogged", {"consultation_id": "C1", "channel": "phone"}, local(2026, 3, 1),
                    "e-c", {"name": "赵敏", "phone": "13900001111"})
    no_show = event("AppointmentNoShow", {"appointment_id": "AP1", "department": "眼科",
                                          "starts_at": local(2026, 3, 4).isoformat()}, local(2026, 3, 4, 11), "e-n")
    planned = domain.plan("P1", [visit(2), discharge(6), consult, no_show], TZ, is_holiday)
    assert kinds(planned) == sorted(["post_visit_call", "post_discharge_call", "recovery_check",
                                     "return_visit_reminder", "prospect_call", "no_show_call"])


def test_two_visits_the_same_day_give_one_call_and_duplicates_change_nothing():
    events = [visit(2, 9), visit(2, 15), visit(2, 15), visit(3, 9)]
    planned = domain.plan("P1", events, TZ, is_holiday)
    assert kinds(planned) == ["post_visit_call", "post_visit_call"]
    for order in itertools.permutations(events):
        assert domain.plan("P1", list(order), TZ, is_holiday) == planned


def test_no_consent_no_phone_or_deceased_means_no_task():
    assert domain.plan("P1", [visit(2, contact_consent=False)], TZ, is_holiday) == {}
    assert domain.plan("P1", [visit(2, phone=None) | {"data": {**visit(2)["data"], "patient": {"mrn": "M1", "name": "x"}}}],
                       TZ, is_holiday) == {}
    assert domain.plan("P1", [visit(2), discharge(6, "deceased")], TZ, is_holiday) == {}


def test_consent_switched_off_later_wins_whatever_the_arrival_order():
    withdrawn = visit(5, contact_consent=False)
    for events in ([visit(2), withdrawn], [withdrawn, visit(2)]):
        assert domain.plan("P1", events, TZ, is_holiday) == {}
        assert domain.contact_of(events).why_not == "no_consent"
    # consent given again later: calls are allowed again
    assert kinds(domain.plan("P1", [visit(2), withdrawn, visit(7, contact_consent=True)], TZ, is_holiday)) == [
        "post_visit_call"] * 3


def test_a_discharge_before_its_admission_still_plans_the_discharge_calls():
    admission = event("PatientAdmitted", {"admission_id": "A1", "department": "骨科",
                                          "admitted_at": local(2026, 3, 1).isoformat()}, local(2026, 3, 1), "e-a")
    assert kinds(domain.plan("P1", [discharge(6), admission], TZ, is_holiday)) == [
        "post_discharge_call", "recovery_check", "return_visit_reminder"]


def test_department_overrides_and_disabled_kinds():
    departments = {"骨科": {"recovery_check": domain.Rule(14, end_of_day=False),
                           "return_visit_reminder": domain.Rule(30, enabled=False)}}
    planned = domain.plan("P1", [discharge(6)], TZ, is_holiday, department_rules=departments)
    by_kind = {task.kind: task for task in planned.values()}
    assert by_kind["recovery_check"].due_at == local(2026, 3, 20, 15)
    assert "return_visit_reminder" not in by_kind


def test_unreachable_is_retried_next_day_until_the_attempts_run_out():
    now = local(2026, 3, 3, 22)
    assert domain.completion({"attempts": 0}, "unreachable", now, 3, TZ) == ("retry", eod(2026, 3, 4))
    assert domain.completion({"attempts": 2}, "unreachable", now, 3, TZ) == ("done", None)
    assert domain.completion({"attempts": 0}, "reached", now, 3, TZ) == ("done", None)


@pytest.mark.parametrize("satisfaction,complaint,recovery", [
    (1, None, True), (2, "", True), (3, None, False), (None, "wait too long", True), (5, "  ", False)])
def test_service_recovery(satisfaction, complaint, recovery):
    assert domain.needs_recovery(satisfaction, complaint) is recovery


def test_overdue():
    assert domain.is_overdue("pending", 100.0, 101.0)
    assert not domain.is_overdue("done", 100.0, 101.0)
    assert not domain.is_overdue("pending", 100.0, 99.0)
