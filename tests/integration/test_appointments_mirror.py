"""The mirror of the hospital's scheduling system on the real broker and store (contract v1.1):
AppointmentScheduled / Withdrawn / Missed published to hospital.events reach appointments
through intake; VisitCancelled undoes the attendance its visit marked."""

import datetime
import json
import subprocess
import uuid

import pytest
from kombu import Connection
from pymongo import MongoClient

from services.appointments.domain import mirror_appointment_id
from tests import factories
from tests.support import wait_until

pytestmark = pytest.mark.integration

TZ = datetime.timezone(datetime.timedelta(hours=8))
TIMERS = {"APPOINTMENTS_TIMER_INTERVAL_S": "0.3"}  # as the existing reminder tests


def in_(seconds):
    return (datetime.datetime.now(TZ) + datetime.timedelta(seconds=seconds)).replace(microsecond=0)


def scheduling(event_type, mrn, appointment_id, occurred_at, phone="13912340000", **data):
    return {
        "event_id": uuid.uuid4().hex,
        "event_type": event_type,
        "occurred_at": occurred_at,
        "source": "his",
        "data": {
            "patient": factories.patient(mrn, phone=phone),
            "appointment_id": appointment_id,
            **data,
        },
    }


def scheduled(
    mrn, appointment_id, starts_at, occurred_at, department="心内科", doctor_id="D1", **extra
):
    return scheduling(
        "AppointmentScheduled",
        mrn,
        appointment_id,
        occurred_at,
        department=department,
        doctor_id=doctor_id,
        starts_at=starts_at.isoformat(),
        **extra,
    )


def visit_cancelled(mrn, visit_id, occurred_at, phone="13912340000"):
    return {
        "event_id": uuid.uuid4().hex,
        "event_type": "VisitCancelled",
        "occurred_at": occurred_at,
        "source": "his",
        "data": {"patient": factories.patient(mrn, phone=phone), "visit_id": visit_id},
    }


def database(platform, service):
    return MongoClient(platform.database_uri(service), tz_aware=True).get_default_database()


def inbound_settled(platform, queue="appointments.inbound"):
    """No message of `queue` is waiting or being handled (ready + unacknowledged = 0)."""
    out = subprocess.run(
        ["rabbitmqctl", "list_queues", "-q", "-p", platform.vhost, "name", "messages"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    counts = dict(line.split("\t") for line in out.strip().splitlines() if "\t" in line)
    return counts.get(queue) == "0"


def handled(platform, db, event):
    """The appointments service has received `event` (through intake) and finished with it."""
    return db.events.find_one(
        {
            "data.appointment_id": event["data"].get("appointment_id"),
            "event_type": event["event_type"],
            "occurred_at": event["occurred_at"],
        }
    ) and inbound_settled(platform)


def stream(amqp_uri, types, idle_s=2.0):
    found = []
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        channel.basic_qos(0, 1000, False)

        def on_message(message):
            body = json.loads(message.body)
            if body["event_type"] in types:
                found.append(body)
            channel.basic_ack(message.delivery_tag)

        channel.basic_consume(
            "hcrm.analytics", callback=on_message, arguments={"x-stream-offset": "first"}
        )
        deadline = datetime.datetime.now() + datetime.timedelta(seconds=idle_s)
        while datetime.datetime.now() < deadline:
            try:
                connection.drain_events(timeout=0.5)
            except (TimeoutError, OSError):
                pass
    return found


def unique(events):
    return list({event["event_id"]: event for event in events}.values())


def test_scheduled_is_booked_rescheduled_in_place_and_reminded_again_stale_changes_nothing(
    platform,
):
    platform.start_service("intake")
    platform.start_service("analytics")  # it appends the stream's (minimal) copies
    platform.start_service("appointments", **TIMERS)
    platform.start_gateway()
    token = platform.token()
    db = database(platform, "appointments")
    first, later = in_(2 * 3600), in_(3 * 3600)
    platform.publish(scheduled("MIR-1", "HIS-A1", first, factories.at(1, 10)))

    def listed():
        _, body = platform.http("GET", "/api/v1/appointments", token=token)
        return body["items"]

    [booked] = wait_until(listed, message="the mirrored appointment listed")
    assert booked["status"] == "booked" and booked["channel"] == "his" and booked["source"] == "his"
    assert booked["external_id"] == "HIS-A1" and booked["doctor_id"] == "D1"
    appointment_id = booked["appointment_id"]
    assert appointment_id == mirror_appointment_id("his", "HIS-A1")
    assert datetime.datetime.fromisoformat(booked["starts_at"]) == first

    def reminders():
        return list(db.notifications.find({"appointment_id": appointment_id}))

    wait_until(lambda: len(reminders()) == 1, timeout=30, message="the first reminder")

    # The hospital moves it: same appointment, new time, reminded again for the new time.
    platform.publish(scheduled("MIR-1", "HIS-A1", later, factories.at(1, 11)))
    wait_until(lambda: len(reminders()) == 2, timeout=30, message="the reminder for the new time")
    _, moved = platform.http("GET", f"/api/v1/appointments/{appointment_id}", token=token)
    assert (
        datetime.datetime.fromisoformat(moved["starts_at"]) == later
        and moved["reminder_state"] == "sent"
    )
    assert len(listed()) == 1
    assert later.strftime("%m-%d %H:%M") in max(reminders(), key=lambda n: n["created_at"])["text"]

    # An older change arriving late (and a duplicate of the last one) changes nothing.
    stale = scheduled("MIR-1", "HIS-A1", in_(5 * 3600), factories.at(1, 10, 30))
    platform.publish(stale)
    wait_until(lambda: handled(platform, db, stale), timeout=30, message="the stale change handled")
    _, after = platform.http("GET", f"/api/v1/appointments/{appointment_id}", token=token)
    assert after["starts_at"] == moved["starts_at"] and len(reminders()) == 2

    booked_events = unique(stream(platform.amqp_uri, {"AppointmentBooked"}))
    assert [
        e["data"].get("rescheduled", False)
        for e in sorted(booked_events, key=lambda e: e["occurred_at"])
    ] == [False, True]
    reminded = unique(stream(platform.amqp_uri, {"AppointmentReminderDue"}))
    assert len(reminded) == 2 and {e["data"]["starts_at"] for e in reminded} == {
        first.isoformat(),
        later.isoformat(),
    }
    # Intake's scheduling types are not on the stream: one name per fact.
    assert not stream(platform.amqp_uri, {"AppointmentScheduled"}, 1)


def test_withdrawn_cancels_without_reminder_and_withdrawn_first_never_books(platform):
    # The reminder is due 0.01 h (36 s) before the start: after the withdrawal.
    platform.start_service("intake")
    platform.start_service("analytics")  # it appends the stream's (minimal) copies
    platform.start_service("appointments", APPOINTMENTS_REMINDER_HOURS_BEFORE="0.01", **TIMERS)
    db = database(platform, "appointments")
    withdrawn_id = mirror_appointment_id("his", "HIS-W1")
    platform.publish(scheduled("MIR-2", "HIS-W1", in_(50), factories.at(1, 10)))
    wait_until(
        lambda: db.appointments.find_one({"_id": withdrawn_id}), message="the mirrored appointment"
    )
    platform.publish(
        scheduling("AppointmentWithdrawn", "MIR-2", "HIS-W1", factories.at(1, 12), reason="patient")
    )
    wait_until(
        lambda: db.appointments.find_one({"_id": withdrawn_id, "status": "cancelled"}),
        message="the withdrawal",
    )
    # Once its reminder is due the timer looks at it, and skips it.
    wait_until(
        lambda: db.appointments.find_one({"_id": withdrawn_id, "reminder_state": "skipped"}),
        timeout=60,
        message="the reminder of the cancelled appointment skipped",
    )
    assert db.notifications.count_documents({"appointment_id": withdrawn_id}) == 0

    # Withdrawn before Scheduled: the Scheduled never makes a live appointment.
    early_id = mirror_appointment_id("his", "HIS-W2")
    platform.publish(scheduling("AppointmentWithdrawn", "MIR-2", "HIS-W2", factories.at(1, 12)))
    wait_until(
        lambda: db.mirror_marks.find_one({"_id": early_id, "withdrawn": True}),
        message="the early withdrawal recorded",
    )
    late = scheduled("MIR-2", "HIS-W2", in_(3600), factories.at(1, 10))
    platform.publish(late)
    wait_until(
        lambda: handled(platform, db, late), timeout=30, message="the late Scheduled handled"
    )
    assert db.appointments.find_one({"_id": early_id}) is None

    events = unique(
        stream(
            platform.amqp_uri,
            {"AppointmentCancelled", "AppointmentReminderDue", "AppointmentBooked"},
        )
    )
    assert sorted((e["event_type"], e["data"]["appointment_id"]) for e in events) == [
        ("AppointmentBooked", withdrawn_id),
        ("AppointmentCancelled", withdrawn_id),
    ]


def test_missed_is_one_no_show_and_followup_calls_to_rebook(platform):
    for service in ("intake", "followup", "analytics"):  # analytics: the stream's copies
        platform.start_service(service)
    platform.start_service("appointments", **TIMERS)
    db = database(platform, "appointments")
    appointment_id = mirror_appointment_id("his", "HIS-M1")
    platform.publish(scheduled("MIR-3", "HIS-M1", in_(2 * 3600), factories.at(1, 10)))
    wait_until(
        lambda: db.appointments.find_one({"_id": appointment_id}),
        message="the mirrored appointment",
    )
    for hour in (12, 13):  # the scheduling system says it twice
        platform.publish(scheduling("AppointmentMissed", "MIR-3", "HIS-M1", factories.at(1, hour)))
    wait_until(
        lambda: db.appointments.find_one({"_id": appointment_id, "status": "no_show"}),
        message="the no-show",
    )
    tasks = database(platform, "followup").tasks
    wait_until(
        lambda: tasks.find_one({"kind": "no_show_call"}), timeout=30, message="the no_show_call"
    )
    wait_until(lambda: inbound_settled(platform), message="appointments.inbound settled")
    no_shows = unique(stream(platform.amqp_uri, {"AppointmentNoShow"}))
    assert [e["data"]["appointment_id"] for e in no_shows] == [appointment_id]
    assert tasks.count_documents({"kind": "no_show_call"}) == 1


def test_a_cancelled_visit_undoes_the_attendance_it_marked_in_any_order(platform):
    platform.start_service("intake")
    platform.start_service("appointments")
    db = database(platform, "appointments")
    appointment_id = mirror_appointment_id("his", "HIS-V1")
    platform.publish(scheduled("MIR-4", "HIS-V1", in_(300), factories.at(1, 10), department="眼科"))
    wait_until(
        lambda: db.appointments.find_one({"_id": appointment_id}),
        message="the mirrored appointment",
    )

    def visit(visit_id):
        event = factories.visit("MIR-4", phone="13912340000", department="眼科", visit_id=visit_id)
        event["data"]["visited_at"] = event["occurred_at"] = datetime.datetime.now(TZ).isoformat()
        return event

    platform.publish(visit("V-1"))
    wait_until(
        lambda: db.appointments.find_one({"_id": appointment_id, "status": "attended"}),
        message="attended",
    )
    platform.publish(visit_cancelled("MIR-4", "V-1", factories.at(1, 12)))
    wait_until(
        lambda: db.appointments.find_one({"_id": appointment_id, "status": "booked"}),
        message="the attendance undone",
    )

    # The cancel of V-2 comes before V-2 itself: V-2 never marks the appointment attended.
    platform.publish(visit_cancelled("MIR-4", "V-2", factories.at(1, 13)))
    wait_until(lambda: db.void_visits.find_one({"_id": "V-2"}), message="V-2 voided")
    late_visit = visit("V-2")
    platform.publish(late_visit)
    wait_until(
        lambda: (
            db.events.find_one({"data.visit_id": "V-2", "event_type": "PatientVisited"})
            and inbound_settled(platform)
        ),
        message="V-2 handled",
    )
    assert db.appointments.find_one({"_id": appointment_id})["status"] == "booked"
