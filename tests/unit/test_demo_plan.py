"""`make demo`'s date plan (shared.simulate.demo_plan): a hospital's last months, dated so that
today's worklist, this month, the comparison with last month and the report have figures."""

import datetime
import random
import zoneinfo

import pytest

from services.followup import domain as followup
from shared.simulate import (
    KINDS,
    TODAY_EVENTS,
    YESTERDAY_VISITS,
    Hospital,
    demo_plan,
    history_start,
)

SHANGHAI = zoneinfo.ZoneInfo("Asia/Shanghai")


def at(day, hour, minute=0):
    return datetime.datetime.combine(day, datetime.time(hour, minute), SHANGHAI)


@pytest.mark.parametrize(
    "today,months,start",
    [
        (datetime.date(2026, 3, 18), 3, datetime.date(2026, 1, 1)),
        (datetime.date(2026, 1, 5), 3, datetime.date(2025, 11, 1)),  # across the year
        (datetime.date(2026, 2, 1), 1, datetime.date(2026, 2, 1)),
        (datetime.date(2026, 12, 31), 12, datetime.date(2026, 1, 1)),
    ],
)
def test_history_starts_on_the_first_of_a_month(today, months, start):
    assert history_start(today, months) == start


NOWS = [
    at(datetime.date(2026, 3, 18), 14, 20),  # a Wednesday afternoon
    at(datetime.date(2026, 3, 2), 8, 5),  # a Monday morning
    at(datetime.date(2026, 3, 1), 0, 30),  # the first of the month, just after midnight
    at(datetime.date(2026, 3, 8), 23, 50),
]  # a Sunday night


@pytest.mark.parametrize("now", NOWS)
def test_the_plan_lies_between_the_first_of_the_month_two_months_back_and_now(now):
    plan = demo_plan(now, 600, 3, random.Random(7))
    times = [when for when, _ in plan]
    assert times == sorted(times)
    assert times[0].date() >= history_start(now.date(), 3) and times[-1] <= now
    assert all(when.tzinfo is not None for when in times)
    assert {kind for _, kind in plan} == {kind for kind, _ in KINDS}
    assert 600 <= len(plan) <= 600 + YESTERDAY_VISITS + TODAY_EVENTS


@pytest.mark.parametrize("now", NOWS)
def test_yesterdays_outpatients_make_todays_worklist(now):
    """A post-visit call is due at the end of the day after the visit: the visits of
    yesterday are today's calls (followup's own rule decides here)."""
    plan = demo_plan(now, 600, 3, random.Random(11))
    yesterday = now.date() - datetime.timedelta(days=1)
    visits = [when for when, kind in plan if kind == "visit" and when.date() == yesterday]
    assert len(visits) >= YESTERDAY_VISITS
    rule = followup.DEFAULT_RULES["post_visit_call"]
    assert {followup.due_at(rule, when, SHANGHAI, lambda day: False).date() for when in visits} == {
        now.date()
    }


@pytest.mark.parametrize("now", NOWS)
def test_this_month_last_month_and_today_all_have_events(now):
    plan = demo_plan(now, 600, 3, random.Random(3))
    month = now.date().replace(day=1)
    last_month = (month - datetime.timedelta(days=1)).replace(day=1)
    this_month = [when for when, _ in plan if when.date() >= month]
    previous = [when for when, _ in plan if last_month <= when.date() < month]
    assert len(previous) >= 150  # a full month of a hospital's events
    assert len([when for when in this_month if when.date() == now.date()]) >= TODAY_EVENTS
    if now.day > 1:
        assert len({when.date() for when in this_month}) >= min(now.day, 5)


def test_weekdays_are_busier_than_sundays_and_opening_hours_than_nights():
    now = at(datetime.date(2026, 3, 18), 14, 20)
    plan = demo_plan(now, 3000, 3, random.Random(5))
    weekday = sum(1 for when, _ in plan if when.weekday() == 1)
    sunday = sum(1 for when, _ in plan if when.weekday() == 6)
    assert weekday > 2 * sunday
    opening = sum(
        1 for when, _ in plan if datetime.time(7, 30) <= when.time() <= datetime.time(18, 0)
    )
    assert opening > 0.8 * len(plan)


def test_the_hospital_discharges_only_after_an_admission():
    now = at(datetime.date(2026, 3, 18), 14, 20)
    hospital = Hospital(seed=1, now=now)
    admitted = {}
    for when, kind in demo_plan(now, 800, 3, hospital.rng):
        event = hospital.event(kind, when)
        assert event["occurred_at"] == when.isoformat()
        data = event["data"]
        if event["event_type"] == "PatientAdmitted":
            admitted[data["admission_id"]] = datetime.datetime.fromisoformat(data["admitted_at"])
        elif event["event_type"] == "PatientDischarged":
            stay = datetime.datetime.fromisoformat(data["discharged_at"]) - admitted.pop(
                data["admission_id"]
            )
            assert stay >= datetime.timedelta(days=2)


def test_the_demos_events_keep_the_contract():
    from shared.events import load_event

    now = at(datetime.date(2026, 3, 18), 14, 20)
    hospital = Hospital(seed=2, now=now)
    for when, kind in demo_plan(now, 300, 3, hospital.rng):
        load_event(hospital.event(kind, when))  # raises EventInvalid naming the field
