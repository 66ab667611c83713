"""Contract v1.1 in the staff portal, as a customer-service agent and their manager see it.

The hospital's systems publish to hospital.events (tests/factories.py's v1.1 factories, the
times relative to today in the hospital's time zone, so the calls are due today):

1. two patients, A and B, visited yesterday: the agent's worklist shows both calls, the
   manager's dashboard two visits, two patients, two calls due;
2. the HIS cancels A's visit (VisitCancelled): after a reload A's call is gone from the
   worklist, and the dashboard counts one visit and one call due fewer;
3. C (who also visited yesterday) is merged into B (PatientsMerged): searching C's retired
   MRN opens B's profile, which lists the merged MRN; the worklist shows one call under B's
   name, no duplicate; the dashboard counts the person once (patients), the call once;
4. the scheduling system books B (AppointmentScheduled), moves the same appointment to
   another day, then withdraws it: the appointments page shows it on the new day only,
   then as cancelled.

Screenshots of every step go to artifacts/portal/v11-*.png. Nothing sleeps and hopes: each
wait is a condition with a deadline (wait_until, or Playwright's expect).
"""

import datetime
import re

import pytest

from tests import factories
from tests.e2e.test_portal_browser import (  # noqa: F401 (fixtures)
    AGENT,
    HOSPITAL_TZ,
    MANAGER,
    Tab,
    browser,
    expect,
    next_working_morning,
    portal,
    reload_dashboard,
    summary,
    today,
)
from tests.support import wait_until

pytestmark = pytest.mark.e2e

A = {"mrn": "V11-A", "name": "李明", "phone": "13900000001"}
B = {"mrn": "V11-B", "name": "张伟", "phone": "13900000002"}
C = {"mrn": "V11-C", "name": "张玮", "phone": "13900000003"}  # B's second record, merged
HIS_APPOINTMENT = "HIS-APPT-7781"
EVENT_TIMEOUT = 60  # seconds for an event to reach every service


# -- events, with times relative to today (hospital time) ---------------------------------
def yesterday_at(hour, minute=0):
    day = today() - datetime.timedelta(days=1)
    return datetime.datetime.combine(day, datetime.time(hour, minute), HOSPITAL_TZ)


def minutes_ago(minutes):
    return (datetime.datetime.now(HOSPITAL_TZ) - datetime.timedelta(minutes=minutes)).isoformat()


def person(who):
    """The patient fields every event about `who` states (the profile keeps the last one)."""
    return {"name": who["name"], "phone": who["phone"]}


def visit_of(who, visited):
    event = factories.visit(who["mrn"], visit_id=f"VISIT-{who['mrn']}", **person(who))
    event["data"]["visited_at"] = visited.isoformat()
    event["occurred_at"] = (visited + datetime.timedelta(minutes=40)).isoformat()
    return event


def happening(event, minutes_before_now):
    """`event` as the hospital sends it now: occurred a few minutes ago."""
    event["occurred_at"] = minutes_ago(minutes_before_now)
    return event


def working_day_after(day):
    day += datetime.timedelta(days=1)
    while day.weekday() > 4:
        day += datetime.timedelta(days=1)
    return day


# -- reading the platform through the gateway --------------------------------------------
def due_today(platform, token):
    status, body = platform.http(
        "GET", "/api/v1/followups?status=pending&due_today=true&limit=200", token=token
    )
    assert status == 200, body
    return body["items"]


def patient_by_mrn(platform, token, mrn):
    status, body = platform.http("GET", f"/api/v1/patients?mrn={mrn}", token=token)
    assert status == 200, body
    return next(iter(body["items"]), None)


def followup(platform, token, followup_id):
    status, body = platform.http("GET", f"/api/v1/followups/{followup_id}", token=token)
    assert status == 200, body
    return body


def mirrored_appointment(platform, token, patient_id):
    status, body = platform.http(
        "GET", f"/api/v1/appointments?patient_id={patient_id}", token=token
    )
    assert status == 200, body
    return next((a for a in body["items"] if a.get("external_id") == HIS_APPOINTMENT), None)


def figures_reach(platform, token, **expected):
    """Wait until analytics' summary has `expected` (the dashboard draws the same)."""
    seen = {}

    def reached():
        seen.update(summary(platform, token))
        return all(seen.get(key) == value for key, value in expected.items())

    wait_until(
        reached,
        timeout=EVENT_TIMEOUT,
        interval=0.5,
        message=lambda: (
            f"the summary to show {expected}; it shows { {key: seen.get(key) for key in expected} }"
        ),
    )


# -- the portal ---------------------------------------------------------------------------
def reload_worklist(tab):
    """Click refresh; the view is redrawn at once (its count empty) and counted when loaded."""
    page = tab.page
    page.click("#refresh")
    expect(page.locator("#task-count")).to_have_text(re.compile(r"\d"))


def cards(tab):
    return tab.page.locator("article.task")


def dashboard_shows(tab, **expected):
    """The manager's figures as text: reload until they are `expected` (analytics may still
    be counting what the services just published)."""

    def shown():  # without waiting: also what the failure message shows
        return {key: next(iter(tab.figure(key).all_inner_texts()), None) for key in expected}

    def reached():
        reload_dashboard(tab)
        return shown() == {key: str(value) for key, value in expected.items()}

    def seen():
        notice = " ".join(tab.page.locator("#notice:visible").all_inner_texts())
        return (
            f"the dashboard to show {expected}; it shows {shown()}"
            + (f", notice: {notice!r}" if notice else "")
            + f", errors: {tab.errors[-3:]}"
        )

    wait_until(reached, timeout=EVENT_TIMEOUT, interval=0.5, message=seen)


def show_appointments(tab, day):
    page = tab.page
    page.click("#nav-appointments")
    page.fill("#appt-date", day.isoformat())
    page.click("#appt-show")
    expect(page.locator("#appt-date")).to_have_value(day.isoformat())
    expect(page.locator("#appt-rows tr").first).to_be_attached()  # loaded: a row or "nothing here"


def search_mrn(tab, mrn):
    page = tab.page
    page.click("#nav-patients")
    page.select_option("#patient-by", "mrn")
    page.fill("#patient-query", mrn)
    page.click("#patient-submit")
    # The page re-ran the previous search when it opened: wait for this one's answer (the
    # MRN searched is in its row, a merged one in the note), then for it alone.
    rows = page.locator("#patient-rows tr[data-patient-id]")
    expect(rows.filter(has_text=mrn)).to_have_count(1)
    expect(rows).to_have_count(1)
    return rows.first


def test_cancel_merge_and_reschedule_as_the_agent_sees_them(portal, browser):
    platform = portal
    admin = platform.token()
    agent_token = platform.token(*AGENT)
    manager_token = platform.token(*MANAGER)

    # -- 1. A and B visited yesterday: two calls due today ---------------------------------
    platform.publish(visit_of(A, yesterday_at(9, 30)))
    platform.publish(visit_of(B, yesterday_at(10, 0)))
    tasks = wait_until(
        lambda: (lambda items: len(items) == 2 and items)(due_today(platform, agent_token)),
        timeout=EVENT_TIMEOUT,
        message="the two post-visit calls due today",
    )
    task_of = {task["patient_name"]: task for task in tasks}
    assert set(task_of) == {A["name"], B["name"]}, tasks
    figures_reach(platform, manager_token, visits=2, unique_patients=2, followups_due=2)

    manager = Tab(browser, platform.gateway_url, "manager")
    agent = Tab(browser, platform.gateway_url, "agent")
    try:
        agent.login(*AGENT)
        page = agent.page
        expect(cards(agent)).to_have_count(2)
        for who in (A, B):
            card = page.locator(
                f'article.task[data-followup-id="{task_of[who["name"]]["followup_id"]}"]'
            )
            expect(card.locator(".patient-name")).to_have_text(who["name"])
            expect(card.locator(".why-kind")).to_have_text("门诊后回访")
        expect(page.locator("#task-count")).to_have_text("共 2 条")
        agent.shot("v11-01-worklist-two-calls")

        manager.login(*MANAGER)
        expect(manager.page.locator("#view h1")).to_have_text("管理看板")
        dashboard_shows(manager, visits=2, unique_patients=2, followups_due=2)
        expect(manager.page.locator('[data-figure="unique_patients"] .figure-label')).to_have_text(
            "就诊人数"
        )
        manager.shot("v11-02-dashboard-two-visits")

        # -- 2. the HIS cancels A's visit: A's call leaves the worklist ---------------------
        platform.publish(
            happening(factories.visit_cancelled(A["mrn"], f"VISIT-{A['mrn']}", **person(A)), 30)
        )
        a_task = task_of[A["name"]]["followup_id"]
        cancelled = wait_until(
            lambda: (lambda f: f["status"] == "cancelled" and f)(followup(platform, admin, a_task)),
            timeout=EVENT_TIMEOUT,
            message="A's call to be cancelled",
        )
        assert cancelled["cancel_reason"] == "visit_cancelled", cancelled
        reload_worklist(agent)
        expect(cards(agent)).to_have_count(1)
        expect(page.locator(f'article.task[data-followup-id="{a_task}"]')).to_have_count(0)
        expect(cards(agent).locator(".patient-name")).to_have_text(B["name"])
        expect(page.locator("#task-list")).not_to_contain_text(A["name"])
        agent.shot("v11-03-worklist-after-visit-cancelled")

        dashboard_shows(manager, visits=1, unique_patients=1, followups_due=1)
        manager.shot("v11-04-dashboard-after-visit-cancelled")

        # A's profile: no visit counted; the timeline says the visit was cancelled, and why.
        search_mrn(agent, A["mrn"]).locator("a.open-timeline").click()
        expect(page.locator("#patient-profile h1")).to_have_text(A["name"])
        expect(page.locator('#patient-profile dd[data-fact="patients.visits"]')).to_have_text("0")
        cancel_entry = page.locator('#timeline li[data-event-type="VisitCancelled"]')
        expect(cancel_entry.locator("strong")).to_have_text("门诊就诊已撤销")
        expect(cancel_entry.locator("span")).to_have_text("entered in error")  # the HIS's reason
        agent.shot("v11-05-profile-visit-cancelled")

        # -- 3. C visited yesterday too, then the HIS merges C into B ------------------------
        platform.publish(visit_of(C, yesterday_at(11, 0)))
        wait_until(
            lambda: len(due_today(platform, agent_token)) == 2,
            timeout=EVENT_TIMEOUT,
            message="C's post-visit call",
        )
        page.click("#nav-worklist")
        expect(cards(agent)).to_have_count(2)
        for who in (B, C):
            expect(cards(agent).filter(has_text=who["name"])).to_have_count(1)
        agent.shot("v11-06-worklist-before-merge")
        dashboard_shows(manager, visits=2, unique_patients=2, followups_due=2)

        b_id = patient_by_mrn(platform, agent_token, B["mrn"])["patient_id"]
        c_id = patient_by_mrn(platform, agent_token, C["mrn"])["patient_id"]
        assert b_id != c_id
        platform.publish(happening(factories.merged(B["mrn"], C["mrn"], **person(B)), 20))
        wait_until(
            lambda: patient_by_mrn(platform, agent_token, C["mrn"])["patient_id"] == b_id,
            timeout=EVENT_TIMEOUT,
            message="C's MRN to find B",
        )
        remaining = wait_until(
            lambda: (lambda items: len(items) == 1 and items)(due_today(platform, agent_token)),
            timeout=EVENT_TIMEOUT,
            message="one call left for the merged person",
        )
        assert remaining[0]["patient_id"] == b_id and remaining[0]["patient_name"] == B["name"], (
            remaining
        )

        # Searching the retired MRN opens B, and says so.
        row = search_mrn(agent, C["mrn"])
        expect(row).to_have_attribute("data-patient-id", b_id)
        expect(row.locator("td").nth(0)).to_have_text(B["name"])
        expect(row.locator("td").nth(1)).to_contain_text(B["mrn"])
        expect(row.locator(".merged-note")).to_have_text(f"（病历号 {C['mrn']} 已并入此患者）")
        agent.shot("v11-07-search-retired-mrn")
        row.locator("a.open-timeline").click()
        expect(page.locator("#patient-profile h1")).to_have_text(B["name"])
        expect(page.locator('#patient-profile dd[data-fact="patients.mrn"]')).to_have_text(B["mrn"])
        expect(page.locator('#patient-profile dd[data-fact="patients.mergedMrns"]')).to_have_text(
            C["mrn"]
        )
        merge_entry = page.locator('#timeline li[data-event-type="PatientsMerged"]')
        expect(merge_entry.locator("strong")).to_have_text("病历合并")
        expect(merge_entry.locator("span")).to_have_text(f"并入病历号 {C['mrn']}")
        expect(page.locator('#timeline li[data-event-type="PatientVisited"]')).to_have_count(2)
        agent.shot("v11-08-profile-merged")

        page.click("#nav-worklist")
        expect(cards(agent)).to_have_count(1)
        expect(cards(agent)).to_have_attribute("data-followup-id", remaining[0]["followup_id"])
        expect(cards(agent).locator(".patient-name")).to_have_text(B["name"])
        expect(page.locator("#task-list")).not_to_contain_text(C["name"])
        agent.shot("v11-09-worklist-after-merge")

        # Two visits happened; they were one person's, with one call to make.
        dashboard_shows(manager, visits=2, unique_patients=1, followups_due=1)
        manager.shot("v11-10-dashboard-after-merge")

        # -- 4. the scheduling system books B, moves the booking, then withdraws it ----------
        first = next_working_morning()
        moved = datetime.datetime.combine(
            working_day_after(first.date()), datetime.time(14, 30), HOSPITAL_TZ
        )
        platform.publish(
            happening(
                factories.appointment_scheduled(
                    B["mrn"],
                    HIS_APPOINTMENT,
                    first.isoformat(),
                    department="心内科",
                    doctor_id="DR-LIU",
                    **person(B),
                ),
                15,
            )
        )
        booked = wait_until(
            lambda: mirrored_appointment(platform, agent_token, b_id),
            timeout=EVENT_TIMEOUT,
            message="the mirrored appointment",
        )
        assert (booked["status"], booked["channel"], booked["local_date"]) == (
            "booked",
            "his",
            first.date().isoformat(),
        ), booked
        show_appointments(agent, first.date())
        row = page.locator(f'tr[data-appointment-id="{booked["appointment_id"]}"]')
        expect(row).to_have_attribute("data-status", "booked")
        expect(row.locator("td").nth(0)).to_contain_text("09:00")
        expect(row.locator("td").nth(1)).to_have_text(B["name"])
        expect(row.locator("td").nth(4)).to_have_text(f"医院系统 {HIS_APPOINTMENT}")
        expect(row).to_contain_text("已预约")
        agent.shot("v11-11-appointment-booked-by-his")

        platform.publish(
            happening(
                factories.appointment_scheduled(
                    B["mrn"],
                    HIS_APPOINTMENT,
                    moved.isoformat(),
                    department="心内科",
                    doctor_id="DR-LIU",
                    **person(B),
                ),
                10,
            )
        )
        wait_until(
            lambda: (
                mirrored_appointment(platform, agent_token, b_id)["local_date"]
                == moved.date().isoformat()
            ),
            timeout=EVENT_TIMEOUT,
            message="the appointment to move to its new day",
        )
        show_appointments(agent, first.date())
        expect(page.locator(f'tr[data-appointment-id="{booked["appointment_id"]}"]')).to_have_count(
            0
        )
        expect(page.locator("#appt-rows")).to_contain_text("暂无数据")
        show_appointments(agent, moved.date())
        row = page.locator(f'tr[data-appointment-id="{booked["appointment_id"]}"]')
        expect(row).to_have_attribute("data-status", "booked")
        expect(row.locator("td").nth(0)).to_contain_text("14:30")
        expect(row.locator("td").nth(1)).to_have_text(B["name"])
        expect(page.locator("#appt-rows tr[data-appointment-id]")).to_have_count(
            1
        )  # moved, not copied
        agent.shot("v11-12-appointment-moved")

        platform.publish(
            happening(factories.appointment_withdrawn(B["mrn"], HIS_APPOINTMENT, **person(B)), 5)
        )
        wait_until(
            lambda: mirrored_appointment(platform, agent_token, b_id)["status"] == "cancelled",
            timeout=EVENT_TIMEOUT,
            message="the withdrawn appointment to be cancelled",
        )
        show_appointments(agent, moved.date())
        row = page.locator(f'tr[data-appointment-id="{booked["appointment_id"]}"]')
        expect(row).to_have_attribute("data-status", "cancelled")
        expect(row).to_contain_text("已取消")
        expect(row.locator("button")).to_have_count(0)  # nothing left to confirm or check in
        agent.shot("v11-13-appointment-withdrawn")

        # The same in English, once: the row, then B's profile through the row's patient link.
        page.click("#lang-toggle")
        row = page.locator(f'tr[data-appointment-id="{booked["appointment_id"]}"]')
        expect(row.locator("td").nth(4)).to_have_text(f"Hospital system {HIS_APPOINTMENT}")
        expect(row).to_contain_text("Cancelled")
        row.locator("td").nth(1).locator("a").click()
        expect(page.locator("#patient-profile h1")).to_have_text(B["name"])
        expect(page.locator('#patient-profile dd[data-fact="patients.mergedMrns"]')).to_have_text(
            C["mrn"]
        )
        expect(page.locator("#patient-profile dl")).to_contain_text("Merged MRNs")
        merge_entry = page.locator('#timeline li[data-event-type="PatientsMerged"]')
        expect(merge_entry.locator("strong")).to_have_text("Records merged")
        expect(merge_entry.locator("span")).to_have_text(f"merged in MRN {C['mrn']}")
        expect(page.locator('#timeline li[data-event-type="AppointmentScheduled"]')).to_have_count(
            2
        )
        expect(
            page.locator('#timeline li[data-event-type="AppointmentWithdrawn"] strong')
        ).to_have_text("Appointment withdrawn (hospital)")
        agent.shot("v11-14-profile-merged-en")

        # No script error, no CSP violation, no failed request.
        assert agent.errors == [] and manager.errors == [], (agent.errors, manager.errors)
    finally:
        agent.close()
        manager.close()
