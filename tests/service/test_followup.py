"""FollowupService's entrypoints on its real store (in memory): intake's canonical events
schedule call tasks; agents claim and complete them; survey links; what is published."""

import pytest

from services.followup.service import FollowupService
from shared.errors import BadRequest, Conflict, InvalidMessage, NotFound
from tests import factories
from tests.service.fakes import canonical, inbound, new_id

DISCHARGE_KINDS = {"post_discharge_call", "recovery_check", "return_visit_reminder"}


@pytest.fixture
def followup(make_service):
    return make_service(FollowupService)


def deliver(followup, event):
    followup.worker.handle_event(inbound(event))


def tasks(followup, **filters):
    return followup.worker.list_followups(limit=500, **filters)["items"]


def test_a_visit_schedules_one_post_visit_call_and_publishes_it(followup):
    patient_id = new_id()
    deliver(followup, canonical(factories.visit("M-1", department="心内科"), patient_id))

    [task] = tasks(followup)
    assert task["kind"] == "post_visit_call" and task["status"] == "pending"
    assert task["patient_id"] == patient_id and task["department"] == "心内科"
    # Due the day after a visit in March 2026.
    assert task["script"]["zh"] and task["overdue"] is True
    [envelope] = followup.published.envelopes
    assert (envelope.exchange, envelope.routing_key) == (
        "followup.events",
        "FollowUpScheduled",
    )
    assert envelope.body["data"]["followup_id"] == task["followup_id"]
    assert envelope.body["patient_id"] == patient_id
    assert followup.worker.get_followup(task["followup_id"])["kind"] == "post_visit_call"


def test_a_redelivered_event_schedules_nothing_more(followup):
    event = canonical(factories.visit("M-1"), new_id())
    deliver(followup, event)
    deliver(followup, dict(event))

    assert len(tasks(followup)) == 1
    assert followup.db.events.count_documents({}) == 1
    assert followup.published.types() == ["FollowUpScheduled"]


@pytest.mark.parametrize(
    "body",
    [
        ["not", "an", "event"],
        {"event_type": "PatientVisited", "patient_id": "P-1"},  # no event_id
        {"event_type": "PatientVisited", "event_id": "E-1"},  # no patient_id
        {
            "event_type": "PatientsMerged",
            "event_id": "E-2",
            "patient_id": "P-1",
            "occurred_at": "2026-03-09T12:00:00+08:00",
            "data": {},
        },  # no merged_patient_id
    ],
)
def test_a_message_that_is_not_a_usable_event_is_invalid(followup, body):
    with pytest.raises(InvalidMessage):
        deliver(followup, body)
    assert followup.db.tasks.count_documents({}) == 0 and followup.published.envelopes == []


def test_a_discharge_schedules_three_tasks_and_a_death_none(followup):
    home, deceased = new_id(), new_id()
    for mrn, patient_id, disposition in (
        ("M-H", home, "home"),
        ("M-D", deceased, "deceased"),
    ):
        deliver(followup, canonical(factories.admitted(mrn, f"ADM-{mrn}"), patient_id))
        deliver(
            followup,
            canonical(
                factories.discharged(mrn, f"ADM-{mrn}", disposition=disposition),
                patient_id,
            ),
        )

    assert {t["kind"] for t in tasks(followup, patient_id=home)} == DISCHARGE_KINDS
    assert tasks(followup, patient_id=deceased, status="pending") == []
    assert len(followup.published.bodies("FollowUpScheduled")) == 3


def test_a_prospect_who_visits_is_not_called(followup):
    patient_id = new_id()
    deliver(followup, canonical(factories.consultation("13900001111", day=1), patient_id))
    [call] = tasks(followup, kind="prospect_call")
    assert call["status"] == "pending"

    deliver(
        followup,
        canonical(factories.visit("M-77", phone="139-0000-1111", day=3), patient_id),
    )
    assert followup.worker.get_followup(call["followup_id"])["status"] == "cancelled"
    [cancelled] = followup.published.bodies("FollowUpCancelled")
    assert cancelled["data"]["followup_id"] == call["followup_id"]
    assert cancelled["data"]["reason"] == "visited"


def test_consent_withdrawn_cancels_the_pending_calls(followup):
    patient_id = new_id()
    deliver(followup, canonical(factories.visit("M-1", day=2), patient_id))
    deliver(
        followup,
        canonical(factories.registered("M-1", day=9, contact_consent=False), patient_id),
    )

    assert [t["status"] for t in tasks(followup, patient_id=patient_id)] == ["cancelled"]
    assert followup.published.types() == ["FollowUpScheduled", "FollowUpCancelled"]


def test_claim_is_exclusive_and_unreachable_is_tried_again_until_the_attempts_run_out(
    make_service,
):
    followup = make_service(FollowupService, config={"max_attempts": 2})
    deliver(followup, canonical(factories.visit("M-1", phone="13712345678"), new_id()))
    [task] = tasks(followup)
    task_id = task["followup_id"]

    assert followup.worker.claim(task_id, "ann")["claimed_by"] == "ann"
    with pytest.raises(Conflict):
        followup.worker.claim(task_id, "bob")
    assert followup.worker.contact(task_id)["phone"] == "13712345678"

    retried = followup.worker.complete(task_id, "unreachable", agent="ann")
    assert retried["status"] == "pending" and retried["attempts"] == 1
    done = followup.worker.complete(task_id, "unreachable", agent="ann")
    assert done["status"] == "done" and done["outcome"] == "unreachable"
    assert [entry["outcome"] for entry in done["history"]] == [
        "unreachable",
        "unreachable",
    ]
    with pytest.raises(Conflict):
        followup.worker.complete(task_id, "reached", agent="ann")
    assert followup.published.types()[1:] == ["FollowUpAttempted", "FollowUpCompleted"]


def test_a_low_score_requests_service_recovery(followup):
    deliver(followup, canonical(factories.visit("M-1"), new_id()))
    [task] = tasks(followup)
    done = followup.worker.complete(
        task["followup_id"],
        "reached",
        agent="ann",
        satisfaction=1,
        notes="waited three hours",
    )
    assert done["status"] == "done" and done["satisfaction"] == 1

    assert followup.published.types()[1:] == [
        "FollowUpCompleted",
        "SatisfactionRecorded",
        "ServiceRecoveryRequested",
    ]
    [recovery] = followup.published.bodies("ServiceRecoveryRequested")
    assert (
        recovery["data"]["followup_id"] == task["followup_id"]
        and recovery["data"]["satisfaction"] == 1
    )


def test_bad_completions_name_the_field_and_unknown_tasks_are_not_found(followup):
    deliver(followup, canonical(factories.visit("M-1"), new_id()))
    [task] = tasks(followup)
    with pytest.raises(BadRequest) as raised:
        followup.worker.complete(task["followup_id"], "reached", satisfaction=9)
    assert set(raised.value.details) == {"satisfaction"}
    with pytest.raises(BadRequest) as raised:
        followup.worker.complete(task["followup_id"], "vanished")
    assert set(raised.value.details) == {"outcome"}
    with pytest.raises(NotFound):
        followup.worker.get_followup("no-such-task")
    assert followup.worker.get_followup(task["followup_id"])["attempts"] == 0


def test_a_survey_link_is_sent_after_the_call_and_answered_once(followup):
    deliver(followup, canonical(factories.visit("M-1", phone="13712345678"), new_id()))
    [task] = tasks(followup)
    assert (
        followup.worker.complete(task["followup_id"], "reached", agent="ann")["survey_state"]
        == "to_send"
    )

    assert followup.worker.send_survey_links() == 1
    assert followup.worker.send_survey_links() == 0  # claimed once
    [sms] = list(followup.db.notifications.find({}))
    assert sms["phone"] == "13712345678" and sms["purpose"] == "survey"
    token = sms["text"].split("/survey/")[1].split()[0].rstrip("。，,.")
    assert followup.worker.survey_form(token)["status"] == "open"

    assert followup.worker.answer_survey(token, {"doctor": 5, "nurse": 2}) == {"status": "answered"}
    assert followup.worker.answer_survey(token, {"doctor": 5}) == {"status": "used"}
    assert followup.worker.answer_survey("not-a-token", {"doctor": 5}) == {"status": "unknown"}
    [answer] = followup.published.bodies("SurveyAnswered")
    assert (
        answer["data"]["scores"] == {"doctor": 5, "nurse": 2}
        and answer["data"]["channel"] == "link"
    )
    # A 2 is a low score.
    assert "ServiceRecoveryRequested" in followup.published.types()
