"""Analytics and the v1.1 corrections and merges (docs/EVENTS.md) on the real broker and store:
a cancelled visit, admission or discharge leaves every figure of its day, in either arrival
order and after its day's partial was cached; a merged person counts once."""

import pytest
from pymongo import MongoClient

from tests import factories
from tests.support import wait_until

pytestmark = pytest.mark.integration

MARCH = "from=2026-03-01&to=2026-03-31"


@pytest.fixture
def hospital(platform):
    platform.start_service("intake")
    platform.start_service("analytics")
    platform.start_gateway()
    token = platform.token()
    db = MongoClient(
        platform.database_uri("analytics"), serverSelectionTimeoutMS=3000, socketTimeoutMS=30000
    ).get_default_database()

    def summary(query=MARCH):
        status, body = platform.http("GET", f"/api/v1/analytics/summary?{query}", token=token)
        assert status == 200, body
        return body

    def settled(predicate, message):
        wait_until(lambda: predicate(summary()), timeout=60, interval=0.5, message=message)
        wait_until(lambda: platform.idle("analytics.inbound"), message="analytics idle")
        return summary()

    platform.summary, platform.settled, platform.analytics_db = summary, settled, db
    return platform


def test_a_cancelled_visit_leaves_its_day_in_either_order(hospital):
    baseline_visit = factories.visit(
        "VC0", day=4, phone="13700000000", department="骨科", visit_type="return"
    )
    hospital.publish(baseline_visit)
    before = hospital.settled(lambda s: s["visits"] == 1, "the baseline visit")
    assert before["unique_patients"] == 1

    # The visit first, its day's partial cached by a summary, then the cancel: back to before.
    counted = factories.visit("VC1", day=4, visit_id="V-late-cancel", phone="13700000001")
    hospital.publish(counted)
    during = hospital.settled(lambda s: s["visits"] == 2, "the visit counted")
    assert (during["first_visits"], during["unique_patients"], during["by_source"]) == (
        1,
        2,
        [{"source_channel": "friend_referral", "first_visits": 1}],
    )
    assert before["first_visits"] == 0 and before["by_source"] == []
    hospital.publish(factories.visit_cancelled("VC1", "V-late-cancel", day=4, phone="13700000001"))
    assert hospital.settled(lambda s: s["visits"] == 1, "the cancelled visit gone") == before

    # The cancel first: the visit, when it comes, never counts.
    hospital.publish(factories.visit_cancelled("VC2", "V-early-cancel", day=4, phone="13700000002"))
    wait_until(
        lambda: hospital.analytics_db.voids.count_documents({"_id": "visit|V-early-cancel"}) == 1,
        message="the cancel recorded",
    )
    hospital.publish(factories.visit("VC2", day=4, visit_id="V-early-cancel", phone="13700000002"))
    wait_until(
        lambda: (
            hospital.analytics_db.facts.count_documents({"ref": "visit|V-early-cancel", "void": 1})
            == 1
        ),
        message="the visit recorded as void",
    )
    wait_until(lambda: hospital.idle("analytics.inbound"), message="analytics idle")
    assert hospital.summary() == before
    assert (
        hospital.summary("from=2026-03-04&to=2026-03-04&department=%E5%BF%83%E5%86%85%E7%A7%91")[
            "visits"
        ]
        == 0
    )


def test_a_cancelled_discharge_stops_counting_and_a_later_discharge_counts(hospital):
    hospital.publish(factories.admitted("DC1", "A-DC1", day=3, phone="13700000011"))
    hospital.publish(factories.discharged("DC1", "A-DC1", day=8, phone="13700000011"))
    hospital.settled(
        lambda s: (s["admissions"], s["discharges"]) == (1, 1), "admission and discharge"
    )
    hospital.publish(
        factories.discharge_cancelled("DC1", "A-DC1", day=8, hour=20, phone="13700000011")
    )
    after = hospital.settled(lambda s: s["discharges"] == 0, "the discharge cancelled")
    assert after["admissions"] == 1 and all(d["discharges"] == 0 for d in after["by_department"])
    # The patient leaves again after the cancellation: that discharge counts, on its own day.
    hospital.publish(factories.discharged("DC1", "A-DC1", day=12, phone="13700000011"))
    again = hospital.settled(lambda s: s["discharges"] == 1, "the second discharge")
    assert hospital.summary("from=2026-03-12&to=2026-03-12")["discharges"] == 1
    assert hospital.summary("from=2026-03-08&to=2026-03-08")["discharges"] == 0
    assert again["admissions"] == 1

    # An admission cancelled (here before its events arrive) voids it and its discharge.
    hospital.publish(factories.admission_cancelled("DC2", "A-DC2", day=3, phone="13700000012"))
    wait_until(
        lambda: hospital.analytics_db.voids.count_documents({"_id": "admission|A-DC2"}) == 1,
        message="the cancel recorded",
    )
    hospital.publish(factories.admitted("DC2", "A-DC2", day=3, phone="13700000012"))
    hospital.publish(factories.discharged("DC2", "A-DC2", day=9, phone="13700000012"))
    wait_until(
        lambda: (
            hospital.analytics_db.facts.count_documents({"ref": "admission|A-DC2", "void": 1}) == 2
        ),
        message="both recorded as void",
    )
    wait_until(lambda: hospital.idle("analytics.inbound"), message="analytics idle")
    final = hospital.summary()
    assert (final["admissions"], final["discharges"]) == (1, 1)


def test_a_merged_person_counts_once(hospital):
    hospital.publish(factories.visit("MG-S", day=5, phone="13700000021"))
    hospital.publish(factories.visit("MG-R", day=6, phone="13700000022", visit_type="return"))
    hospital.settled(lambda s: (s["visits"], s["unique_patients"]) == (2, 2), "two patients")
    retired_id = hospital.analytics_db.facts.find_one({"mrn": "MG-R"})["patient_id"]
    survivor_id = hospital.analytics_db.facts.find_one({"mrn": "MG-S"})["patient_id"]

    hospital.publish(factories.merged("MG-S", "MG-R", day=9, phone="13700000021"))
    merged = hospital.settled(lambda s: s["unique_patients"] == 1, "one person")
    assert merged["visits"] == 2 and merged["first_visits"] == 1
    assert hospital.analytics_db.facts.find_one({"mrn": "MG-R"})["patient_id"] == survivor_id
    assert hospital.summary("from=2026-03-06&to=2026-03-06")["unique_patients"] == 1

    # An event of the retired id published before the merge and delivered after it is the
    # survivor's: a visit on another day of the range adds a visit, not a person.
    from shared.messaging import publish as publish_raw

    late = {
        "event_id": "late-retired-visit",
        "event_type": "PatientVisited",
        "schema_version": 1,
        "occurred_at": factories.at(7, 10),
        "recorded_at": factories.at(7, 10),
        "service": "intake",
        "source": "his",
        "source_event_id": "late",
        "patient_id": retired_id,
        "data": factories.visit("MG-R", day=7, phone="13700000022", visit_type="return")["data"],
    }
    publish_raw(hospital.amqp_uri, "", "analytics.inbound", late)
    final = hospital.settled(lambda s: s["visits"] == 3, "the late visit counted")
    assert final["unique_patients"] == 1
    assert (
        hospital.analytics_db.facts.find_one({"_id": "late-retired-visit"})["patient_id"]
        == survivor_id
    )
    assert hospital.summary("from=2026-03-07&to=2026-03-07")["unique_patients"] == 1


def test_a_conversion_is_undone_by_cancelling_its_visit(hospital):
    hospital.publish(factories.consultation("13700000031", day=2))
    hospital.publish(factories.consultation("13700000032", day=2))  # never visits
    hospital.publish(factories.visit("CV1", day=6, visit_id="V-CV1", phone="13700000031"))
    converted = hospital.settled(
        lambda s: (s["consultations"], s["conversions"]) == (2, 1), "one conversion"
    )
    assert converted["conversion_rate"] == 0.5
    assert (
        hospital.summary("from=2026-03-02&to=2026-03-02")["conversions"] == 1
    )  # the day's partial cached
    hospital.publish(factories.visit_cancelled("CV1", "V-CV1", day=6, phone="13700000031"))
    undone = hospital.settled(lambda s: s["conversions"] == 0, "the conversion undone")
    assert (undone["consultations"], undone["visits"], undone["conversion_rate"]) == (2, 0, 0.0)
    assert hospital.summary("from=2026-03-02&to=2026-03-02")["conversions"] == 0
