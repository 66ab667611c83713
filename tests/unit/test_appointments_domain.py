"""Appointment rules: slots and overlap, working hours, the state table, reminders, texts."""

import datetime
import zoneinfo

import pytest

from services.appointments import domain

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
HOURS = {
    "default": [{"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "12:00"}],
    "departments": {"急诊科": [{"days": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "23:59"}]},
    "doctors": {"D1": [{"days": [1], "start": "09:00", "end": "10:00"}]},
}


def at(day, hour, minute=0):
    return datetime.datetime(2026, 3, day, hour, minute, tzinfo=TZ)  # 2 March 2026 is a Monday


def overlap(a, b):
    return bool(set(domain.slot_units(*a)) & set(domain.slot_units(*b)))


@pytest.mark.parametrize(
    "a,b,overlapping",
    [
        ((at(2, 9), 15), (at(2, 9), 15), True),
        ((at(2, 9), 15), (at(2, 9, 15), 15), False),  # back to back
        ((at(2, 9), 15), (at(2, 9, 10), 15), True),
        ((at(2, 9), 30), (at(2, 9, 10), 5), True),  # inside
        ((at(2, 9, 7), 15), (at(2, 9, 20), 5), True),  # unaligned start: conservative
        ((at(2, 9), 15), (at(2, 10), 15), False),
    ],
)
def test_overlap_by_slot_units(a, b, overlapping):
    assert overlap(a, b) is overlapping


@pytest.mark.parametrize(
    "starts,minutes,department,doctor,ok",
    [
        (at(2, 9), 15, "心内科", None, True),
        (at(2, 11, 50), 15, "心内科", None, False),  # runs past noon
        (at(2, 7, 59), 15, "心内科", None, False),
        (at(1, 9), 15, "心内科", None, False),  # Sunday
        (at(1, 3), 15, "急诊科", None, True),  # department hours
        (at(3, 9, 30), 15, "心内科", "D1", True),  # doctor hours: Tuesday 9-10
        (at(2, 9, 30), 15, "心内科", "D1", False),  # not on Monday
    ],
)
def test_working_hours(starts, minutes, department, doctor, ok):
    assert (
        domain.within_hours(starts, minutes, TZ, domain.hours_for(HOURS, department, doctor)) is ok
    )


def test_a_booking_in_the_past_or_outside_hours_is_refused():
    with pytest.raises(domain.Refused):
        domain.check_booking(at(2, 9), 15, at(2, 10), TZ, HOURS, "心内科", None)
    with pytest.raises(domain.Refused, match="working hours"):
        domain.check_booking(at(2, 13), 15, at(2, 8), TZ, HOURS, "心内科", None)
    domain.check_booking(at(2, 9), 15, at(2, 8), TZ, HOURS, "心内科", None)


@pytest.mark.parametrize(
    "action,status,target",
    [
        ("confirm", "booked", "confirmed"),
        ("confirm", "confirmed", None),
        ("cancel", "booked", "cancelled"),
        ("cancel", "confirmed", "cancelled"),
        ("cancel", "checked_in", None),
        ("check_in", "booked", "checked_in"),
        ("check_in", "confirmed", "checked_in"),
        ("check_in", "cancelled", None),
        ("no_show", "confirmed", "no_show"),
        ("no_show", "checked_in", None),
        ("attend", "checked_in", "attended"),
        ("attend", "no_show", "attended"),
        ("attend", "cancelled", None),
        ("reschedule", "booked", "booked"),
        ("reschedule", "attended", None),
    ],
)
def test_state_table(action, status, target):
    if target is None:
        with pytest.raises(domain.IllegalTransition):
            domain.next_status(action, status)
    else:
        assert domain.next_status(action, status) == target


def test_reminder_and_no_show_times():
    assert domain.reminder_due(at(3, 9), 24) == at(2, 9)
    assert domain.no_show_due(at(3, 9)) == at(3, 9, 30)


def test_texts_in_chinese_by_default_and_english():
    zh = domain.render({}, "sms", "zh", name="王芳", time="03-03 09:00", department="心内科")
    assert "王芳" in zh and "心内科" in zh and "03-03 09:00" in zh
    en = domain.render(
        {}, "call", "en", name="Wang Fang", time="03-03 09:00", department="Cardiology"
    )
    assert en.startswith("Hello") and "Cardiology" in en
    custom = domain.render({"sms": {"zh": "提醒$name", "en": "Hi $name"}}, "sms", "en", name="Li")
    assert custom == "Hi Li"


# -- v1.1: the mirror of the hospital's scheduling system -------------------------------------
def scheduled(starts, department="心内科", doctor_id="D1", minutes=15):
    return domain.scheduled_values(
        {
            "starts_at": starts.isoformat(),
            "department": department,
            "doctor_id": doctor_id,
            "duration_minutes": minutes,
        }
    )


def mirrored(status="booked", order=(100.0, "e1"), **values):
    base = scheduled(at(3, 9))
    base.update(values)
    return {"status": status, "mirror_ts": order[0], "mirror_event_id": order[1], **base}


def test_the_mirror_id_is_deterministic_per_source_and_external_id():
    assert domain.mirror_appointment_id("his", "A-1") == domain.mirror_appointment_id("his", "A-1")
    assert domain.mirror_appointment_id("his", "A-1") != domain.mirror_appointment_id("his", "A-2")
    assert domain.mirror_appointment_id("his", "A-1") != domain.mirror_appointment_id("his2", "A-1")


def test_order_is_occurred_at_then_event_id():
    early = domain.order_of({"occurred_at": at(2, 9).isoformat(), "event_id": "z"})
    late = domain.order_of({"occurred_at": at(2, 10).isoformat(), "event_id": "a"})
    same_instant = domain.order_of({"occurred_at": at(2, 10).isoformat(), "event_id": "b"})
    assert early < late < same_instant


def test_scheduled_values_default_the_duration_and_compare_instants():
    values = domain.scheduled_values(
        {"starts_at": "2026-03-03T01:00:00+00:00", "department": "眼科"}, 20
    )
    assert values["duration_minutes"] == 20 and values["doctor_id"] is None
    assert values["starts_ts"] == at(3, 9).timestamp()  # the same instant in another zone


@pytest.mark.parametrize(
    "current,withdrawn,order,values,expected",
    [
        (None, False, (1.0, "e"), scheduled(at(3, 9)), ("create", ())),
        (None, True, (1.0, "e"), scheduled(at(3, 9)), ("withdrawn", ())),  # withdrawn first
        (mirrored(), True, (200.0, "e2"), scheduled(at(3, 10)), ("withdrawn", ())),
        (mirrored(), False, (100.0, "e1"), scheduled(at(3, 10)), ("stale", ())),  # a duplicate
        (mirrored(), False, (50.0, "e0"), scheduled(at(3, 10)), ("stale", ())),  # an older one
        (
            mirrored(),
            False,
            (100.0, "e0"),
            scheduled(at(3, 10)),
            ("stale", ()),
        ),  # same instant, lower id
        (mirrored(), False, (200.0, "e2"), scheduled(at(3, 9)), ("same", ())),
        (mirrored(), False, (200.0, "e2"), scheduled(at(3, 10)), ("update", ("starts_ts",))),
        (
            mirrored(),
            False,
            (200.0, "e2"),
            scheduled(at(3, 9), "眼科", None, 30),
            ("update", ("department", "doctor_id", "duration_minutes")),
        ),
        (
            mirrored("confirmed"),
            False,
            (200.0, "e2"),
            scheduled(at(3, 10)),
            ("update", ("starts_ts",)),
        ),
        (mirrored("no_show"), False, (200.0, "e2"), scheduled(at(3, 10)), ("closed", ())),
        (mirrored("attended"), False, (200.0, "e2"), scheduled(at(3, 10)), ("closed", ())),
    ],
)
def test_plan_scheduled(current, withdrawn, order, values, expected):
    assert domain.plan_scheduled(current, withdrawn, order, values) == expected


def test_any_arrival_order_of_three_schedulings_ends_with_the_newest():
    """Apply the plan as the service does, for every order of three events: A, B, A again."""
    import itertools

    events = [
        ((1.0, "e1"), scheduled(at(3, 9))),
        ((2.0, "e2"), scheduled(at(3, 10))),
        ((3.0, "e3"), scheduled(at(3, 9))),
    ]
    for arrival in itertools.permutations(events):
        current = None
        for order, values in arrival:
            action, _ = domain.plan_scheduled(current, False, order, values)
            if action in ("create", "update", "same"):
                current = {
                    **(current or {}),
                    **values,
                    "status": "booked",
                    "mirror_ts": order[0],
                    "mirror_event_id": order[1],
                }
        assert current["starts_ts"] == at(3, 9).timestamp() and current["mirror_event_id"] == "e3"


@pytest.mark.parametrize(
    "status,marks,action",
    [
        ("booked", {"withdrawn": True}, "cancel"),
        ("confirmed", {"withdrawn": True, "missed": True}, "cancel"),  # a withdrawal wins
        ("booked", {"missed": True}, "no_show"),
        ("no_show", {"missed": True}, None),  # once
        ("cancelled", {"withdrawn": True}, None),
        ("checked_in", {"missed": True}, None),  # the visit is the stronger fact
        ("attended", {"withdrawn": True}, None),
        ("booked", {}, None),
    ],
)
def test_mark_action(status, marks, action):
    assert domain.mark_action(status, marks) == action


def test_staff_may_not_move_what_the_hospital_system_owns():
    his = {"status": "booked", "external_id": "A-1", "source": "his"}
    for action in ("reschedule", "cancel"):
        with pytest.raises(domain.IllegalTransition, match="scheduling system"):
            domain.staff_may(action, his)
    domain.staff_may("confirm", his)
    domain.staff_may("check_in", his)
    domain.staff_may("cancel", {"status": "booked"})


# -- v1.1: corrections and merges --------------------------------------------------------------
@pytest.mark.parametrize(
    "before,after",
    [
        ("booked", "booked"),
        ("confirmed", "confirmed"),
        ("checked_in", "checked_in"),
        ("no_show", "no_show"),
        (None, "booked"),
    ],
)
def test_a_cancelled_visit_gives_back_the_previous_status(before, after):
    assert (
        domain.status_before_attendance({"status": "attended", "status_before_attended": before})
        == after
    )


def test_local_day_is_the_hospitals():
    assert domain.local_day("2026-03-02T17:00:00+00:00", TZ) == "2026-03-03"


def test_aliases_resolve_transitively_and_stop_at_a_cycle():
    aliases = {"R": "S", "S": "T"}
    assert domain.resolve_alias("R", aliases.get) == "T"
    assert domain.resolve_alias("T", aliases.get) == "T"
    assert domain.resolve_alias("X", aliases.get) == "X"
    assert domain.resolve_alias("A", {"A": "B", "B": "A"}.get) == "B"


def test_a_merge_must_name_two_patients_and_not_close_a_cycle():
    aliases = {"R": "S"}
    assert domain.merge_is_usable("S", "T", aliases.get)
    assert not domain.merge_is_usable("S", "R", aliases.get)  # S -> R while R -> S
    assert not domain.merge_is_usable("R", "R", aliases.get)
    assert not domain.merge_is_usable(None, "S", aliases.get)
