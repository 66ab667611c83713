"""Each figure of PROTOCOLS.md § Analytics on hand-made facts, and order independence."""
import datetime
import zoneinfo

from hypothesis import given, settings
from hypothesis import strategies as st

from services.analytics import domain

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")


def at(day, hour=10):
    return datetime.datetime(2026, 3, day, hour, tzinfo=TZ).isoformat()


def visit(eid, day, mrn, phone, visit_type="first", source="friend_referral", department="心内科"):
    return {"event_id": eid, "event_type": "PatientVisited", "occurred_at": at(day), "patient_id": mrn,
            "data": {"patient": {"mrn": mrn, "phone": phone}, "visit_id": eid, "department": department,
                     "visit_type": visit_type, "source_channel": source, "visited_at": at(day)}}


def consultation(eid, day, phone, mrn=None):
    return {"event_id": eid, "event_type": "ConsultationLogged", "occurred_at": at(day), "patient_id": "x",
            "data": {"consultation_id": eid, "channel": "phone", "patient": {"phone": phone, **({"mrn": mrn} if mrn else {})}}}


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
    complaints = [c for c in entities.get("complaints", {}).values() if start <= c["received_date"] <= end]
    return domain.summary(
        visits=of("PatientVisited"), admissions=of("PatientAdmitted"), discharges=of("PatientDischarged"),
        consultations=of("ConsultationLogged"),
        candidate_visits=[f for f in facts.values() if f["type"] == "PatientVisited"],
        followups=[f for f in entities.get("followups", {}).values() if start <= f["due_date"] <= end],
        satisfactions=of("SatisfactionRecorded"), complaints=complaints,
        complaints_resolved_in_range=sum(start <= c.get("resolved_date", "") <= end for c in complaints))


EVENTS = [
    consultation("c1", 2, "13900000001"),                      # converts: visits on day 10
    consultation("c2", 2, "13900000002"),                      # never visits
    consultation("c3", 3, "13900000003", mrn="M3"),            # converts by MRN (other phone)
    consultation("c4", 3, "13900000004"),                      # visit 40 days later: too late
    visit("v1", 10, "M1", "13900000001"),
    visit("v2", 11, "M3", "13811111111", source="advertising"),
    visit("v3", 12, "M5", "13855555555", visit_type="return", source=None),
    visit("v4", 12, "M6", "13866666666", source="nearby", department="骨科"),
    {"event_id": "v5", "event_type": "PatientVisited", "occurred_at": "2026-04-12T10:00:00+08:00",
     "patient_id": "M4", "data": {"patient": {"mrn": "M4", "phone": "13900000004"}, "visit_id": "v5",
                                  "department": "心内科", "visit_type": "first",
                                  "visited_at": "2026-04-12T10:00:00+08:00"}},
    {"event_id": "f1", "event_type": "FollowUpScheduled", "occurred_at": at(2), "patient_id": "M1",
     "data": {"followup_id": "F1", "due_at": at(3), "department": "心内科"}},
    {"event_id": "f1c", "event_type": "FollowUpCompleted", "occurred_at": at(3), "patient_id": "M1",
     "data": {"followup_id": "F1", "due_at": at(3), "department": "心内科"}},
    {"event_id": "f2", "event_type": "FollowUpScheduled", "occurred_at": at(2), "patient_id": "M2",
     "data": {"followup_id": "F2", "due_at": at(4), "department": "心内科"}},
    {"event_id": "f3", "event_type": "FollowUpScheduled", "occurred_at": at(2), "patient_id": "M2",
     "data": {"followup_id": "F3", "due_at": at(4), "department": "心内科"}},
    {"event_id": "f3x", "event_type": "FollowUpCancelled", "occurred_at": at(3), "patient_id": "M2",
     "data": {"followup_id": "F3", "due_at": at(4), "department": "心内科"}},
    {"event_id": "s1", "event_type": "SatisfactionRecorded", "occurred_at": at(3), "patient_id": "M1",
     "data": {"followup_id": "F1", "satisfaction": 4, "department": "心内科"}},
    {"event_id": "s2", "event_type": "SatisfactionRecorded", "occurred_at": at(5), "patient_id": "M2",
     "data": {"followup_id": "F2", "satisfaction": 1, "department": "心内科"}},
]
COMPLAINT = {"complaint_id": "K1", "received_at": at(5, 9), "ack_due_at": at(6, 9),
             "resolve_due_at": at(7, 9), "department": "心内科", "category": "attitude"}
EVENTS += [
    {"event_id": "k1", "event_type": "ComplaintOpened", "occurred_at": at(5, 9), "data": COMPLAINT},
    {"event_id": "k2", "event_type": "ComplaintAcknowledged", "occurred_at": at(5, 12), "data": COMPLAINT},
    {"event_id": "k3", "event_type": "ComplaintResolved", "occurred_at": at(8, 9), "data": COMPLAINT},  # late
]


def test_each_figure_on_hand_made_data():
    result = figures(EVENTS)
    assert (result["visits"], result["first_visits"], result["return_visits"]) == (4, 3, 1)
    assert (result["consultations"], result["conversions"], result["conversion_rate"]) == (4, 2, 0.5)
    assert (result["followups_due"], result["followups_completed"], result["followup_completion_rate"]) == (2, 1, 0.5)
    assert result["avg_satisfaction"] == 2.5
    assert (result["complaints_opened"], result["complaints_resolved"]) == (1, 1)
    assert (result["ack_sla_rate"], result["resolve_sla_rate"]) == (1.0, 0.0)
    # first visits with a source: v1 friend_referral, v2 advertising, v4 nearby -> 2 / 3
    assert result["word_of_mouth_share"] == round(2 / 3, 4)
    assert result["by_source"] == [{"source_channel": "advertising", "first_visits": 1},
                                   {"source_channel": "friend_referral", "first_visits": 1},
                                   {"source_channel": "nearby", "first_visits": 1}]
    cardiology = next(d for d in result["by_department"] if d["department"] == "心内科")
    assert (cardiology["visits"], cardiology["first_visits"], cardiology["complaints_opened"]) == (3, 2, 1)
    assert cardiology["avg_satisfaction"] == 2.5


def test_breakdowns_by_channel_agent_region_age_and_complaint_category():
    events = [consultation("c1", 2, "13900000001"), consultation("c2", 2, "13900000002"),
              visit("v1", 10, "M1", "13900000001")]
    events[0]["data"].update(channel="wechat", agent_id="agent-1")
    events[1]["data"].update(channel="phone", agent_id="agent-1")
    events[2]["data"]["patient"].update(region="海淀区", birth_date="1950-06-01")
    result = figures(events + EVENTS[16:])
    assert result["conversion_by_channel"] == [
        {"channel": "phone", "consultations": 1, "conversions": 0, "conversion_rate": 0.0},
        {"channel": "wechat", "consultations": 1, "conversions": 1, "conversion_rate": 1.0}]
    assert result["conversion_by_agent"] == [
        {"agent_id": "agent-1", "consultations": 2, "conversions": 1, "conversion_rate": 0.5}]
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
        parts.append(domain.partial(
            visits=of("PatientVisited"), admissions=of("PatientAdmitted"), discharges=of("PatientDischarged"),
            consultations=of("ConsultationLogged"),
            candidate_visits=[f for f in facts.values() if f["type"] == "PatientVisited"],
            followups=[f for f in entities.get("followups", {}).values() if f["due_date"] == d],
            satisfactions=of("SatisfactionRecorded"), complaints=complaints,
            complaints_resolved_in_range=sum(c.get("resolved_date") == d
                                             for c in entities.get("complaints", {}).values())))
        day += datetime.timedelta(days=1)
    return parts


@settings(max_examples=40, deadline=None)
@given(st.permutations(EVENTS), st.sampled_from([("2026-03-01", "2026-03-31"), ("2026-03-02", "2026-03-11"),
                                                ("2026-03-12", "2026-04-30")]))
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
