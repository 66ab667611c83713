"""CampaignsService's entrypoints on its real store (in memory): people from intake's events,
campaigns targeted and sent once per person by the timer, consent and opt-outs."""

import datetime

import pytest

from services.campaigns.service import CampaignsService
from shared.errors import BadRequest, InvalidMessage
from tests import factories
from tests.service.fakes import canonical, inbound, new_id

TEMPLATE = {
    "zh": "{name}您好，心内科义诊周邀请您参加。回TD退订",
    "en": "Dear {name}, join our heart clinic week.",
}
NO_QUIET_HOURS = {
    "quiet_start": "00:00",
    "quiet_end": "00:00",
}  # equal: the timer may send any time


@pytest.fixture
def campaigns(make_service):
    return make_service(CampaignsService, config=NO_QUIET_HOURS)


def person(campaigns, mrn, phone="13700000001", marketing_consent=True):
    """A person who visited 心内科, known to campaigns from intake's event; returns the id."""
    patient_id = new_id()
    event = factories.visit(
        mrn, department="心内科", phone=phone, marketing_consent=marketing_consent
    )
    if phone is None:
        del event["data"]["patient"]["phone"]
    campaigns.worker.handle_event(inbound(canonical(event, patient_id)))
    return patient_id


def create(campaigns, channel="sms", **overrides):
    due = datetime.datetime.now(datetime.UTC) - datetime.timedelta(minutes=1)
    fields = {
        "name": "义诊周",
        "segment": {"department": "心内科"},
        "channel": channel,
        "template": TEMPLATE,
        "send_at": due.isoformat(),
        "created_by": "zhou.min",
        **overrides,
    }
    return campaigns.worker.create_campaign(**fields)


def test_an_event_makes_the_person_known_with_their_consent(campaigns):
    consenting = person(campaigns, "M-1")
    refusing = person(campaigns, "M-2", phone="13700000002", marketing_consent=False)
    assert campaigns.worker.consent(consenting)["marketing_consent"] is True
    assert campaigns.worker.consent(refusing)["marketing_consent"] is False
    assert campaigns.db.people.count_documents({}) == 2


@pytest.mark.parametrize(
    "body",
    [
        "text",
        {
            "event_id": "E-1",
            "event_type": "PatientVisited",
            "occurred_at": "2026-03-02T10:00:00+08:00",
        },  # no patient
        {
            "event_id": "E-2",
            "event_type": "PatientsMerged",
            "occurred_at": "2026-03-09T12:00:00+08:00",
            "patient_id": "P-1",
            "data": {},
        },  # no merged_patient_id
    ],
)
def test_a_message_that_is_not_a_usable_event_is_invalid(campaigns, body):
    with pytest.raises(InvalidMessage):
        campaigns.worker.handle_event(inbound(body))
    assert campaigns.db.events.count_documents({}) == 0


def test_a_campaign_that_cannot_be_scheduled_is_refused_naming_the_fields(campaigns):
    with pytest.raises(BadRequest) as raised:
        campaigns.worker.create_campaign(
            "x", {"visit_count": {"min": 5, "max": 1}}, "fax", TEMPLATE
        )
    assert {"channel", "send_at", "segment.visit_count"} <= set(raised.value.details)
    assert campaigns.worker.list_campaigns()["total"] == 0


def test_an_sms_campaign_reaches_each_consenting_person_once(campaigns):
    reached = person(campaigns, "M-1", phone="13700000001")
    person(campaigns, "M-2", phone="13700000002", marketing_consent=False)
    person(campaigns, "M-3", phone=None)
    campaign = create(campaigns)
    assert campaign["status"] == "scheduled"

    campaigns.worker.run_campaigns()
    campaigns.worker.run_campaigns()  # the next round finds nothing more to send

    report = campaigns.worker.get_campaign(campaign["campaign_id"])
    assert report["status"] == "done"
    assert (
        report["targeted"],
        report["sent"],
        report["excluded_no_consent"],
        report["excluded_no_phone"],
    ) == (3, 1, 1, 1)
    [sms] = list(campaigns.db.notifications.find({}))
    assert (
        sms["patient_id"] == reached
        and sms["phone"] == "13700000001"
        and sms["purpose"] == "campaign"
    )
    [sent] = campaigns.published.bodies("CampaignMessageSent")
    assert sent["patient_id"] == reached and sent["data"]["campaign_id"] == campaign["campaign_id"]
    assert campaigns.published.envelopes[0].exchange == "campaigns.events"


def test_a_call_campaign_requests_a_call_with_its_script(campaigns):
    patient_id = person(campaigns, "M-1")
    campaign = create(campaigns, channel="call")
    campaigns.worker.run_campaigns()

    [request] = campaigns.published.bodies("CampaignCallRequested")
    assert request["patient_id"] == patient_id and request["data"]["script"] == TEMPLATE
    assert campaigns.db.notifications.count_documents({}) == 0
    assert campaigns.worker.get_campaign(campaign["campaign_id"])["calls_created"] == 1


def test_the_daily_limit_defers_a_second_campaign(campaigns):
    person(campaigns, "M-1")
    first, second = create(campaigns, name="one"), create(campaigns, name="two")
    campaigns.worker.run_campaigns()

    figures = [campaigns.worker.get_campaign(c["campaign_id"]) for c in (first, second)]
    assert sorted((f["sent"], f["waiting"]) for f in figures) == [(0, 1), (1, 0)]
    assert len(campaigns.published.bodies("CampaignMessageSent")) == 1


def test_an_opt_out_is_published_once_excludes_the_person_and_can_be_restored(
    campaigns,
):
    patient_id = person(campaigns, "M-1")
    withdrawn = campaigns.worker.opt_out(patient_id, via="agent", actor="li.na")
    assert withdrawn["changed"] is True and withdrawn["marketing_consent"] is False
    assert campaigns.worker.opt_out(patient_id)["changed"] is False
    assert campaigns.published.types() == ["MarketingConsentWithdrawn"]

    campaign = create(campaigns)
    campaigns.worker.run_campaigns()
    assert campaigns.worker.get_campaign(campaign["campaign_id"])["excluded_no_consent"] == 1

    assert campaigns.worker.restore_consent(patient_id, actor="li.na")["marketing_consent"] is True
    assert campaigns.published.types() == [
        "MarketingConsentWithdrawn",
        "MarketingConsentRestored",
    ]


def test_an_sms_reply_with_the_opt_out_keyword_withdraws_consent(campaigns):
    patient_id = person(campaigns, "M-1", phone="13700000009")
    assert campaigns.worker.sms_reply("137-0000-0009", "hello") == {
        "opt_out": False,
        "patients": 0,
    }
    assert campaigns.worker.sms_reply("137-0000-0009", " td ") == {
        "opt_out": True,
        "patients": 1,
    }
    assert campaigns.worker.consent(patient_id)["opted_out_via"] == "sms_reply"
    [withdrawal] = campaigns.published.bodies("MarketingConsentWithdrawn")
    assert withdrawal["patient_id"] == patient_id


def test_holidays_and_the_campaign_list(campaigns):
    holidays = campaigns.worker.upcoming_holidays()
    assert holidays["country"] == "CN" and holidays["items"]
    assert [i["date"] for i in holidays["items"]] == sorted(i["date"] for i in holidays["items"])
    greeting = create(campaigns, send_at=None, holiday=holidays["items"][0]["holiday"])
    assert greeting["send_at"] == holidays["items"][0]["send_at"]
    listed = campaigns.worker.list_campaigns(status="scheduled")
    assert listed["total"] == 1 and listed["rules"]["daily_limit"] == 1
