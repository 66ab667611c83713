"""Appointment rules: slots and overlap, working hours, the state table, reminders, texts."""
import datetime
import zoneinfo

import pytest

from services.appointments import domain

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
HOURS = {"default": [{"days": [0, 1, 2, 3, 4], "start": "08:00", "end": "12:00"}],
         "departments": {"急诊科": [{"days": [0, 1, 2, 3, 4, 5, 6], "start": "00:00", "end": "23:59"}]},
         "doctors": {"D1": [{"days": [1], "start": "09:00", "end": "10:00"}]}}


def at(day, hour, minute=0):
    return datetime.datetime(2026, 3, day, hour, minute, tzinfo=TZ)  # 2 March 2026 is a Monday


def overlap(a, b):
    return bool(set(domain.slot_units(*a)) & set(domain.slot_units(*b)))


@pytest.mark.parametrize("a,b,overlapping", [
    ((at(2, 9), 15), (at(2, 9), 15), True),
    ((at(2, 9), 15), (at(2, 9, 15), 15), False),     # back to back
    ((at(2, 9), 15), (at(2, 9, 10), 15), True),
    ((at(2, 9), 30), (at(2, 9, 10), 5), True),       # inside
    ((at(2, 9, 7), 15), (at(2, 9, 20), 5), True),    # unaligned start: conservative
    ((at(2, 9), 15), (at(2, 10), 15), False),
])
def test_overlap_by_slot_units(a, b, overlapping):
    assert overlap(a, b) is overlapping


@pytest.mark.parametrize("starts,minutes,department,doctor,ok", [
    (at(2, 9), 15, "心内科", None, True),
    (at(2, 11, 50), 15, "心内科", None, False),      # runs past noon
    (at(2, 7, 59), 15, "心内科", None, False),
    (at(1, 9), 15, "心内科", None, False),           # Sunday
    (at(1, 3), 15, "急诊科", None, True),            # department hours
    (at(3, 9, 30), 15, "心内科", "D1", True),        # doctor hours: Tuesday 9-10
    (at(2, 9, 30), 15, "心内科", "D1", False),       # not on Monday
])
def test_working_hours(starts, minutes, department, doctor, ok):
    assert domain.within_hours(starts, minutes, TZ, domain.hours_for(HOURS, department, doctor)) is ok


def test_a_booking_in_the_past_or_outside_hours_is_refused():
    with pytest.raises(domain.Refused):
        domain.check_booking(at(2, 9), 15, at(2, 10), TZ, HOURS, "心内科", None)
    with pytest.raises(domain.Refused, match="working hours"):
        domain.check_booking(at(2, 13), 15, at(2, 8), TZ, HOURS, "心内科", None)
    domain.check_booking(at(2, 9), 15, at(2, 8), TZ, HOURS, "心内科", None)


@pytest.mark.parametrize("action,status,target", [
    ("confirm", "booked", "confirmed"), ("confirm", "confirmed", None), ("cancel", "booked", "cancelled"),
    ("cancel", "confirmed", "cancelled"), ("cancel", "checked_in", None), ("check_in", "booked", "checked_in"),
    ("check_in", "confirmed", "checked_in"), ("check_in", "cancelled", None), ("no_show", "confirmed", "no_show"),
    ("no_show", "checked_in", None), ("attend", "checked_in", "attended"), ("attend", "no_show", "attended"),
    ("attend", "cancelled", None), ("reschedule", "booked", "booked"), ("reschedule", "attended", None),
])
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
    en = domain.render({}, "call", "en", name="Wang Fang", time="03-03 09:00", department="Cardiology")
    assert en.startswith("Hello") and "Cardiology" in en
    custom = domain.render({"sms": {"zh": "提醒$name", "en": "Hi $name"}}, "sms", "en", name="Li")
    assert custom == "Hi Li"
