"""A call campaign's task in followup (services/followup/domain.py plan): one per person and
campaign, due by the next day's end, with the campaign's text as its script; none when the
person withdrew marketing consent after the call was requested."""

import datetime
import zoneinfo

from services.followup import domain

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")


def at(day, hour):
    return datetime.datetime(2026, 3, day, hour, 0, tzinfo=TZ).isoformat()


VISIT = {
    "event_id": "v1",
    "event_type": "PatientVisited",
    "occurred_at": at(1, 10),
    "data": {
        "patient": {"mrn": "M1", "name": "刘洋", "phone": "13900000104"},
        "visit_id": "V1",
        "department": "骨科",
        "visit_type": "first",
        "visited_at": at(1, 9),
    },
}
SCRIPT = {"zh": "您好，骨科康复讲座下周三举行。", "en": "Our recovery talk is next Wednesday."}


def requested(event_id, campaign_id, day, hour=10):
    return {
        "event_id": event_id,
        "event_type": "CampaignCallRequested",
        "occurred_at": at(day, hour),
        "data": {
            "campaign_id": campaign_id,
            "delivery_id": f"{campaign_id}|p1",
            "channel": "call",
            "requested_at": at(day, hour),
            "department": "骨科",
            "script": SCRIPT,
        },
    }


def withdrawn(day, hour):
    return {
        "event_id": f"w{day}{hour}",
        "event_type": "MarketingConsentWithdrawn",
        "occurred_at": at(day, hour),
        "data": {"via": "agent", "withdrawn_at": at(day, hour)},
    }


def campaign_calls(events):
    planned = domain.plan("p1", events, TZ, lambda day: False)
    return [task for task in planned.values() if task.kind == "campaign_call"]


def test_one_task_per_person_and_campaign_due_by_the_next_days_end():
    tasks = campaign_calls([VISIT, requested("r1", "c1", 20), requested("r1-again", "c1", 20, 11)])
    assert len(tasks) == 1
    task = tasks[0]
    assert task.due_at.isoformat() == "2026-03-21T23:59:59+08:00"
    assert (task.department, task.script, task.reason, task.key) == (
        "骨科",
        SCRIPT,
        "campaign c1",
        "c1",
    )
    assert len(campaign_calls([VISIT, requested("r1", "c1", 20), requested("r2", "c2", 20)])) == 2


def test_a_withdrawal_after_the_request_stops_the_call_one_before_does_not():
    assert campaign_calls([VISIT, requested("r1", "c1", 20), withdrawn(20, 15)]) == []
    assert (
        len(campaign_calls([VISIT, withdrawn(19, 15), requested("r1", "c1", 20)])) == 1
    )  # consent renewed since
