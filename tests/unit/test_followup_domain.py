"""Follow-up rules (docs/RULES.md § Follow-ups) as tables: due dates, gating, dedupe."""

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


@pytest.mark.parametrize(
    "kind,anchor,expected",
    [
        ("post_visit_call", local(2026, 3, 2), eod(2026, 3, 3)),
        (
            "post_visit_call",
            local(2026, 3, 31, 23, 50),
            eod(2026, 4, 1),
        ),  # month end, near midnight
        ("post_visit_call", local(2026, 12, 31, 20), eod(2027, 1, 1)),  # year end
        # 23:30 UTC on 2 March is already 3 March in Shanghai: the next day is the 4th.
        (
            "post_visit_call",
            datetime.datetime(2026, 3, 2, 23, 30, tzinfo=datetime.UTC),
            eod(2026, 3, 4),
        ),
        (
            "post_discharge_call",
            local(2026, 3, 6, 15),
            eod(2026, 3, 10),
        ),  # Friday afternoon -> Tuesday
        ("post_discharge_call", local(2026, 3, 2), eod(2026, 3, 4)),  # Monday -> Wednesday
        ("post_discharge_call", local(2026, 9, 30, 16), eod(2026, 10, 9)),  # National Day week
        ("post_discharge_call", local(2026, 2, 13, 12), eod(2026, 2, 25)),  # Spring Festival
        ("recovery_check", local(2026, 3, 6, 15), local(2026, 3, 13, 15)),
        ("return_visit_reminder", local(2026, 3, 6, 15), local(2026, 4, 5, 15)),
        ("prospect_call", local(2026, 3, 2, 23, 59), eod(2026, 3, 3)),
        ("no_show_call", local(2026, 3, 2, 9), eod(2026, 3, 3)),
    ],
)
def test_due_dates(kind, anchor, expected):
    assert domain.due_at(domain.DEFAULT_RULES[kind], anchor, TZ, is_holiday) == expected


def event(kind, data, when, event_id, patient=None):
    data = dict(data)
    data.setdefault(
        "patient",
        patient if patient is not None else {"mrn": "M1", "name": "王芳", "phone": "13800138000"},
    )
    return {"event_id": event_id, "event_type": kind, "occurred_at": when.isoformat(), "data": data}


def visit(day, hour=10, vid=None, **patient):
    person = {"mrn": "M1", "name": "王芳", "phone": "13800138000", **patient}
    return event(
        "PatientVisited",
        {
            "visit_id": vid or f"V{day}{hour}",
            "department": "心内科",
            "visit_type": "first",
            "visited_at": local(2026, 3, day, hour).isoformat(),
        },
        local(2026, 3, day, hour),
        f"e-v{day}-{hour}-{vid}",
        person,
    )


def discharge(day, disposition="home", admission="A1"):
    return event(
        "PatientDischarged",
        {
            "admission_id": admission,
            "department": "骨科",
            "discharged_at": local(2026, 3, day, 15).isoformat(),
            "disposition": disposition,
        },
        local(2026, 3, day, 15),
        f"e-d{day}-{disposition}",
    )


def kinds(planned):
    return sorted(task.kind for task in planned.values())


def test_each_event_type_creates_its_kinds():
    consult = event(
        "ConsultationLogged",
        {"consultation_id": "C1", "channel": "phone"},
        local(2026, 3, 1),
        "e-c",
        {"name": "赵敏", "phone": "13900001111"},
    )
    no_show = event(
        "AppointmentNoShow",
        {"appointment_id": "AP1", "department": "眼科", "starts_at": local(2026, 3, 4).isoformat()},
        local(2026, 3, 4, 11),
        "e-n",
    )
    planned = domain.plan("P1", [visit(2), discharge(6), consult, no_show], TZ, is_holiday)
    assert kinds(planned) == sorted(
        [
            "post_visit_call",
            "post_discharge_call",
            "recovery_check",
            "return_visit_reminder",
            "prospect_call",
            "no_show_call",
        ]
    )


def test_two_visits_the_same_day_give_one_call_and_duplicates_change_nothing():
    events = [visit(2, 9), visit(2, 15), visit(2, 15), visit(3, 9)]
    planned = domain.plan("P1", events, TZ, is_holiday)
    assert kinds(planned) == ["post_visit_call", "post_visit_call"]
    for order in itertools.permutations(events):
        assert domain.plan("P1", list(order), TZ, is_holiday) == planned


def test_no_consent_no_phone_or_deceased_means_no_task():
    assert domain.plan("P1", [visit(2, contact_consent=False)], TZ, is_holiday) == {}
    assert (
        domain.plan(
            "P1",
            [
                visit(2, phone=None)
                | {"data": {**visit(2)["data"], "patient": {"mrn": "M1", "name": "x"}}}
            ],
            TZ,
            is_holiday,
        )
        == {}
    )
    assert domain.plan("P1", [visit(2), discharge(6, "deceased")], TZ, is_holiday) == {}


def test_consent_switched_off_later_wins_whatever_the_arrival_order():
    withdrawn = visit(5, contact_consent=False)
    for events in ([visit(2), withdrawn], [withdrawn, visit(2)]):
        assert domain.plan("P1", events, TZ, is_holiday) == {}
        assert domain.contact_of(events).why_not == "no_consent"
    # consent given again later: calls are allowed again
    assert (
        kinds(
            domain.plan("P1", [visit(2), withdrawn, visit(7, contact_consent=True)], TZ, is_holiday)
        )
        == ["post_visit_call"] * 3
    )


def test_a_discharge_before_its_admission_still_plans_the_discharge_calls():
    admission = event(
        "PatientAdmitted",
        {"admission_id": "A1", "department": "骨科", "admitted_at": local(2026, 3, 1).isoformat()},
        local(2026, 3, 1),
        "e-a",
    )
    assert kinds(domain.plan("P1", [discharge(6), admission], TZ, is_holiday)) == [
        "post_discharge_call",
        "recovery_check",
        "return_visit_reminder",
    ]


def test_department_overrides_and_disabled_kinds():
    departments = {
        "骨科": {
            "recovery_check": domain.Rule(14, end_of_day=False),
            "return_visit_reminder": domain.Rule(30, enabled=False),
        }
    }
    planned = domain.plan("P1", [discharge(6)], TZ, is_holiday, department_rules=departments)
    by_kind = {task.kind: task for task in planned.values()}
    assert by_kind["recovery_check"].due_at == local(2026, 3, 20, 15)
    assert "return_visit_reminder" not in by_kind


def test_unreachable_is_retried_next_day_until_the_attempts_run_out():
    now = local(2026, 3, 3, 22)
    assert domain.completion({"attempts": 0}, "unreachable", now, 3, TZ) == (
        "retry",
        eod(2026, 3, 4),
    )
    assert domain.completion({"attempts": 2}, "unreachable", now, 3, TZ) == ("done", None)
    assert domain.completion({"attempts": 0}, "reached", now, 3, TZ) == ("done", None)


@pytest.mark.parametrize(
    "satisfaction,complaint,recovery",
    [
        (1, None, True),
        (2, "", True),
        (3, None, False),
        (None, "wait too long", True),
        (5, "  ", False),
    ],
)
def test_service_recovery(satisfaction, complaint, recovery):
    assert domain.needs_recovery(satisfaction, complaint) is recovery


def test_overdue():
    assert domain.is_overdue("pending", 100.0, 101.0)
    assert not domain.is_overdue("done", 100.0, 101.0)
    assert not domain.is_overdue("pending", 100.0, 99.0)


# -- corrections and merges (docs/EVENTS.md v1.1) -------------------------------------------
def cancel(kind, day, hour=12, **data):
    return event(
        kind, data, local(2026, 3, day, hour), f"e-{kind}-{day}-{hour}-{sorted(data.items())}"
    )


def visit_cancelled(visit_id, day=20):
    return cancel("VisitCancelled", day, visit_id=visit_id)


def admission_cancelled(admission_id="A1", day=20):
    return cancel("AdmissionCancelled", day, admission_id=admission_id)


def discharge_cancelled(day, admission_id="A1", hour=12):
    return cancel("DischargeCancelled", day, hour, admission_id=admission_id)


DISCHARGE_KINDS = ["post_discharge_call", "recovery_check", "return_visit_reminder"]


def test_a_cancelled_visit_plans_nothing_whenever_the_cancel_arrives():
    events = [visit(2, vid="V1"), visit_cancelled("V1")]
    for order in (events, events[::-1]):
        assert domain.plan("P1", order, TZ, is_holiday) == {}
    assert domain.void_reasons(events) == {visit(2, vid="V1")["event_id"]: "visit_cancelled"}


def test_a_cancelled_visit_leaves_the_other_visit_of_its_day_and_of_other_days():
    kept = domain.plan(
        "P1", [visit(2, 9, vid="V1"), visit(2, 15, vid="V2"), visit(3, vid="V3")], TZ, is_holiday
    )
    after = domain.plan(
        "P1",
        [visit(2, 9, vid="V1"), visit(2, 15, vid="V2"), visit(3, vid="V3"), visit_cancelled("V1")],
        TZ,
        is_holiday,
    )
    assert sorted(after) == sorted(kept)  # the same slots, the same ids
    assert {task.cause_event_id for task in after.values()} == {
        visit(2, 15, vid="V2")["event_id"],
        visit(3, vid="V3")["event_id"],
    }


def test_an_admission_cancelled_voids_its_discharges_and_a_reported_death():
    for disposition in ("home", "deceased"):
        events = [discharge(6, disposition), admission_cancelled()]
        assert domain.void_reasons(events) == {events[0]["event_id"]: "admission_cancelled"}
        assert domain.plan("P1", events, TZ, is_holiday) == {}
    # the patient reported deceased by a discharge that was cancelled may be called again
    events = [visit(2), discharge(6, "deceased"), admission_cancelled()]
    assert domain.contact_of(events).callable
    assert kinds(domain.plan("P1", events, TZ, is_holiday)) == ["post_visit_call"]
    # another admission's cancellation changes nothing
    assert (
        kinds(domain.plan("P1", [discharge(6), admission_cancelled("A2")], TZ, is_holiday))
        == DISCHARGE_KINDS
    )


def test_a_discharge_cancelled_voids_the_discharges_until_it_and_a_later_one_counts_again():
    events = [discharge(6), discharge_cancelled(7)]
    for order in (events, events[::-1]):
        assert domain.plan("P1", order, TZ, is_holiday) == {}
    assert domain.void_reasons(events) == {events[0]["event_id"]: "discharge_cancelled"}
    assert not domain.contact_of([discharge(6, "deceased"), discharge_cancelled(7)]).deceased
    # the patient leaves again on the 9th: those tasks count, anchored at the new discharge
    again = discharge(9)
    for order in itertools.permutations(events + [again]):
        planned = domain.plan("P1", list(order), TZ, is_holiday)
        assert kinds(planned) == DISCHARGE_KINDS
        assert {task.cause_event_id for task in planned.values()} == {again["event_id"]}
    # a discharge at the very time of the cancellation is voided by it (<=)
    assert domain.plan("P1", [discharge(7), discharge_cancelled(7, hour=15)], TZ, is_holiday) == {}


# A store in a dict, applying `reconcile` as FollowupStore and the service do, so arrival
# orders can be played event by event.
def deliver(arrivals, patient_id="P1", tasks=None, done=()):
    tasks = {} if tasks is None else tasks
    seen = []
    for arrived in arrivals:
        seen.append(arrived)
        void = domain.void_reasons(seen)
        planned = domain.plan(patient_id, seen, TZ, is_holiday, void=void)
        mine = [task for task in tasks.values() if task["patient_id"] == patient_id]
        changes = domain.reconcile(patient_id, planned, mine, void)
        for task, reason in changes.cancel:
            task.update(status="cancelled", cancel_reason=reason)
        for task in changes.insert:
            assert task.followup_id not in tasks  # the store would skip it: never expected here
            tasks[task.followup_id] = stored(task, patient_id)
        for task in tasks.values():
            if task["cause_event_id"] in done:
                task["status"] = "done"
    return tasks


def stored(task, patient_id):
    return {
        "_id": task.followup_id,
        "patient_id": patient_id,
        "kind": task.kind,
        "anchor_key": task.key,
        "status": "pending",
        "due_ts": task.due_at.timestamp(),
        "planned_due_ts": task.due_at.timestamp(),
        "anchor_ts": task.anchor_at.timestamp(),
        "cause_event_id": task.cause_event_id,
    }


def by_status(tasks):
    out = {}
    for task in tasks.values():
        out.setdefault(task["status"], []).append((task["kind"], task.get("cancel_reason")))
    return {status: sorted(items) for status, items in out.items()}


def test_visit_then_cancel_cancels_its_call_and_a_duplicate_changes_nothing():
    v1 = visit(2, vid="V1")
    tasks = deliver([v1, visit_cancelled("V1")])
    assert by_status(tasks) == {"cancelled": [("post_visit_call", "visit_cancelled")]}
    assert deliver([v1, visit_cancelled("V1"), v1, visit_cancelled("V1")]) == tasks


def test_cancel_first_then_the_visit_never_plans_a_task():
    assert deliver([visit_cancelled("V1"), visit(2, vid="V1"), visit(2, vid="V1")]) == {}


def test_a_done_call_stays_done_when_its_visit_is_cancelled():
    v1 = visit(2, vid="V1")
    tasks = deliver([v1, visit_cancelled("V1")], tasks=deliver([v1], done={v1["event_id"]}))
    assert by_status(tasks) == {"done": [("post_visit_call", None)]}


def test_a_cancelled_visit_on_a_day_with_another_visit_keeps_the_call():
    v1, v2 = visit(2, 9, vid="V1"), visit(2, 15, vid="V2")
    for arrivals in ([v1, v2, visit_cancelled("V1")], [v1, visit_cancelled("V1"), v2]):
        assert by_status(deliver(arrivals)).get("pending") == [("post_visit_call", None)]
    # order v1, v2, cancel: the very same task stays (nothing to tell the agent)
    assert list(deliver([v1, v2, visit_cancelled("V1")])) == list(deliver([v1]))
    # order v1, cancel, v2: the day's call was cancelled, the second visit gets a new one
    tasks = deliver([v1, visit_cancelled("V1"), v2])
    assert by_status(tasks) == {
        "cancelled": [("post_visit_call", "visit_cancelled")],
        "pending": [("post_visit_call", None)],
    }
    assert deliver([v1, visit_cancelled("V1"), v2, v2, visit_cancelled("V1")]) == tasks
    # both visits cancelled: no call
    assert "pending" not in by_status(
        deliver([v1, v2, visit_cancelled("V1"), visit_cancelled("V2")])
    )


def test_discharge_cancelled_then_a_new_discharge_gets_new_tasks_under_new_ids():
    first, again = discharge(6), discharge(9)
    tasks = deliver([first, discharge_cancelled(7)])
    assert by_status(tasks) == {
        "cancelled": [(kind, "discharge_cancelled") for kind in DISCHARGE_KINDS]
    }
    old_ids = set(tasks)
    tasks = deliver([again, again, discharge_cancelled(7)], tasks=tasks)
    assert by_status(tasks)["pending"] == [(kind, None) for kind in DISCHARGE_KINDS]
    new = {task["_id"] for task in tasks.values() if task["status"] == "pending"}
    assert not new & old_ids
    assert {task["cause_event_id"] for task in tasks.values() if task["status"] == "pending"} == {
        again["event_id"]
    }
    # every arrival order leaves the three tasks of the second discharge pending, once
    for order in itertools.permutations([first, discharge_cancelled(7), again]):
        pending = [t for t in deliver(list(order)).values() if t["status"] == "pending"]
        assert sorted(t["kind"] for t in pending) == DISCHARGE_KINDS
        assert {t["cause_event_id"] for t in pending} == {again["event_id"]}


def test_a_second_discharge_cancelled_voids_the_re_discharge_and_a_third_gets_a_third_generation():
    tasks = deliver(
        [discharge(6), discharge_cancelled(7), discharge(9), discharge_cancelled(10), discharge(12)]
    )
    assert by_status(tasks) == {
        "cancelled": sorted([(kind, "discharge_cancelled") for kind in DISCHARGE_KINDS] * 2),
        "pending": [(kind, None) for kind in DISCHARGE_KINDS],
    }
    assert len(set(tasks)) == 9


def test_admission_cancelled_cancels_the_discharge_tasks_for_good():
    tasks = deliver([discharge(6), admission_cancelled(), discharge(9)])
    assert by_status(tasks) == {
        "cancelled": [(kind, "admission_cancelled") for kind in DISCHARGE_KINDS]
    }


def test_a_task_cancelled_for_consent_keeps_its_slot():
    v1 = visit(2, vid="V1")
    tasks = deliver([v1])
    for task in tasks.values():
        task.update(status="cancelled", cancel_reason="no_consent")
    assert deliver([v1, visit(2, 15, vid="V2")], tasks=tasks) == tasks


def test_a_merge_keeps_one_task_per_slot():
    # R and S each had a call for 2 March (and S one for the 3rd): planned under both ids
    tasks = deliver([visit(2, 9, vid="VR")], patient_id="R")
    deliver([visit(2, 15, vid="VS"), visit(3, vid="VS3")], patient_id="S", tasks=tasks)
    for task in tasks.values():  # the merge re-points R's tasks
        task["patient_id"] = "S"
    events = [visit(2, 9, vid="VR"), visit(2, 15, vid="VS"), visit(3, vid="VS3")]
    tasks = deliver(events, patient_id="S", tasks=tasks)
    assert by_status(tasks) == {
        "pending": [("post_visit_call", None)] * 2,
        "cancelled": [("post_visit_call", "merged")],
    }
    kept = [
        t for t in tasks.values() if t["status"] == "pending" and t["anchor_key"] == "2026-03-02"
    ]
    assert [t["cause_event_id"] for t in kept] == [
        visit(2, 9, vid="VR")["event_id"]
    ]  # the earliest
    assert deliver(events, patient_id="S", tasks=tasks) == tasks  # stable


def test_a_merge_with_a_done_call_cancels_the_other_record_s_pending_one():
    tasks = deliver(
        [visit(2, 9, vid="VR")], patient_id="R", done={visit(2, 9, vid="VR")["event_id"]}
    )
    deliver([visit(2, 15, vid="VS")], patient_id="S", tasks=tasks)
    for task in tasks.values():
        task["patient_id"] = "S"
    tasks = deliver([visit(2, 15, vid="VS"), visit(2, 9, vid="VR")], patient_id="S", tasks=tasks)
    assert by_status(tasks) == {
        "done": [("post_visit_call", None)],
        "cancelled": [("post_visit_call", "merged")],
    }


def test_tasks_stored_before_v1_1_match_their_slot_by_id():
    v1 = visit(2, vid="V1")
    tasks = deliver([v1])
    for task in tasks.values():
        del task["anchor_key"], task["planned_due_ts"]
    assert deliver([v1, visit(2, 15, vid="V2")], tasks=tasks) == tasks
    assert by_status(deliver([v1, visit_cancelled("V1")], tasks=tasks)) == {
        "cancelled": [("post_visit_call", "visit_cancelled")]
    }


def test_without_corrections_or_merges_the_stored_tasks_are_not_needed():
    events = [visit(2), discharge(6)]
    planned = domain.plan("P1", events, TZ, is_holiday)
    assert not domain.history_matters(events, domain.void_reasons(events))
    assert domain.reconcile("P1", planned, [], {}).insert == list(planned.values())
    for corrected, matters in (
        (events + [visit_cancelled("V-unknown")], False),  # voids nothing (yet)
        ([visit(2, vid="V1"), visit_cancelled("V1")], True),
    ):
        assert domain.history_matters(corrected, domain.void_reasons(corrected)) is matters
    assert domain.history_matters(
        [event("PatientsMerged", {"merged_patient_id": "R"}, local(2026, 3, 9), "m")], {}
    )
