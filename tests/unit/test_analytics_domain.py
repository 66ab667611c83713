"""Each figure of docs/RULES.md § Analytics on hand-made facts, and order independence."""

import datetime
import zoneinfo

from hypothesis import given, settings
from hypothesis import strategies as st

from services.analytics import domain

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")


def at(day, hour=10):
    return datetime.datetime(2026, 3, day, hour, tzinfo=TZ).isoformat()


def visit(eid, day, mrn, phone, visit_type="first", source="friend_referral", department="心内科"):
    return {
        "event_id": eid,
        "event_type": "PatientVisited",
        "occurred_at": at(day),
        "patient_id": mrn,
        "data": {
            "patient": {"mrn": mrn, "phone": phone},
            "visit_id": eid,
            "department": department,
            "visit_type": visit_type,
            "source_channel": source,
            "visited_at": at(day),
        },
    }


def consultation(eid, day, phone, mrn=None):
    return {
        "event_id": eid,
        "event_type": "ConsultationLogged",
        "occurred_at": at(day),
        "patient_id": "x",
        "data": {
            "consultation_id": eid,
            "channel": "phone",
            "patient": {"phone": phone, **({"mrn": mrn} if mrn else {})},
        },
    }


def recorded(events):
    """Facts once per event id and entities folded, as the service stores them."""
    facts, entities = {}, {}
    for event in events:
        fact = domain.fact_of(event, TZ)
        if fact:
            facts.setdefault(fact["_id"], fact)
        entity = domain.entity_update(event, TZ)
        if entity:
            entities.setdefault(entity[0], {}).setdefault(entity[1], {}).update(entity[2])
    return facts, entities


def figures(events, start="2026-03-01", end="2026-03-31"):
    facts, entities = recorded(events)
    in_range = [f for f in facts.values() if start <= f["date"] <= end]
    of = lambda kind: [f for f in in_range if f["type"] == kind]  # noqa: E731
    complaints = [
        c for c in entities.get("complaints", {}).values() if start <= c["received_date"] <= end
    ]
    return domain.summary(
        visits=of("PatientVisited"),
        admissions=of("PatientAdmitted"),
        discharges=of("PatientDischarged"),
        consultations=of("ConsultationLogged"),
        candidate_visits=[f for f in facts.values() if f["type"] == "PatientVisited"],
        followups=[
            f for f in entities.get("followups", {}).values() if start <= f["due_date"] <= end
        ],
        satisfactions=of("SatisfactionRecorded"),
        complaints=complaints,
        complaints_resolved_in_range=sum(
            start <= c.get("resolved_date", "") <= end for c in complaints
        ),
    )


EVENTS = [
    consultation("c1", 2, "13900000001"),  # converts: visits on day 10
    consultation("c2", 2, "13900000002"),  # never visits
    consultation("c3", 3, "13900000003", mrn="M3"),  # converts by MRN (other phone)
    consultation("c4", 3, "13900000004"),  # visit 40 days later: too late
    visit("v1", 10, "M1", "13900000001"),
    visit("v2", 11, "M3", "13811111111", source="advertising"),
    visit("v3", 12, "M5", "13855555555", visit_type="return", source=None),
    visit("v4", 12, "M6", "13866666666", source="nearby", department="骨科"),
    {
        "event_id": "v5",
        "event_type": "PatientVisited",
        "occurred_at": "2026-04-12T10:00:00+08:00",
        "patient_id": "M4",
        "data": {
            "patient": {"mrn": "M4", "phone": "13900000004"},
            "visit_id": "v5",
            "department": "心内科",
            "visit_type": "first",
            "visited_at": "2026-04-12T10:00:00+08:00",
        },
    },
    {
        "event_id": "f1",
        "event_type": "FollowUpScheduled",
        "occurred_at": at(2),
        "patient_id": "M1",
        "data": {"followup_id": "F1", "due_at": at(3), "department": "心内科"},
    },
    {
        "event_id": "f1c",
        "event_type": "FollowUpCompleted",
        "occurred_at": at(3),
        "patient_id": "M1",
        "data": {"followup_id": "F1", "due_at": at(3), "department": "心内科"},
    },
    {
        "event_id": "f2",
        "event_type": "FollowUpScheduled",
        "occurred_at": at(2),
        "patient_id": "M2",
        "data": {"followup_id": "F2", "due_at": at(4), "department": "心内科"},
    },
    {
        "event_id": "f3",
        "event_type": "FollowUpScheduled",
        "occurred_at": at(2),
        "patient_id": "M2",
        "data": {"followup_id": "F3", "due_at": at(4), "department": "心内科"},
    },
    {
        "event_id": "f3x",
        "event_type": "FollowUpCancelled",
        "occurred_at": at(3),
        "patient_id": "M2",
        "data": {"followup_id": "F3", "due_at": at(4), "department": "心内科"},
    },
    {
        "event_id": "s1",
        "event_type": "SatisfactionRecorded",
        "occurred_at": at(3),
        "patient_id": "M1",
        "data": {"followup_id": "F1", "satisfaction": 4, "department": "心内科"},
    },
    {
        "event_id": "s2",
        "event_type": "SatisfactionRecorded",
        "occurred_at": at(5),
        "patient_id": "M2",
        "data": {"followup_id": "F2", "satisfaction": 1, "department": "心内科"},
    },
]
COMPLAINT = {
    "complaint_id": "K1",
    "received_at": at(5, 9),
    "ack_due_at": at(6, 9),
    "resolve_due_at": at(7, 9),
    "department": "心内科",
    "category": "attitude",
}
EVENTS += [
    {"event_id": "k1", "event_type": "ComplaintOpened", "occurred_at": at(5, 9), "data": COMPLAINT},
    {
        "event_id": "k2",
        "event_type": "ComplaintAcknowledged",
        "occurred_at": at(5, 12),
        "data": COMPLAINT,
    },
    {
        "event_id": "k3",
        "event_type": "ComplaintResolved",
        "occurred_at": at(8, 9),
        "data": COMPLAINT,
    },  # late
]


def test_each_figure_on_hand_made_data():
    result = figures(EVENTS)
    assert (result["visits"], result["first_visits"], result["return_visits"]) == (4, 3, 1)
    assert (result["consultations"], result["conversions"], result["conversion_rate"]) == (
        4,
        2,
        0.5,
    )
    assert (
        result["followups_due"],
        result["followups_completed"],
        result["followup_completion_rate"],
    ) == (2, 1, 0.5)
    assert result["avg_satisfaction"] == 2.5
    assert (result["complaints_opened"], result["complaints_resolved"]) == (1, 1)
    assert (result["ack_sla_rate"], result["resolve_sla_rate"]) == (1.0, 0.0)
    # first visits with a source: v1 friend_referral, v2 advertising, v4 nearby -> 2 / 3
    assert result["word_of_mouth_share"] == round(2 / 3, 4)
    assert result["by_source"] == [
        {"source_channel": "advertising", "first_visits": 1},
        {"source_channel": "friend_referral", "first_visits": 1},
        {"source_channel": "nearby", "first_visits": 1},
    ]
    cardiology = next(d for d in result["by_department"] if d["department"] == "心内科")
    assert (cardiology["visits"], cardiology["first_visits"], cardiology["complaints_opened"]) == (
        3,
        2,
        1,
    )
    assert cardiology["avg_satisfaction"] == 2.5


def test_breakdowns_by_channel_agent_region_age_and_complaint_category():
    events = [
        consultation("c1", 2, "13900000001"),
        consultation("c2", 2, "13900000002"),
        visit("v1", 10, "M1", "13900000001"),
    ]
    events[0]["data"].update(channel="wechat", agent_id="agent-1")
    events[1]["data"].update(channel="phone", agent_id="agent-1")
    events[2]["data"]["patient"].update(region="海淀区", birth_date="1950-06-01")
    result = figures(events + EVENTS[16:])
    assert result["conversion_by_channel"] == [
        {"channel": "phone", "consultations": 1, "conversions": 0, "conversion_rate": 0.0},
        {"channel": "wechat", "consultations": 1, "conversions": 1, "conversion_rate": 1.0},
    ]
    assert result["conversion_by_agent"] == [
        {"agent_id": "agent-1", "consultations": 2, "conversions": 1, "conversion_rate": 0.5}
    ]
    assert result["by_region"] == [{"region": "海淀区", "visits": 1, "first_visits": 1}]
    assert result["by_age_band"] == [{"age_band": "60-79", "visits": 1}]
    assert result["top_complaint_categories"] == [{"category": "attitude", "complaints": 1}]


def test_age_bands():
    import datetime as dt

    assert domain.age_band("2010-03-02", dt.date(2026, 3, 1)) == "0-17"
    assert domain.age_band("2008-03-01", dt.date(2026, 3, 1)) == "18-39"
    assert domain.age_band(None, dt.date(2026, 3, 1)) == "unknown"
    assert domain.age_band("1940-01-01", dt.date(2026, 3, 1)) == "80+"


def test_empty_ranges_give_null_rates():
    result = figures(EVENTS, "2025-01-01", "2025-01-31")
    assert result["conversion_rate"] is None and result["avg_satisfaction"] is None
    assert result["word_of_mouth_share"] is None and result["ack_sla_rate"] is None


@settings(max_examples=60, deadline=None)
@given(st.permutations(EVENTS), st.lists(st.sampled_from(EVENTS), max_size=10))
def test_shuffling_and_duplicating_never_changes_a_figure(order, duplicates):
    assert figures(list(order) + duplicates) == figures(EVENTS)


def day_partials(events, start, end):
    """What the service stores: one partial per day, each over that day's facts only."""
    facts, entities = recorded(events)
    day, last = datetime.date.fromisoformat(start), datetime.date.fromisoformat(end)
    parts = []
    while day <= last:
        d = day.isoformat()
        of = lambda kind: [f for f in facts.values() if f["type"] == kind and f["date"] == d]  # noqa: E731
        complaints = [c for c in entities.get("complaints", {}).values() if c["received_date"] == d]
        parts.append(
            domain.partial(
                visits=of("PatientVisited"),
                admissions=of("PatientAdmitted"),
                discharges=of("PatientDischarged"),
                consultations=of("ConsultationLogged"),
                candidate_visits=[f for f in facts.values() if f["type"] == "PatientVisited"],
                followups=[f for f in entities.get("followups", {}).values() if f["due_date"] == d],
                satisfactions=of("SatisfactionRecorded"),
                complaints=complaints,
                complaints_resolved_in_range=sum(
                    c.get("resolved_date") == d for c in entities.get("complaints", {}).values()
                ),
            )
        )
        day += datetime.timedelta(days=1)
    return parts


@settings(max_examples=40, deadline=None)
@given(
    st.permutations(EVENTS),
    st.sampled_from(
        [("2026-03-01", "2026-03-31"), ("2026-03-02", "2026-03-11"), ("2026-03-12", "2026-04-30")]
    ),
)
def test_merged_day_partials_give_the_figures_of_the_whole_range(order, window):
    start, end = window
    merged = domain.finish(domain.merge(day_partials(list(order), start, end)))
    whole = figures(EVENTS, start, end)
    # (The whole-range helper counts resolutions among the range's complaints, the days by the day
    # of resolution, as the service does: the same in these windows.)
    assert merged == whole


def test_partials_survive_json_as_the_store_keeps_them():
    import json

    parts = day_partials(EVENTS, "2026-03-01", "2026-03-31")
    again = [json.loads(json.dumps(p, ensure_ascii=False)) for p in parts]
    assert domain.finish(domain.merge(again)) == domain.finish(domain.merge(parts))


def test_stale_days_are_read_in_runs_of_at_most_a_week():
    """A cold range is read a run of consecutive days at a time, a week at most, so memory
    stays bounded by a week's facts whatever the range."""
    from services.analytics.service import RUN_DAYS, _runs

    first = datetime.date(2025, 1, 1)
    days = [first + datetime.timedelta(days=i) for i in range(20)] + [datetime.date(2025, 3, 1)]
    runs = _runs(days)
    assert runs[0] == (first, first + datetime.timedelta(days=RUN_DAYS - 1))
    assert runs[-1] == (datetime.date(2025, 3, 1), datetime.date(2025, 3, 1))
    assert [day for start, end in runs for day in days if start <= day <= end] == days
    assert all((end - start).days < RUN_DAYS for start, end in runs)


# -- v1.1: corrections and merges (docs/EVENTS.md) ------------------------------------------------
def admission(eid, admission_id, day, patient_id="P1"):
    return {
        "event_id": eid,
        "event_type": "PatientAdmitted",
        "occurred_at": at(day, 9),
        "patient_id": patient_id,
        "data": {
            "patient": {"mrn": patient_id},
            "admission_id": admission_id,
            "department": "普外科",
            "admitted_at": at(day, 9),
        },
    }


def discharge(eid, admission_id, day, hour=16, patient_id="P1"):
    return {
        "event_id": eid,
        "event_type": "PatientDischarged",
        "occurred_at": at(day, hour),
        "patient_id": patient_id,
        "data": {
            "patient": {"mrn": patient_id},
            "admission_id": admission_id,
            "department": "普外科",
            "discharged_at": at(day, hour),
            "disposition": "home",
        },
    }


def correction(eid, kind, field, ident, day, hour=20):
    return {
        "event_id": eid,
        "event_type": kind,
        "occurred_at": at(day, hour),
        "patient_id": "P1",
        "data": {"patient": {"mrn": "P1"}, field: ident},
    }


def merged(eid, survivor, retired, day=20):
    return {
        "event_id": eid,
        "event_type": "PatientsMerged",
        "occurred_at": at(day),
        "patient_id": survivor,
        "data": {
            "patient": {"mrn": survivor},
            "merged_mrn": "old-" + retired,
            "merged_patient_id": retired,
        },
    }


def stored_v11(events):
    """What the service's store holds once every event is in, whatever their order: the facts,
    the voids (latest DischargeCancelled time) and the people documents with their aliases,
    each fact voided and re-pointed as the service does."""
    facts, voids, docs = {}, {}, {}
    for event in events:
        fact = domain.fact_of(event, TZ)
        if fact:
            facts.setdefault(fact["_id"], fact)
        void = domain.void_of(event)
        if void:
            key, until = void
            if until is None or until > voids.get(key, {}).get("until_ts", -1):
                voids[key] = {"until_ts": until} if until is not None else {}
        merge = domain.merge_of(event)
        if merge:
            docs.setdefault(merge[0], {"_id": merge[0]})["alias_of"] = merge[1]
    rule = domain.void_rule(voids)
    people = domain.People(docs.values())
    for fact in facts.values():
        fact["patient_id"] = people.person(fact["patient_id"])
        if domain.is_void(fact, rule):
            fact["void"] = 1
        section, key, entry = domain.person_entry(fact)
        docs.setdefault(fact["patient_id"], {"_id": fact["patient_id"]}).setdefault(section, {})[
            key
        ] = entry
    return [f for f in facts.values() if not f.get("void")], domain.People(docs.values())


def v11_figures(events, start="2026-03-01", end="2026-03-31", department=None):
    """The service's figures: one partial per day (the person's previous visits from the people
    documents), merged, finished with the range's first day."""
    facts, people = stored_v11(events)
    if department:
        facts = [f for f in facts if f.get("department") == department]
    visits = [f for f in facts if f["type"] == "PatientVisited"]
    previous = {
        v["_id"]: people.previous_visit_day(v, same_department=bool(department)) for v in visits
    }
    index = domain.VisitIndex(visits, people)
    day, last, parts = datetime.date.fromisoformat(start), datetime.date.fromisoformat(end), []
    while day <= last:
        of = lambda kind: [f for f in facts if f["type"] == kind and f["date"] == day.isoformat()]  # noqa: E731
        parts.append(
            domain.partial(
                visits=of("PatientVisited"),
                admissions=of("PatientAdmitted"),
                discharges=of("PatientDischarged"),
                consultations=of("ConsultationLogged"),
                candidate_visits=index,
                followups=[],
                satisfactions=[],
                complaints=[],
                complaints_resolved_in_range=0,
                previous_days=previous,
            )
        )
        day += datetime.timedelta(days=1)
    return domain.finish(domain.merge(parts), start)


def test_the_v11_types_are_no_fact_of_any_figure():
    for event in (
        correction("x1", "VisitCancelled", "visit_id", "V1", 2),
        correction("x2", "AdmissionCancelled", "admission_id", "A1", 2),
        correction("x3", "DischargeCancelled", "admission_id", "A1", 2),
        merged("x4", "S", "R"),
        {"event_id": "x5", "event_type": "AppointmentScheduled", "occurred_at": at(2), "data": {}},
        {"event_id": "x6", "event_type": "AppointmentWithdrawn", "occurred_at": at(2), "data": {}},
        {"event_id": "x7", "event_type": "AppointmentMissed", "occurred_at": at(2), "data": {}},
    ):
        assert domain.fact_of(event, TZ) is None and domain.entity_update(event, TZ) is None
    assert (
        v11_figures(
            [
                visit("v1", 2, "M1", "1"),
                correction("x1", "VisitCancelled", "visit_id", "nope", 2),
                merged("m", "M1", "M9"),
            ]
        )["visits"]
        == 1
    )


def test_void_keys_and_refs():
    fact = domain.fact_of(discharge("d1", "A1", 8), TZ)
    assert fact["ref"] == "admission|A1" and domain.void_keys(fact) == [
        "admission|A1",
        "discharge|A1",
    ]
    assert domain.void_keys(domain.fact_of(visit("v1", 2, "M1", "1"), TZ)) == ["visit|v1"]
    assert domain.void_of(correction("x", "DischargeCancelled", "admission_id", "A1", 8, 20)) == (
        "discharge|A1",
        datetime.datetime(2026, 3, 8, 20, tzinfo=TZ).timestamp(),
    )
    assert (
        domain.ref_of_void("discharge|A1") == "admission|A1"
        and domain.ref_of_void("visit|V") == "visit|V"
    )
    assert domain.void_keys({"type": "PatientVisited"}) == []  # recorded before v1.1: no ref


def test_a_discharge_cancel_voids_the_discharges_up_to_its_time_only():
    rule = domain.void_rule(
        {"discharge|A1": {"until_ts": datetime.datetime(2026, 3, 8, 20, tzinfo=TZ).timestamp()}}
    )
    assert domain.is_void(domain.fact_of(discharge("d1", "A1", 8, 16), TZ), rule)
    assert domain.is_void(
        domain.fact_of(discharge("d1", "A1", 8, 20), TZ), rule
    )  # the same moment: void
    assert not domain.is_void(
        domain.fact_of(discharge("d2", "A1", 9, 10), TZ), rule
    )  # a later discharge counts
    assert not domain.is_void(domain.fact_of(discharge("d3", "A2", 8, 16), TZ), rule)
    assert not domain.is_void(
        domain.fact_of(admission("a1", "A1", 3), TZ), rule
    )  # the admission stands
    cancelled = domain.void_rule({"admission|A1": {}})
    assert domain.is_void(domain.fact_of(admission("a1", "A1", 3), TZ), cancelled)
    assert domain.is_void(
        domain.fact_of(discharge("d2", "A1", 30), TZ), cancelled
    )  # any discharge of it


EVENTS_V11 = [
    visit("v1", 2, "M1", "13900000001"),
    visit("v2", 2, "M2", "13900000002", visit_type="return", source="nearby", department="骨科"),
    correction("x1", "VisitCancelled", "visit_id", "v2", 2),
    admission("a1", "A1", 3),
    discharge("d1", "A1", 8, 16),
    correction("x2", "DischargeCancelled", "admission_id", "A1", 8, 20),
    discharge("d2", "A1", 10, 9),  # the patient left again: counts
    admission("a2", "A2", 4),
    discharge("d3", "A2", 6),
    correction("x3", "AdmissionCancelled", "admission_id", "A2", 7),
    correction(
        "x4", "DischargeCancelled", "admission_id", "A1", 8, 18
    ),  # an earlier cancel: changes nothing
]


def test_corrections_void_their_facts_in_every_figure():
    result = v11_figures(EVENTS_V11)
    assert (result["visits"], result["first_visits"], result["return_visits"]) == (1, 1, 0)
    assert (result["admissions"], result["discharges"], result["unique_patients"]) == (1, 1, 1)
    assert result["by_source"] == [{"source_channel": "friend_referral", "first_visits": 1}]
    assert [d["department"] for d in result["by_department"]] == ["心内科", "普外科"]
    assert result["word_of_mouth_share"] == 1.0
    assert v11_figures(EVENTS_V11, "2026-03-10", "2026-03-10")["discharges"] == 1
    assert v11_figures(EVENTS_V11, "2026-03-08", "2026-03-08")["discharges"] == 0


@settings(max_examples=60, deadline=None)
@given(st.permutations(EVENTS_V11), st.lists(st.sampled_from(EVENTS_V11), max_size=6))
def test_corrections_give_the_same_figures_in_any_order(order, duplicates):
    assert v11_figures(list(order) + duplicates) == v11_figures(EVENTS_V11)


def test_unique_patients_count_each_person_once_per_range():
    events = [
        visit("v1", 2, "M1", "1"),
        visit("v2", 10, "M1", "1", visit_type="return"),
        visit("v3", 10, "M1", "1", visit_type="return", department="骨科"),  # the same day, again
        visit("v4", 12, "M2", "2"),
    ]
    assert v11_figures(events)["unique_patients"] == 2
    assert v11_figures(events, "2026-03-05", "2026-03-31")["unique_patients"] == 2  # M1 by day 10
    assert v11_figures(events, "2026-03-02", "2026-03-09")["unique_patients"] == 1
    assert v11_figures(events, "2026-03-11", "2026-03-31")["unique_patients"] == 1
    assert (
        v11_figures(events, "2026-03-10", "2026-03-10", department="骨科")["unique_patients"] == 1
    )
    assert (
        v11_figures(events, "2026-03-01", "2026-03-31", department="心内科")["unique_patients"] == 2
    )
    # Cancelling M1's first visit makes day 10 its first: still once in the month.
    cancelled = events + [correction("x", "VisitCancelled", "visit_id", "v1", 3)]
    assert v11_figures(cancelled)["unique_patients"] == 2
    assert v11_figures(cancelled, "2026-03-10", "2026-03-31")["visits"] == 3


def test_a_merge_makes_two_records_one_person_and_follows_chains():
    events = [
        visit("v1", 2, "R", "13900000001"),
        visit("v2", 5, "S", "13900000002", visit_type="return"),
        visit("v3", 6, "T", "13900000003"),
    ]
    assert v11_figures(events)["unique_patients"] == 3
    chained = events + [merged("m1", "S", "R"), merged("m2", "T", "S")]
    result = v11_figures(chained)
    assert (result["visits"], result["unique_patients"]) == (3, 1)
    assert v11_figures(chained, "2026-03-05", "2026-03-31")["unique_patients"] == 1
    for order in (chained[::-1], chained[3:] + chained[:3]):
        assert v11_figures(order) == result


def test_a_merged_person_s_consultation_converts_by_the_survivor_s_visit():
    events = [consultation("c1", 2, "13900000001"), visit("v1", 10, "S", "13800000009")]
    events[0]["patient_id"] = "R"
    events[1]["patient_id"] = "S"
    assert v11_figures(events)["conversions"] == 0  # other phone, other MRN
    assert v11_figures(events + [merged("m", "S", "R")])["conversions"] == 1
    cancelled = events + [
        merged("m", "S", "R"),
        correction("x", "VisitCancelled", "visit_id", "v1", 11),
    ]
    assert (v11_figures(cancelled)["consultations"], v11_figures(cancelled)["conversions"]) == (
        1,
        0,
    )


def test_people_previous_and_following_visits():
    visits = [
        domain.fact_of(visit(f"v{i}", day, "M1", "1", department=dep), TZ)
        for i, (day, dep) in enumerate([(2, "A"), (5, "B"), (9, "A"), (9, "B")])
    ]
    docs = {
        "_id": "M1",
        "v": {},
        "c": {"c1": {"id": "c1", "day": 20260301, "ts": visits[0]["ts"] - 86400}},
    }
    for fact in visits:
        section, key, entry = domain.person_entry(fact)
        docs[section][key] = entry
    docs["v"]["v1"]["void"] = 1  # cancelled
    people = domain.People([docs, {"_id": "OLD", "alias_of": "M1"}])
    assert [people.previous_visit_day(v) for v in visits] == [
        "",
        "2026-03-02",
        "2026-03-02",
        "2026-03-09",
    ]
    assert [people.previous_visit_day(v, same_department=True) for v in visits] == [
        "",
        "",
        "2026-03-02",
        "",
    ]
    assert people.following_visit_days(visits[0]) == {"2026-03-09"}
    assert people.following_visit_days(visits[1]) == {"2026-03-09"}
    assert people.following_visit_days(visits[3]) == set()
    assert people.consultation_days(visits[0], 30 * 86400) == {"2026-03-01"}
    assert people.consultation_days(visits[0], 3600) == set()
    assert people.person("OLD") == "M1" and people.visit_times("OLD") == [
        visits[i]["ts"] for i in (0, 2, 3)
    ]
    far = dict(visits[3], date="2029-03-12", ts=visits[3]["ts"] + (3 * 366 + 1) * 86400, _id="v9")
    assert people.previous_visit_day(far) == ""  # beyond any range: before every first day
    assert (
        people.previous_visit_day(dict(far, date="2029-03-11", ts=far["ts"] - 86400))
        == "2026-03-09"
    )
    assert domain.People([{"_id": "A", "alias_of": "B"}, {"_id": "B", "alias_of": "A"}]).person(
        "A"
    ) in ("A", "B")


def test_entry_keys_are_safe_field_names():
    assert domain.entry_key("3f2a-9c_x") == "3f2a-9c_x"
    for unsafe in ("a.b", "$x", "", "x" * 200):
        key = domain.entry_key(unsafe)
        assert key.startswith("~") and "." not in key and len(key) == 41
