"""Intake's pure rules: the patient projection, stage and segment."""

import datetime
import itertools
import random

from services.intake import domain
from shared.events import dump_event, load_event
from tests import factories

UTC = datetime.UTC


def recorded(*events):
    out = []
    for event in events:
        loaded = load_event(event)
        out.append(
            {
                "event_id": domain.canonical_event_id(event["source"], event["event_id"]),
                "event_type": event["event_type"],
                "occurred_at": loaded["occurred_at"],
                "data": dump_event(loaded)["data"],
            }
        )
    return out


def test_the_latest_occurred_at_wins_per_field_whatever_the_arrival_order():
    events = recorded(
        factories.registered("M1", day=1, region="西城区", gender="female"),
        factories.visit("M1", day=2, region="海淀区"),
        factories.visit("M1", day=5, visit_type="return", region="朝阳区"),
    )
    for order in itertools.permutations(events):
        view = domain.project(list(order))
        assert view["region"] == "朝阳区" and view["gender"] == "female"
        assert view["visit_count"] == 2


def test_contact_consent_defaults_to_true_and_keeps_the_last_statement():
    assert domain.project(recorded(factories.visit("M1")))["contact_consent"] is True
    events = recorded(
        factories.visit("M1", day=2, contact_consent=False), factories.visit("M1", day=4)
    )
    assert domain.project(events)["contact_consent"] is False


def test_visit_count_counts_distinct_visits():
    first = factories.visit("M1", visit_id="V1")
    same_visit_other_system = dict(factories.visit("M1", visit_id="V1"), source="his-2")
    assert domain.project(recorded(first, same_visit_other_system))["visit_count"] == 1


NOW = datetime.datetime(2026, 3, 20, tzinfo=UTC)


def stage_of(*events, now=NOW):
    return domain.stage(domain.project(recorded(*events))["facts"], now)


def test_stages():
    assert stage_of(factories.consultation("139 0000 1111")) == "prospect"
    assert stage_of(factories.registered("M1")) == "new"
    assert stage_of(factories.visit("M1")) == "new"
    assert stage_of(factories.visit("M1", day=2), factories.visit("M1", day=3)) == "returning"
    assert stage_of(factories.visit("M1", visit_type="return")) == "returning"
    assert stage_of(factories.admitted("M1", "A1", day=3)) == "inpatient"
    discharged = (factories.admitted("M1", "A1", day=3), factories.discharged("M1", "A1", day=8))
    assert stage_of(*discharged) == "recovering"
    assert stage_of(*discharged, now=NOW + datetime.timedelta(days=40)) == "recovered"
    readmitted = discharged + (factories.admitted("M1", "A2", day=12),)
    assert stage_of(*readmitted) == "inpatient"


def test_a_discharge_before_its_admission_still_ends_the_stay():
    events = recorded(
        factories.discharged("M1", "A1", day=8), factories.admitted("M1", "A1", day=3)
    )
    assert domain.stage(domain.project(events)["facts"], NOW) == "recovering"


def test_segments():
    def segment(*events):
        return domain.project(recorded(*events))["segment"]

    assert segment(factories.consultation("139 0000 1111")) == "prospect"
    assert segment(factories.registered("M1")) == "registered"
    assert segment(factories.visit("M1")) == "one_time"
    assert segment(*(factories.visit("M1") for _ in range(3))) == "regular"
    assert segment(*(factories.visit("M1") for _ in range(5))) == "key"
    assert segment(factories.admitted("M1", "A1"), factories.admitted("M1", "A2")) == "key"


def test_projection_is_order_independent_on_random_histories():
    rng = random.Random(7)
    for _ in range(30):
        events = recorded(
            *[
                rng.choice(
                    [
                        lambda: factories.visit(
                            "M1", day=rng.randint(1, 20), region=rng.choice("ABC")
                        ),
                        lambda: factories.admitted(
                            "M1", f"A{rng.randint(1, 3)}", day=rng.randint(1, 20)
                        ),
                        lambda: factories.discharged(
                            "M1", f"A{rng.randint(1, 3)}", day=rng.randint(1, 20)
                        ),
                    ]
                )()
                for _ in range(6)
            ]
        )
        shuffled = events[:]
        rng.shuffle(shuffled)
        assert domain.project(events) == domain.project(shuffled)


def test_canonical_ids_are_deterministic_per_source():
    assert domain.canonical_event_id("his", "1") == domain.canonical_event_id("his", "1")
    assert domain.canonical_event_id("his", "1") != domain.canonical_event_id("cc", "1")
