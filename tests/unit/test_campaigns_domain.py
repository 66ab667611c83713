"""Campaign rules (docs/RULES.md § Campaigns), pure: segment selection, consent exclusion,
quiet hours, the per-day limit, holidays and the report, with exact expected values."""

import datetime
import zoneinfo

import holidays
import pytest

from services.campaigns import domain

TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
DAY = datetime.date(2026, 3, 20)  # the campaign's day


def at(day, hour=10, minute=0):
    return datetime.datetime(2026, 3, day, hour, minute, tzinfo=TZ)


def event(event_type, day, data, patient=None, event_id=None):
    body = dict(data)
    if patient is not None:
        body["patient"] = patient
    return {
        "event_id": event_id or f"{event_type}-{day}-{sorted(body.items())!r}",
        "event_type": event_type,
        "occurred_at": at(day).isoformat(),
        "data": body,
    }


def person(**fields):
    return {"mrn": "M1", "name": "王芳", "phone": "138-0013-8000", **fields}


def visit(day, visit_id, department="心内科", **patient_fields):
    return event(
        "PatientVisited",
        day,
        {
            "visit_id": visit_id,
            "department": department,
            "visit_type": "first",
            "visited_at": at(day, 9).isoformat(),
        },
        person(**patient_fields),
    )


def discharge(day, admission_id, department="骨科", disposition="home", **patient_fields):
    return event(
        "PatientDischarged",
        day,
        {
            "admission_id": admission_id,
            "department": department,
            "discharged_at": at(day, 16).isoformat(),
            "disposition": disposition,
        },
        person(**patient_fields),
    )


def view_of(*events):
    return domain.person_view(list(events))


# -- the person ----------------------------------------------------------------------------------
def test_the_view_takes_the_latest_statement_of_each_field_whatever_the_arrival_order():
    first = visit(2, "V1", marketing_consent=True, region="海淀区", birth_date="1960-05-01")
    later = visit(10, "V2", marketing_consent=False, phone="139-0000-0000")
    for events in ([first, later], [later, first]):
        view = view_of(*events)
        assert view["marketing_consent"] is False and view["phone"] == "139-0000-0000"
        assert view["region"] == "海淀区" and view["birth_date"] == "1960-05-01"
        assert [v[1] for v in view["visits"]] == ["心内科", "心内科"] and view[
            "segment"
        ] == "regular"


def test_a_cancelled_visit_no_longer_counts_and_a_deceased_discharge_is_kept_apart():
    cancelled = event("VisitCancelled", 3, {"visit_id": "V1"}, person())
    view = view_of(visit(2, "V1"), cancelled, visit(4, "V2"))
    assert len(view["visits"]) == 1 and view["segment"] == "one_time"
    gone = view_of(visit(2, "V1"), discharge(5, "A1", disposition="deceased"))
    assert gone["deceased"] is True and gone["discharges"] == []
    assert domain.matches(gone, {}, DAY, TZ) is False  # never targeted


def test_marketing_consent_is_false_unless_stated_true():
    assert view_of(visit(2, "V1"))["marketing_consent"] is False
    assert view_of(visit(2, "V1", marketing_consent=True))["marketing_consent"] is True


# -- the segment -----------------------------------------------------------------------------------
def test_days_since_visit_counts_local_days_to_the_campaigns_day_both_bounds_included():
    view = view_of(visit(13, "V1"))  # 7 days before March 20
    assert domain.matches(view, {"days_since_visit": {"min": 7, "max": 7}}, DAY, TZ)
    assert domain.matches(view, {"days_since_visit": {"min": 8}}, DAY, TZ) is False
    assert domain.matches(view, {"days_since_visit": {"max": 6}}, DAY, TZ) is False
    # the last visit is the one that counts
    assert (
        domain.matches(
            view_of(visit(2, "V0"), visit(13, "V1")), {"days_since_visit": {"min": 10}}, DAY, TZ
        )
        is False
    )
    # without a visit the criterion does not hold
    assert (
        domain.matches(view_of(discharge(13, "A1")), {"days_since_visit": {"max": 30}}, DAY, TZ)
        is False
    )


def test_the_department_restricts_every_criterion_to_its_own_visits_and_discharges():
    view = view_of(
        visit(2, "V1", "心内科"),
        visit(15, "V2", "骨科"),
        visit(16, "V3", "骨科"),
        discharge(10, "A1", "心内科"),
    )
    assert domain.matches(view, {"department": "心内科"}, DAY, TZ)
    assert domain.matches(view, {"department": "眼科"}, DAY, TZ) is False
    assert domain.matches(
        view, {"department": "心内科", "days_since_visit": {"min": 18, "max": 18}}, DAY, TZ
    )
    assert domain.matches(
        view, {"department": "骨科", "visit_count": {"min": 2, "max": 2}}, DAY, TZ
    )
    assert (
        domain.matches(view, {"department": "心内科", "visit_count": {"min": 2}}, DAY, TZ) is False
    )
    assert domain.matches(
        view, {"department": "心内科", "days_since_discharge": {"min": 10, "max": 10}}, DAY, TZ
    )
    assert (
        domain.matches(view, {"department": "骨科", "days_since_discharge": {"max": 100}}, DAY, TZ)
        is False
    )


def test_segment_age_band_and_region_accept_one_value_or_a_list():
    key = view_of(
        *[
            visit(day, f"V{day}", region="海淀区", birth_date="1950-03-21")
            for day in (1, 2, 3, 4, 5)
        ]
    )
    assert key["segment"] == "key"
    assert domain.matches(key, {"segment": "key"}, DAY, TZ)
    assert domain.matches(key, {"segment": ["regular", "key"]}, DAY, TZ)
    assert domain.matches(key, {"segment": "regular"}, DAY, TZ) is False
    # born 1950-03-21: 75 on March 20 2026 (the birthday is the day after)
    assert domain.matches(key, {"age_band": "60-79"}, DAY, TZ)
    assert domain.matches(key, {"age_band": "80+"}, DAY, TZ) is False
    assert domain.matches(key, {"region": ["朝阳区", "海淀区"]}, DAY, TZ)
    assert domain.matches(key, {"region": "朝阳区"}, DAY, TZ) is False
    assert domain.matches(
        view_of(visit(2, "V1")), {"age_band": "unknown"}, DAY, TZ
    )  # no birth date


def test_upside_down_ranges_and_unknown_codes_are_refused():
    assert domain.segment_errors(
        {"visit_count": {"min": 3, "max": 2}, "segment": ["vip"], "age_band": "5-9"}
    ) == {
        "segment.visit_count": ["min must not be greater than max."],
        "segment.segment": ["One or more of: prospect, registered, one_time, regular, key."],
        "segment.age_band": ["One or more of: 0-17, 18-39, 40-59, 60-79, 80+, unknown."],
    }
    assert domain.segment_errors({"visit_count": {"min": 2, "max": 2}}) == {}


# -- consent ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "fields, opted_out, expected",
    [
        ({"marketing_consent": True}, False, None),
        (
            {"marketing_consent": True},
            True,
            domain.NO_CONSENT,
        ),  # an opt-out wins over the stated consent
        ({}, False, domain.NO_CONSENT),  # not stated: no marketing consent
        ({"marketing_consent": False}, False, domain.NO_CONSENT),
        ({"marketing_consent": True, "contact_consent": False}, False, domain.NO_CONSENT),
        ({"marketing_consent": True, "phone": ""}, False, domain.NO_PHONE),
        (
            {"marketing_consent": False, "phone": ""},
            False,
            domain.NO_CONSENT,
        ),  # consent is the first reason
    ],
)
def test_who_is_excluded_and_why(fields, opted_out, expected):
    assert domain.exclusion(view_of(visit(2, "V1", **fields)), opted_out) == expected


def test_a_person_reported_deceased_after_the_targeting_is_skipped():
    view = view_of(
        visit(2, "V1", marketing_consent=True), discharge(18, "A1", disposition="deceased")
    )
    assert domain.exclusion(view, False) == domain.DECEASED


# -- quiet hours and the per-day limit -------------------------------------------------------------
@pytest.mark.parametrize(
    "hour, minute, quiet",
    [
        (20, 59, False),
        (21, 0, True),
        (23, 30, True),
        (0, 0, True),
        (7, 59, True),
        (8, 0, False),
        (12, 0, False),
    ],
)
def test_quiet_hours_wrap_midnight(hour, minute, quiet):
    assert domain.in_quiet_hours(at(20, hour, minute), TZ, "21:00", "08:00") is quiet


def test_quiet_hours_within_a_day_and_none():
    assert domain.in_quiet_hours(at(20, 12, 30), TZ, "12:00", "14:00")
    assert domain.in_quiet_hours(at(20, 14, 0), TZ, "12:00", "14:00") is False
    assert domain.in_quiet_hours(at(20, 3, 0), TZ, "00:00", "00:00") is False


def test_a_message_due_in_quiet_hours_waits_for_their_end():
    assert domain.next_allowed(at(20, 22, 15), TZ, "21:00", "08:00") == at(21, 8, 0)
    assert domain.next_allowed(at(21, 6, 0), TZ, "21:00", "08:00") == at(21, 8, 0)
    assert domain.next_allowed(at(20, 10, 0), TZ, "21:00", "08:00") == at(20, 10, 0)
    # quiet hours are the hospital's: 14:30 UTC is 22:30 in Shanghai
    utc = datetime.datetime(2026, 3, 20, 14, 30, tzinfo=datetime.UTC)
    assert domain.next_allowed(utc, TZ, "21:00", "08:00") == at(21, 8, 0)


def test_over_the_daily_limit_the_message_goes_the_next_day_after_quiet_hours():
    assert domain.next_day(at(20, 10, 0), TZ, "21:00", "08:00") == at(21, 8, 0)
    assert domain.next_day(at(20, 23, 0), TZ, "21:00", "08:00") == at(21, 8, 0)
    assert domain.next_day(at(20, 10, 0), TZ, "00:00", "00:00") == at(21, 0, 0)


def test_the_daily_limit_is_one_slot_per_message_per_local_day():
    assert domain.daily_slot_ids("p1", at(20, 10), TZ, 1) == ["p1|20260320|1"]
    assert domain.daily_slot_ids("p1", at(20, 10), TZ, 2) == ["p1|20260320|1", "p1|20260320|2"]
    # 17:00 UTC on March 20 is already March 21 in the hospital
    late = datetime.datetime(2026, 3, 20, 17, 0, tzinfo=datetime.UTC)
    assert domain.daily_slot_ids("p1", late, TZ, 1) == ["p1|20260321|1"]


# -- holidays, text, opt-out replies ---------------------------------------------------------------
def calendar(years):
    return dict(holidays.country_holidays("CN", years=years, language="en_US"))


def test_a_holiday_greeting_is_scheduled_on_the_holidays_first_day():
    assert domain.holiday_date(
        calendar, "spring_festival", datetime.date(2026, 1, 10)
    ) == datetime.date(2026, 2, 17)
    assert domain.holiday_date(
        calendar, "spring_festival", datetime.date(2026, 2, 18)
    ) == datetime.date(2027, 2, 6)
    assert domain.holiday_date(
        calendar, "national_day", datetime.date(2026, 3, 1)
    ) == datetime.date(2026, 10, 1)
    assert domain.holiday_date(calendar, "mid_autumn", datetime.date(2026, 3, 1)) == datetime.date(
        2026, 9, 25
    )
    assert (
        domain.send_time(datetime.date(2026, 2, 17), "09:00", TZ).isoformat()
        == "2026-02-17T09:00:00+08:00"
    )


def test_the_text_names_the_person_where_the_template_says_so():
    template = {"zh": "{name}您好，春节快乐！", "en": "Dear {name}, happy Spring Festival!"}
    assert domain.render(template, "zh", "王芳") == "王芳您好，春节快乐！"
    assert domain.render(template, "en", None) == "Dear , happy Spring Festival!"


@pytest.mark.parametrize(
    "text, opt_out",
    [
        ("TD", True),
        ("td", True),
        (" 退订。", True),
        ("T D", True),
        ("stop", True),
        ("谢谢", False),
        ("TD? 我想预约", False),
        ("", False),
    ],
)
def test_an_opt_out_reply_is_a_keyword_alone(text, opt_out):
    assert domain.is_opt_out(text, ["TD", "退订", "STOP"]) is opt_out


# -- the report ------------------------------------------------------------------------------------
def test_the_report_counts_each_status_and_the_returns_within_30_days():
    sent_ts = at(1, 10).timestamp()
    deliveries = [
        {
            "status": domain.SENT,
            "patient_id": "a",
            "reached_ts": sent_ts,
        },  # visits 30 days later: returned
        {
            "status": domain.SENT,
            "patient_id": "b",
            "reached_ts": sent_ts,
        },  # visited 31 days later: not
        {"status": domain.SENT, "patient_id": "c", "reached_ts": sent_ts},  # visited before: not
        {
            "status": domain.CALL_REQUESTED,
            "patient_id": "d",
            "reached_ts": sent_ts,
        },  # returned next day
        {
            "status": domain.NO_CONSENT,
            "patient_id": "e",
            "reached_ts": 0,
        },  # visits, never reached: not
        {"status": domain.NO_PHONE, "patient_id": "f", "reached_ts": 0},
        {"status": domain.PENDING, "patient_id": "g", "reached_ts": 0},
        {"status": domain.MERGED, "patient_id": "h", "reached_ts": 0},  # its survivor's counts
        {"status": domain.ERASED, "patient_id": "i", "reached_ts": 0},
    ]
    visits = {
        "a": [sent_ts + 30 * 86400],
        "b": [sent_ts + 31 * 86400],
        "c": [sent_ts - 60],
        "d": [sent_ts + 86400],
        "e": [sent_ts + 3600],
    }
    assert domain.report(deliveries, lambda pid: visits.get(pid, [])) == {
        "targeted": 8,
        "excluded_no_consent": 1,
        "excluded_no_phone": 1,
        "sent": 3,
        "calls_created": 1,
        "waiting": 1,
        "not_reached_other": 1,
        "returned_within_30d": 2,
    }


# -- the stream ------------------------------------------------------------------------------------
def test_campaign_events_reach_the_stream_with_ids_and_times_only():
    from shared import minimise

    sent = {
        "event_id": "e1",
        "event_type": "CampaignMessageSent",
        "occurred_at": at(20).isoformat(),
        "service": "campaigns",
        "patient_id": "p1",
        "data": {
            "campaign_id": "c1",
            "delivery_id": "c1|p1",
            "channel": "sms",
            "sent_at": at(20).isoformat(),
            "text": "王芳您好",
            "phone": "13800138000",
        },
    }
    assert minimise.minimal_copy(sent)["data"] == {
        "campaign_id": "c1",
        "delivery_id": "c1|p1",
        "channel": "sms",
        "sent_at": at(20).isoformat(),
    }
    call = dict(
        sent,
        event_type="CampaignCallRequested",
        data={
            "campaign_id": "c1",
            "delivery_id": "c1|p1",
            "channel": "call",
            "requested_at": "t",
            "campaign_name": "骨科康复",
            "script": {"zh": "您好"},
            "department": "骨科",
        },
    )
    assert set(minimise.minimal_copy(call)["data"]) == {
        "campaign_id",
        "delivery_id",
        "channel",
        "requested_at",
    }
    withdrawn = dict(
        sent,
        event_type="MarketingConsentWithdrawn",
        data={"via": "agent", "withdrawn_at": "t", "note": "王芳说不要"},
    )
    assert minimise.minimal_copy(withdrawn)["data"] == {"via": "agent", "withdrawn_at": "t"}
