"""The shared rules of erasure and retention (shared/privacy.py): what an event keeps, which
statements of a person an old event must keep so every projection stays the same, and how
free text is cleared of a person's name, phone and MRN."""

import datetime
import json

from services.intake import domain as intake_domain
from shared import privacy
from shared.contact import contact_of
from tests import factories

NAME, PHONE, MRN = "王芳", "138-0013-8000", "MRN-77"


def recorded(inbound, event_id=None):
    """An event as a service keeps it (intake's projection input)."""
    return {
        "event_id": event_id or inbound["event_id"],
        "event_type": inbound["event_type"],
        "occurred_at": datetime.datetime.fromisoformat(inbound["occurred_at"]),
        "data": inbound["data"],
    }


def test_an_erased_persons_visit_keeps_what_counts_derive_from_and_no_person():
    event = factories.visit(MRN, name=NAME, phone=PHONE, birth_date="1990-01-01", region="海淀区")
    kept = privacy.erased_data("PatientVisited", event["data"])
    assert kept == {
        "visit_id": event["data"]["visit_id"],
        "department": "心内科",
        "visit_type": "first",
        "source_channel": "friend_referral",
        "visited_at": event["data"]["visited_at"],
        "patient": {},
    }


def test_an_erased_merge_loses_its_retired_mrn_a_retained_one_keeps_it():
    data = dict(factories.merged("S-1", MRN)["data"], merged_patient_id="p0")
    assert privacy.erased_data("PatientsMerged", data) == {"merged_patient_id": "p0", "patient": {}}
    assert privacy.retained_data("PatientsMerged", data) == {
        "merged_patient_id": "p0",
        "merged_mrn": MRN,
        "patient": {},
    }


def test_free_text_and_unknown_fields_are_dropped_reason_codes_stay():
    assert privacy.erased_data("VisitCancelled", factories.visit_cancelled(MRN, "V1")["data"]) == {
        "visit_id": "V1",
        "patient": {},
    }
    assert privacy.erased_data(
        "ConsultationLogged", {"consultation_id": "c", "topic": "头疼", "x": 1}
    ) == {"consultation_id": "c"}
    assert privacy.erased_data("FollowUpCancelled", {"followup_id": "f", "reason": "erased"}) == {
        "followup_id": "f",
        "reason": "erased",
    }
    assert privacy.erased_data(
        "AppointmentWithdrawn", {"appointment_id": "a", "reason": "病人不来"}
    ) == {"appointment_id": "a"}
    assert privacy.erased_data("NotAType", {"anything": NAME}) == {}


def test_the_latest_statement_of_each_profile_field_is_found_in_any_arrival_order():
    first = factories.registered(MRN, day=1, name="王芳", phone="13800000001", region="海淀区")
    second = factories.visit(MRN, day=2, name="王芳芳", phone="13800000002")
    third = factories.admitted(MRN, "A1", day=3, name="王芳芳")
    third["data"]["patient"].pop("phone")  # optional: not stated
    events = [recorded(e) for e in (third, first, second)]
    statements = privacy.latest_statements(events)
    assert statements[third["event_id"]] == {"name"}
    assert statements[second["event_id"]] == {"phone"}
    assert statements[first["event_id"]] == {"region"}


def test_stripping_old_events_but_their_latest_statements_keeps_the_projection_the_same():
    events = [
        recorded(e)
        for e in (
            factories.registered(
                MRN,
                day=1,
                name="王芳",
                phone="13800000001",
                region="海淀区",
                gender="female",
                birth_date="1980-02-03",
            ),
            factories.visit(MRN, day=2, name="王芳芳", phone="13800000002", visit_type="first"),
            factories.admitted(MRN, "A1", day=3, name="王芳芳", contact_consent=False),
            factories.discharged(MRN, "A1", day=8, name="王芳芳"),
            factories.visit_cancelled(MRN, "V-none", day=9, name="王芳芳"),
        )
    ]
    before = intake_domain.project(events)
    statements = privacy.latest_statements(events)
    stripped = [
        dict(
            e,
            data=privacy.retained_data(
                e["event_type"], e["data"], statements.get(e["event_id"], ())
            ),
        )
        for e in events
    ]
    after = intake_domain.project(stripped)
    (
        before.pop("mrn"),
        after.pop("mrn"),
    )  # the record's identity is resolve_patient's, never a projection's
    assert after == before
    assert contact_of(stripped) == contact_of(events)
    text = json.dumps([e["data"] for e in stripped], ensure_ascii=False)
    assert "13800000001" not in text and text.count("王芳") == 1 and "entered in error" not in text


def test_redact_clears_the_name_the_phone_in_any_spelling_and_the_mrns():
    secrets = privacy.secrets_of(NAME, PHONE, [MRN])
    text = "王芳 asked by phone 138 0013 8000 (also 13800138000, +86-138-0013-8000) about MRN-77"
    cleared = privacy.redact(text, secrets)
    assert NAME not in cleared and "0013" not in cleared and MRN not in cleared
    assert cleared.startswith("*** asked by phone ***")
    assert privacy.redact("no one here", secrets) == "no one here"


def test_mentions_sees_the_person_in_an_encoded_query_string():
    secrets = privacy.secrets_of(NAME, PHONE, [MRN])
    assert privacy.mentions("q=%E7%8E%8B%E8%8A%B3&limit=100", secrets)
    assert privacy.mentions("phone=138-0013-8000", secrets)
    assert privacy.mentions("mrn=MRN-77", secrets)
    assert not privacy.mentions("q=%E6%9D%8E&limit=100", secrets)
    assert not privacy.mentions(None, secrets)


def test_reduce_queue_keeps_the_length_and_order_the_outbox_counts_on():
    message = {
        "event_id": "e1",
        "event_type": "PatientVisited",
        "data": factories.visit(MRN, name=NAME, phone=PHONE)["data"],
    }
    queue = [
        json.dumps(
            {"exchange": "intake.events", "routing_key": "PatientVisited", "message": message},
            ensure_ascii=False,
        ),
        {
            "exchange": "x",
            "routing_key": "PatientErased",
            "message": {"event_type": "PatientErased", "data": {"erasure_id": "er"}},
        },
    ]
    reduced, changed = privacy.reduce_queue(queue, privacy.erased_data)
    assert (
        changed
        and len(reduced) == 2
        and isinstance(reduced[0], str)
        and isinstance(reduced[1], dict)
    )
    assert NAME not in reduced[0] and json.loads(reduced[0])["message"]["event_id"] == "e1"
    again, changed_again = privacy.reduce_queue(reduced, privacy.erased_data)
    assert again == reduced and not changed_again


def test_the_cutoff_takes_fractions_of_a_day():
    now = datetime.datetime(2026, 3, 2, tzinfo=datetime.UTC)
    assert privacy.cutoff(now, 0.5) == datetime.datetime(2026, 3, 1, 12, tzinfo=datetime.UTC)
