"""AnalyticsService's entrypoints on its real store (in memory): batches of canonical events
in, once; the manager's figures, reports and the minimal analytics stream out."""

import datetime
import zoneinfo

import pytest

from services.analytics.service import AnalyticsService
from services.followup.service import FollowupService
from shared.errors import BadRequest, InvalidMessage
from tests import factories
from tests.service.fakes import canonical, inbound, new_id

MARCH = ("2026-03-01", "2026-03-31")
ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")  # the config's default time zone


@pytest.fixture
def analytics(make_service):
    return make_service(AnalyticsService)


def deliver(analytics, *events):
    """One batch, as the batch consumer hands it over."""
    analytics.worker.handle_events([inbound(event) for event in events])


def week(prospect_id):
    """A consultation that converts, three visits in two departments, an admission and discharge."""
    return [
        canonical(factories.consultation("13900001111", day=1), prospect_id),
        canonical(factories.visit("M-1", phone="13900001111", day=3), prospect_id),
        canonical(
            factories.visit("M-2", phone="13900002222", day=3, department="骨科"),
            new_id(),
        ),
        canonical(
            factories.visit("M-3", phone="13900003333", day=4, department="骨科"),
            new_id(),
        ),
        canonical(factories.admitted("M-4", "A-4", phone="13900004444"), "P-4"),
        canonical(factories.discharged("M-4", "A-4", phone="13900004444"), "P-4"),
    ]


def test_a_batch_gives_the_contract_figures(analytics):
    deliver(analytics, *week(new_id()))

    figures = analytics.worker.summary(*MARCH)
    assert (figures["visits"], figures["first_visits"], figures["consultations"]) == (
        3,
        3,
        1,
    )
    assert (figures["conversions"], figures["admissions"], figures["discharges"]) == (
        1,
        1,
        1,
    )
    assert {d["department"]: d["visits"] for d in figures["by_department"] if d["visits"]} == {
        "心内科": 1,
        "骨科": 2,
    }
    assert analytics.worker.summary(*MARCH, department="骨科")["visits"] == 2
    assert analytics.worker.summary("2026-03-03", "2026-03-03")["visits"] == 2


def test_redelivered_and_duplicated_events_count_once(analytics):
    events = week(new_id())
    deliver(analytics, *events, events[1])  # a duplicate within the batch
    deliver(analytics, *events)  # the whole batch again
    assert analytics.worker.summary(*MARCH)["visits"] == 3
    assert analytics.db.facts.count_documents({}) == len(events)
    # Each event's minimal copy is appended to the stream once.
    assert len(analytics.published.envelopes) == len(events)


def test_the_stream_gets_minimal_copies_without_the_person(analytics):
    event = canonical(factories.visit("M-1", phone="13900001111", name="陈秀兰"), new_id())
    deliver(analytics, event)
    [envelope] = analytics.published.envelopes
    assert (envelope.exchange, envelope.routing_key) == (
        "hcrm.stream",
        "PatientVisited",
    )
    assert envelope.body["event_id"] == event["event_id"]
    text = str(envelope.body)
    assert "陈秀兰" not in text and "13900001111" not in text and "M-1" not in text


def test_a_batch_with_a_message_that_is_not_an_event_is_invalid_and_writes_nothing(
    analytics,
):
    good = canonical(factories.visit("M-1"), new_id())
    with pytest.raises(InvalidMessage):
        deliver(analytics, good, {"event_type": "PatientVisited"})  # no event_id
    # The consumer then hands each message over alone: the good one counts.
    assert analytics.db.facts.count_documents({}) == 0
    deliver(analytics, good)
    assert analytics.worker.summary(*MARCH)["visits"] == 1
    # The consumer's check refuses the bad one as it arrives, before it can join a batch.
    (entrypoint,) = AnalyticsService.handle_events.nameko_entrypoints
    with pytest.raises(InvalidMessage):
        entrypoint.check(inbound({"event_type": "PatientVisited"}))
    assert entrypoint.check(inbound(good)) == good


def test_a_cancelled_visit_no_longer_counts(analytics):
    patient_id = new_id()
    deliver(analytics, canonical(factories.visit("M-1", visit_id="V-9", day=3), patient_id))
    assert analytics.worker.summary(*MARCH)["visits"] == 1
    deliver(analytics, canonical(factories.visit_cancelled("M-1", "V-9", day=3), patient_id))
    assert analytics.worker.summary(*MARCH)["visits"] == 0


def test_refreshed_partials_serve_the_same_figures(analytics):
    deliver(analytics, *week(new_id()))
    before = analytics.worker.summary(*MARCH)
    analytics.worker.refresh_day_figures()
    assert analytics.db.day_changes.count_documents({"dirty": 1}) == 0
    assert analytics.db.day_figures.count_documents({}) > 0
    assert analytics.worker.summary(*MARCH) == before

    deliver(
        analytics,
        canonical(factories.visit("M-LATE", phone="13499999999", day=3), new_id()),
    )
    # A late event shows.
    assert analytics.worker.summary(*MARCH)["visits"] == before["visits"] + 1


def test_series_comparisons_and_reports(analytics):
    deliver(analytics, *week(new_id()))
    series = analytics.worker.series(*MARCH, granularity="week")
    assert sum(point["visits"] for point in series["points"]) == 3
    compared = analytics.worker.summary(*MARCH, compare="previous_year")
    assert (
        compared["comparison"]["figures"]["visits"] == 0
        and compared["comparison"]["change"]["visits"] == 3
    )

    monthly = analytics.worker.monthly_report("2026-03")
    assert {row["figure"]: row["value"] for row in monthly["figures"]}["visits"] == 3
    assert "visits" in analytics.worker.monthly_report("2026-03", format="csv")
    assert analytics.worker.monthly_report("2026-03", format="html").startswith("<!doctype html>")


@pytest.mark.parametrize(
    "call",
    [
        lambda w: w.summary("2026-03-31", "2026-03-01"),
        lambda w: w.summary(*MARCH, compare="last_decade"),
        lambda w: w.series(*MARCH, granularity="hour"),
        lambda w: w.monthly_report("2026-13"),
        lambda w: w.agents_report("2026-Q5"),
    ],
)
def test_bad_ranges_and_formats_are_refused(analytics, call):
    with pytest.raises(BadRequest):
        call(analytics.worker)


def test_the_calls_and_surveys_followup_publishes_make_the_agents_and_quality_figures(
    analytics, make_service
):
    followup = make_service(FollowupService)
    visit = canonical(factories.visit("M-1", day=2), new_id())
    followup.worker.handle_events([inbound(visit)])
    [task] = followup.worker.list_followups()["items"]
    followup.worker.complete(
        task["followup_id"],
        "reached",
        agent="ann",
        satisfaction=4,
        survey={"doctor": 5, "nurse": 4},
    )
    deliver(analytics, visit, *followup.published.bodies())

    # The call was made (and answered) today.
    today = datetime.datetime.now(ZONE).date()
    days = (
        (today - datetime.timedelta(days=1)).isoformat(),
        (today + datetime.timedelta(days=1)).isoformat(),
    )
    [line] = analytics.worker.agents(*days)["items"]
    assert (
        line["agent"],
        line["calls"],
        line["reached"],
        line["avg_satisfaction"],
    ) == ("ann", 1, 1, 4.0)
    # An agent sees their own line only.
    own = analytics.worker.agents(*days, agent="bob")
    assert [(line["agent"], line["calls"]) for line in own["items"]] == [
        ("bob", 0)
    ] and "team" not in own
    quality = analytics.worker.quality(*days)
    assert quality["answers"] == 1 and quality["by_channel"]["call"] == 1
    assert {item["item"]: item["average"] for item in quality["items"]} == {
        "doctor": 5.0,
        "nurse": 4.0,
    }
    assert analytics.worker.summary(*days)["avg_satisfaction"] == 4.0


def test_a_batch_of_visits_refreshes_the_days_of_the_consultations_they_convert(analytics, lookups):
    """The consultations were logged under other records (prospects), so only their phones
    lead to them; the batch looks them up for all its visits at once, in either way."""
    phones = [f"139000{i:05d}" for i in range(3)]
    deliver(analytics, *(canonical(factories.consultation(p, day=1), new_id()) for p in phones))
    analytics.worker.refresh_day_figures()  # day 1's partial cached: 3 consultations, none won
    assert analytics.worker.summary("2026-03-01", "2026-03-01")["conversions"] == 0

    deliver(
        analytics,
        *(
            canonical(factories.visit(f"M-{i}", phone=p, day=5), new_id())
            for i, p in enumerate(phones)
        ),
    )
    # Day 1 changed again since its refresh: the next tick defers it as still changing, the
    # tick after finds it quiet and recomputes it (services/analytics/pacing.py).
    analytics.worker.refresh_day_figures()
    analytics.worker.refresh_day_figures()

    assert analytics.db.day_changes.count_documents({"dirty": 1}) == 0
    assert analytics.worker.summary("2026-03-01", "2026-03-01")["conversions"] == 3
