"""AppointmentsService's entrypoints on its real store (in memory): booking without double
booking, the state machine, reminders and no-shows, and intake's events (attendance, the
hospital's scheduling system, merges)."""

import datetime
import zoneinfo

import pytest

from services.appointments.service import AppointmentsService
from shared.errors import BadRequest, Conflict, InvalidMessage
from tests import factories
from tests.service.fakes import canonical, inbound, new_id

ZONE = zoneinfo.ZoneInfo("Asia/Shanghai")  # the config's default time zone


@pytest.fixture
def appointments(make_service):
    return make_service(AppointmentsService)


def weekday_at(hour, minute=0, days_ahead=3):
    """A Monday-to-Friday local time a few days from now (inside the default working hours)."""
    day = datetime.datetime.now(ZONE).date() + datetime.timedelta(days=days_ahead)
    while day.weekday() > 4:
        day += datetime.timedelta(days=1)
    return datetime.datetime.combine(day, datetime.time(hour, minute), ZONE)


def book(appointments, starts, patient_id="P-1", doctor_id="D-1", department="心内科"):
    return appointments.worker.book(
        patient_id,
        department,
        starts.isoformat(),
        "phone",
        doctor_id=doctor_id,
        booked_by="ann",
    )


def deliver(appointments, event):
    appointments.worker.handle_intake_event(inbound(event))


def test_a_booking_is_stored_and_published(appointments):
    starts = weekday_at(9)
    booked = book(appointments, starts)
    assert booked["status"] == "booked" and booked["duration_minutes"] == 15
    assert booked["local_date"] == starts.date().isoformat()

    assert appointments.worker.get_appointment(booked["appointment_id"]) == booked
    listed = appointments.worker.list_appointments(date=starts.date().isoformat())
    assert listed["total"] == 1 and listed["items"][0]["appointment_id"] == booked["appointment_id"]
    [envelope] = appointments.published.envelopes
    assert (envelope.exchange, envelope.routing_key) == (
        "appointments.events",
        "AppointmentBooked",
    )
    assert envelope.body["data"]["appointment_id"] == booked["appointment_id"]
    assert appointments.db.slots.count_documents({"appointment_id": booked["appointment_id"]}) == 3


def test_a_doctor_is_never_booked_twice_at_once(appointments):
    first = book(appointments, weekday_at(9), patient_id="P-1")
    with pytest.raises(Conflict):
        book(appointments, weekday_at(9, 5), patient_id="P-2")  # overlaps 09:00-09:15
    assert appointments.db.appointments.count_documents({}) == 1
    # The refused booking gave back the units it had claimed; the next slot and another
    # doctor are free.
    assert {s["appointment_id"] for s in appointments.db.slots.find({})} == {
        first["appointment_id"]
    }
    book(appointments, weekday_at(9, 15), patient_id="P-2")
    book(appointments, weekday_at(9), patient_id="P-3", doctor_id="D-2")
    assert appointments.published.types() == ["AppointmentBooked"] * 3


@pytest.mark.parametrize(
    "starts_at",
    [
        weekday_at(20).isoformat(),  # outside working hours
        (datetime.datetime.now(ZONE) - datetime.timedelta(days=1)).isoformat(),  # in the past
        "2026-03-02T09:00:00",  # no offset
        "tomorrow morning",
    ],
)
def test_bad_times_are_refused_naming_starts_at(appointments, starts_at):
    with pytest.raises(BadRequest) as raised:
        appointments.worker.book("P-1", "心内科", starts_at, "phone", doctor_id="D-1")
    assert "starts_at" in raised.value.details
    assert appointments.db.appointments.count_documents({}) == 0
    assert appointments.db.slots.count_documents({}) == 0


def test_confirm_check_in_and_the_illegal_transitions(appointments):
    booked = book(appointments, weekday_at(10))
    appointment_id = booked["appointment_id"]
    assert appointments.worker.confirm(appointment_id, actor="ann")["status"] == "confirmed"
    with pytest.raises(Conflict):
        appointments.worker.confirm(appointment_id, actor="ann")
    assert appointments.worker.check_in(appointment_id, actor="ann")["status"] == "checked_in"
    with pytest.raises(Conflict):
        appointments.worker.cancel(appointment_id, actor="ann")
    assert appointments.published.types() == [
        "AppointmentBooked",
        "AppointmentConfirmed",
        "AppointmentCheckedIn",
    ]


def test_cancel_frees_the_slot_and_reschedule_moves_it(appointments):
    first = book(appointments, weekday_at(10))
    assert (
        appointments.worker.cancel(first["appointment_id"], actor="ann", reason="ill")["status"]
        == "cancelled"
    )
    # The slot is free again.
    second = book(appointments, weekday_at(10), patient_id="P-2")

    moved = appointments.worker.reschedule(
        second["appointment_id"], weekday_at(11).isoformat(), actor="ann"
    )
    assert moved["starts_at"] == weekday_at(11).isoformat()
    book(appointments, weekday_at(10), patient_id="P-3")  # the old time was given back
    with pytest.raises(Conflict):
        book(appointments, weekday_at(11), patient_id="P-4")
    [cancelled] = appointments.published.bodies("AppointmentCancelled")
    assert cancelled["data"]["reason"] == "ill"


def test_a_reminder_goes_once_to_a_patient_who_may_be_contacted(appointments):
    patient_id = new_id()
    deliver(
        appointments,
        canonical(factories.registered("M-1", phone="13712345678"), patient_id),
    )
    starts = weekday_at(9)
    booked = book(appointments, starts, patient_id=patient_id)

    due = starts - datetime.timedelta(hours=23)  # inside the default 24 h before
    assert appointments.worker.send_reminders(due) == 1
    assert appointments.worker.send_reminders(due) == 0
    [sms] = list(appointments.db.notifications.find({}))
    assert sms["phone"] == "13712345678" and sms["appointment_id"] == booked["appointment_id"]
    [reminder] = appointments.published.bodies("AppointmentReminderDue")
    assert reminder["data"]["delivery"] == "sent"
    assert appointments.worker.get_appointment(booked["appointment_id"])["reminder_state"] == "sent"


def test_an_appointment_nobody_came_to_is_a_no_show_once(appointments):
    starts = weekday_at(9)
    booked = book(appointments, starts)
    later = starts + datetime.timedelta(hours=2)
    assert appointments.worker.declare_no_shows(later) == 1
    assert appointments.worker.declare_no_shows(later) == 0
    assert appointments.worker.get_appointment(booked["appointment_id"])["status"] == "no_show"
    assert appointments.published.types().count("AppointmentNoShow") == 1


def test_a_visit_that_day_marks_the_appointment_attended(appointments):
    patient_id = new_id()
    starts = weekday_at(9)
    booked = book(appointments, starts, patient_id=patient_id)
    visit = factories.visit("M-1", department="心内科", visit_id="V-77")
    visit["data"]["visited_at"] = (starts + datetime.timedelta(minutes=20)).isoformat()
    deliver(appointments, canonical(visit, patient_id))
    deliver(appointments, canonical(visit, patient_id))  # redelivered

    current = appointments.worker.get_appointment(booked["appointment_id"])
    assert current["status"] == "attended" and current["attended_visit_id"] == "V-77"
    assert appointments.published.types().count("AppointmentAttended") == 1


def test_the_hospital_schedules_and_withdraws_an_appointment(appointments):
    patient_id = new_id()
    starts = weekday_at(14).isoformat()
    deliver(
        appointments,
        canonical(factories.appointment_scheduled("M-1", "HIS-9", starts), patient_id),
    )
    [mirrored] = appointments.worker.list_appointments(patient_id=patient_id)["items"]
    assert mirrored["status"] == "booked" and mirrored["external_id"] == "HIS-9"
    with pytest.raises(Conflict):  # only the hospital's system may cancel what it sent
        appointments.worker.cancel(mirrored["appointment_id"], actor="ann")

    deliver(
        appointments,
        canonical(factories.appointment_withdrawn("M-1", "HIS-9"), patient_id),
    )
    assert appointments.worker.get_appointment(mirrored["appointment_id"])["status"] == "cancelled"
    assert appointments.published.types() == [
        "AppointmentBooked",
        "AppointmentCancelled",
    ]


def test_a_merge_moves_the_retired_records_appointments(appointments):
    retired, survivor = new_id(), new_id()
    booked = book(appointments, weekday_at(9), patient_id=retired)
    deliver(
        appointments,
        canonical(factories.merged("M-NEW", "M-OLD"), survivor, merged_patient_id=retired),
    )

    assert appointments.worker.get_appointment(booked["appointment_id"])["patient_id"] == survivor
    # Its survivor's.
    assert appointments.worker.list_appointments(patient_id=retired)["total"] == 1


@pytest.mark.parametrize(
    "body",
    [
        "text",
        {"event_type": "PatientVisited"},
        {"event_id": "E-1", "event_type": "PatientVisited"},
    ],
)
def test_a_message_that_is_not_a_canonical_event_is_invalid(appointments, body):
    with pytest.raises(InvalidMessage):
        deliver(appointments, body)
    assert appointments.db.events.count_documents({}) == 0
