"""FollowupService's entrypoints on its real store (in memory): intake's canonical events
schedule call tasks; agents claim and complete them; survey links; what is published."""

import hypothesis
import pytest
from hypothesis import strategies

from services.followup.service import FollowupService
from shared.errors import BadRequest, Conflict, InvalidMessage, NotFound
from tests import factories
from tests.service.fakes import canonical, inbound, new_id

DISCHARGE_KINDS = {"post_discharge_call", "recovery_check", "return_visit_reminder"}


@pytest.fixture
def followup(make_service):
    return make_service(FollowupService)


def deliver(followup, event):
    followup.worker.handle_events([inbound(event)])


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
    # The consumer's check, run as the message arrives, refuses it the same way: it is
    # rejected alone and never joins a batch.
    (entrypoint,) = FollowupService.handle_events.nameko_entrypoints
    with pytest.raises(InvalidMessage):
        entrypoint.check(inbound(body))


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


# -- batches: the events that arrived together are handled in bulk ----------------------------
def deliver_batch(followup, events):
    followup.worker.handle_events([inbound(event) for event in events])


def _history():
    """Several people: visits, a stay, a prospect who comes, a death, a merge, a cancelled
    visit. Fixed ids, so two services given it hold the same tasks."""
    ann, bo, cai, dan, eve = "P-ann", "P-bo", "P-cai", "P-dan", "P-eve"
    return [
        canonical(factories.consultation("13900001111", event_id="c-1", day=1), cai),
        canonical(factories.visit("M-1", event_id="v-1", day=2), ann),
        canonical(factories.admitted("M-2", "A-1", event_id="a-1"), bo),
        canonical(factories.visit("M-3", phone="139-0000-1111", event_id="v-3", day=3), cai),
        canonical(factories.discharged("M-2", "A-1", event_id="d-1"), bo),
        canonical(factories.visit("M-4", event_id="v-4", day=2), dan),
        canonical(factories.visit_cancelled("M-4", "V-x", event_id="x-4"), dan),
        canonical(factories.visit("M-5", event_id="v-5", day=4), eve),
        canonical(factories.merged("M-1", "M-5", event_id="m-1"), ann, merged_patient_id=eve),
        canonical(factories.registered("M-2", event_id="r-2", day=9, contact_consent=False), bo),
        canonical(factories.visit("M-1", event_id="v-6", day=12), ann),
    ]


def _state(followup):
    return sorted(
        (t["followup_id"], t["patient_id"], t["kind"], t["status"], t["cancel_reason"])
        for t in tasks(followup)
    )


def test_a_batch_schedules_what_one_by_one_schedules(followup, make_service, lookups):
    one_by_one = make_service(FollowupService)
    for event in _history():
        deliver(one_by_one, event)
    deliver_batch(followup, _history())

    assert _state(followup) == _state(one_by_one) and len(_state(followup)) >= 6
    assert sorted(followup.published.types()) == sorted(one_by_one.published.types())
    assert followup.db.tasks.find_one({"outbox_state": "pending"}) is None


def test_a_batch_reads_each_person_once_and_inserts_the_tasks_once(followup):
    people = [new_id() for _ in range(20)]
    counted = []
    for collection, method in (("events", "find"), ("events", "insert_many")):
        real = getattr(followup.db[collection], method)
        setattr(followup.db[collection], method, _counting(real, f"{collection}.{method}", counted))
    followup.db.tasks.insert_many = _counting(
        followup.db.tasks.insert_many, "tasks.insert_many", counted
    )

    deliver_batch(
        followup,
        [canonical(factories.visit(f"M-{i}", day=2), p) for i, p in enumerate(people)],
    )

    assert sorted(counted) == ["events.find", "events.insert_many", "tasks.insert_many"]
    assert len(tasks(followup, kind="post_visit_call")) == 20


def _counting(method, name, counted):
    def call(*args, **kwargs):
        counted.append(name)
        return method(*args, **kwargs)

    return call


def test_a_bad_event_fails_its_batch_before_anything_is_written(followup):
    with pytest.raises(InvalidMessage):
        deliver_batch(
            followup,
            [canonical(factories.visit("M-1"), new_id()), {"event_type": "PatientVisited"}],
        )
    # The consumer now handles each message alone: only the bad one is refused.
    assert followup.db.events.count_documents({}) == 0 and tasks(followup) == []


# Each make_service call makes a service on a database of its own: nothing is shared between
# the generated examples, so the fixture being function-scoped does not matter.
@hypothesis.settings(
    max_examples=50,
    deadline=None,
    suppress_health_check=[hypothesis.HealthCheck.function_scoped_fixture],
)
@hypothesis.given(order=strategies.permutations(range(len(_history()))), cuts=strategies.data())
def test_any_batching_schedules_what_one_by_one_schedules(make_service, order, cuts):
    """The consumer hands over what arrived together, in the order it arrived: however the
    events are cut into batches, the calls waiting for agents are those of the same events one
    by one. (A batch handles a person's events of the batch at once, as one by one would in
    another order: a discharge and a withdrawn consent arriving together schedule no call,
    where one by one schedules three and cancels them. Either way no one is called.)"""
    one_by_one, batched = make_service(FollowupService), make_service(FollowupService)
    events = [_history()[i] for i in order]
    for event in events:
        deliver(one_by_one, event)
    while events:
        size = cuts.draw(strategies.integers(1, len(events)))
        deliver_batch(batched, events[:size])
        events = events[size:]

    assert _pending(batched) == _pending(one_by_one)


def _pending(followup):
    return [task for task in _state(followup) if task[3] == "pending"]
