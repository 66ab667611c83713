"""v1.1 corrections: which events a cancellation voids (shared/corrections.py), and how
intake's record and the conflicting-duplicate rule follow from it."""

import itertools

from services.intake import domain
from shared.corrections import Voids, effective
from tests import factories
from tests.unit.test_intake_domain import recorded


def test_a_cancelled_visit_counts_nowhere_whatever_the_arrival_order():
    first = factories.visit("M1", day=2, visit_id="V1")
    second = factories.visit("M1", day=5, visit_id="V2", visit_type="return")
    cancel = factories.visit_cancelled("M1", "V2", day=5, hour=20)
    for order in itertools.permutations(recorded(first, second, cancel)):
        view = domain.project(list(order))
        assert view["visit_count"] == 1
        assert view["segment"] == "one_time"
        assert view["facts"]["return_visit"] is False  # the return visit was the cancelled one


def test_a_cancel_that_arrives_first_voids_the_visit_when_it_comes():
    events = recorded(
        factories.visit_cancelled("M1", "V1", day=1), factories.visit("M1", day=2, visit_id="V1")
    )
    assert effective(events) == []  # even though the cancel "occurred" before the visit


def test_an_admission_cancelled_voids_the_admission_and_its_discharge():
    events = recorded(
        factories.admitted("M1", "A1", day=3),
        factories.discharged("M1", "A1", day=8),
        factories.admission_cancelled("M1", "A1", day=9),
    )
    view = domain.project(events)
    assert view["admission_count"] == 0
    assert view["facts"]["last_admitted_at"] is None and view["facts"]["last_discharged_at"] is None
    # Known to the hospital by MRN, with nothing left that counts: registered, not a prospect.
    assert domain.stage(view["facts"], view["last_seen_at"]) == "new"
    assert view["segment"] == "registered"


def test_a_cancelled_discharge_makes_an_inpatient_again_until_a_later_discharge():
    admitted = factories.admitted("M1", "A1", day=3)
    discharged = factories.discharged("M1", "A1", day=8)
    cancel = factories.discharge_cancelled("M1", "A1", day=8, hour=20)
    events = recorded(admitted, discharged, cancel)
    view = domain.project(events)
    assert view["facts"]["last_discharged_at"] is None
    assert domain.stage(view["facts"], view["last_seen_at"]) == "inpatient"
    again = recorded(factories.discharged("M1", "A1", day=12))
    view = domain.project(events + again)
    assert view["facts"]["last_discharged_at"].day == 12
    assert domain.stage(view["facts"], view["last_seen_at"]) == "recovering"


def test_a_cancelled_deceased_discharge_is_forgotten_and_voids_keep_the_latest_cancel():
    voids = Voids(
        recorded(
            factories.discharge_cancelled("M1", "A1", day=8),
            factories.discharge_cancelled("M1", "A1", day=10),
        )
    )
    assert voids.voids(recorded(factories.discharged("M1", "A1", day=9))[0])
    assert not voids.voids(recorded(factories.discharged("M1", "A1", day=11))[0])
    assert not voids.voids(recorded(factories.discharged("M1", "A2", day=9))[0])
    view = domain.project(
        recorded(
            factories.discharged("M1", "A1", day=8, disposition="deceased"),
            factories.discharge_cancelled("M1", "A1", day=8, hour=20),
        )
    )
    assert view["deceased"] is False


def test_a_merge_lists_the_retired_mrn_and_states_consent_defaults():
    view = domain.project(recorded(factories.visit("M1", day=2), factories.merged("M1", "M9")))
    assert view["merged_mrns"] == ["M9"]
    assert view["marketing_consent"] is False and view["contact_consent"] is True


def test_a_conflicting_duplicate_is_told_apart_from_an_exact_one():
    first = factories.visit("M1", day=2, event_id="E1")
    stored = recorded(first)[0]
    stored["data"] = dict(stored["data"], merged_patient_id="ignored")  # intake's own addition
    same = recorded(first)[0]
    assert not domain.conflicts_with(stored, same)
    other = recorded(dict(first, data=dict(first["data"], department="骨科")))[0]
    assert domain.conflicts_with(stored, other)
    later = recorded(dict(first, occurred_at=factories.at(3)))[0]
    assert domain.conflicts_with(stored, later)
