"""Appointments on the real broker and store: no double booking under 50 concurrent
requests, and two replicas reminding and declaring no-shows exactly once."""

import concurrent.futures
import datetime
import json
import pathlib

import pytest
from kombu import Connection
from pymongo import MongoClient

from tests import factories
from tests.support import wait_until

pytestmark = pytest.mark.integration

ALWAYS_OPEN = """
appointments:
  working_hours:
    default:
      - {days: [0, 1, 2, 3, 4, 5, 6], start: "00:00", end: "23:59"}
"""


@pytest.fixture
def config_file(tmp_path):
    path = pathlib.Path(tmp_path) / "hcrm.yaml"
    path.write_text(ALWAYS_OPEN)
    return str(path)


def soon(seconds):
    return (datetime.datetime.now(datetime.UTC) + datetime.timedelta(seconds=seconds)).isoformat()


def patient_id_of(platform, token, mrn):
    return wait_until(
        lambda: platform.http("GET", f"/api/v1/patients?mrn={mrn}", token=token)[1]["items"],
        message=f"patient {mrn}",
    )[0]["patient_id"]


def test_fifty_concurrent_bookings_of_one_slot_give_exactly_one_201(platform, config_file):
    platform.start_service("appointments", HCRM_CONFIG=config_file)
    platform.start_gateway(HCRM_CONFIG=config_file, GATEWAY_THREADS="16")
    token = platform.token()
    in_three_hours = datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=3)
    starts = in_three_hours.replace(
        minute=in_three_hours.minute // 15 * 15, second=0, microsecond=0
    ).isoformat()
    body = {
        "patient_id": "p-1",
        "department": "心内科",
        "doctor_id": "D7",
        "starts_at": starts,
        "channel": "phone",
    }
    with concurrent.futures.ThreadPoolExecutor(max_workers=50) as pool:
        answers = list(
            pool.map(
                lambda i: platform.http(
                    "POST", "/api/v1/appointments", dict(body, patient_id=f"p-{i}"), token=token
                )[0],
                range(50),
            )
        )
    assert answers.count(201) == 1 and answers.count(409) == 49, answers
    # back to back is fine, overlapping is not
    later = (datetime.datetime.fromisoformat(starts) + datetime.timedelta(minutes=15)).isoformat()
    assert (
        platform.http("POST", "/api/v1/appointments", dict(body, starts_at=later), token=token)[0]
        == 201
    )
    overlapping = (
        datetime.datetime.fromisoformat(starts) + datetime.timedelta(minutes=10)
    ).isoformat()
    assert (
        platform.http(
            "POST", "/api/v1/appointments", dict(body, starts_at=overlapping), token=token
        )[0]
        == 409
    )


def test_outside_working_hours_and_bad_input_are_400(platform):
    platform.start_service("appointments")
    platform.start_gateway()
    token = platform.token()
    sunday_night = datetime.datetime(
        2030, 3, 3, 3, 0, tzinfo=datetime.timezone(datetime.timedelta(hours=8))
    )
    status, body = platform.http(
        "POST",
        "/api/v1/appointments",
        {
            "patient_id": "p",
            "department": "心内科",
            "starts_at": sunday_night.isoformat(),
            "channel": "phone",
        },
        token=token,
    )
    assert status == 400 and "starts_at" in body["error"]["details"]
    status, body = platform.http(
        "POST",
        "/api/v1/appointments",
        {"patient_id": "p", "department": "心内科", "starts_at": "tomorrow", "channel": "fax"},
        token=token,
    )
    assert status == 400 and {"starts_at", "channel"} <= set(body["error"]["details"])


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


def test_two_replicas_remind_and_declare_no_shows_exactly_once(platform, config_file):
    env = {
        "HCRM_CONFIG": config_file,
        "APPOINTMENTS_TIMER_INTERVAL_S": "0.3",
        "APPOINTMENTS_NO_SHOW_GRACE_MINUTES": "0.05",
    }
    platform.start_service("intake")
    platform.start_service("analytics")  # it appends the stream's (minimal) copies
    for _ in range(2):
        platform.start_service("appointments", **env)
    platform.start_gateway(HCRM_CONFIG=config_file)
    token = platform.token()
    platform.publish(factories.registered("AP-1", phone="13611112222"))
    platform.publish(factories.registered("AP-2", phone="13633334444"))
    platform.publish(factories.registered("AP-3", phone="13655556666", contact_consent=False))
    ids = {mrn: patient_id_of(platform, token, mrn) for mrn in ("AP-1", "AP-2", "AP-3")}

    def book(mrn, doctor, seconds):
        status, body = platform.http(
            "POST",
            "/api/v1/appointments",
            {
                "patient_id": ids[mrn],
                "department": "心内科",
                "doctor_id": doctor,
                "starts_at": soon(seconds),
                "channel": "phone",
            },
            token=token,
        )
        assert status == 201, body
        return body["appointment_id"]

    comes, misses, no_consent = (
        book("AP-1", "D1", 20),
        book("AP-2", "D2", 6),
        book("AP-3", "D3", 20),
    )
    assert platform.http("POST", f"/api/v1/appointments/{comes}/confirm", token=token)[0] == 200
    assert (
        platform.http("POST", f"/api/v1/appointments/{comes}/check-in", token=token)[1]["status"]
        == "checked_in"
    )
    assert platform.http("POST", f"/api/v1/appointments/{comes}/cancel", token=token)[0] == 409

    def state(appointment_id):
        return platform.http("GET", f"/api/v1/appointments/{appointment_id}", token=token)[1]

    wait_until(lambda: state(misses)["status"] == "no_show", timeout=60, message="the no-show")
    wait_until(
        lambda: state(no_consent)["reminder_state"] == "skipped_no_consent",
        timeout=30,
        message="the reminder skipped for lack of consent",
    )
    assert state(misses)["reminder_state"] == "sent"
    db = MongoClient(platform.database_uri("appointments")).get_default_database()
    notifications = list(db.notifications.find())
    # the patient who checked in was reminded too unless check-in came first; consent is respected
    assert no_consent not in [n["appointment_id"] for n in notifications]
    assert misses in [n["appointment_id"] for n in notifications]
    assert len({n["_id"] for n in notifications}) == len(notifications)
    events = stream(platform.amqp_uri, {"AppointmentReminderDue", "AppointmentNoShow"})
    reminders = [
        e["data"]["appointment_id"] for e in events if e["event_type"] == "AppointmentReminderDue"
    ]
    # Each reminder once, however many replicas; the checked-in one may have been reminded
    # before its check-in (its reminder was due at once).
    assert len(reminders) == len(set(reminders)) and {misses, no_consent} <= set(reminders) <= {
        comes,
        misses,
        no_consent,
    }
    assert [
        e["data"]["appointment_id"] for e in events if e["event_type"] == "AppointmentNoShow"
    ] == [misses]


def test_a_visit_that_day_marks_the_appointment_attended(platform, config_file):
    platform.start_service("intake")
    platform.start_service("appointments", HCRM_CONFIG=config_file)
    platform.start_gateway(HCRM_CONFIG=config_file)
    token = platform.token()
    platform.publish(factories.registered("AT-1", phone="13677778888"))
    patient_id = patient_id_of(platform, token, "AT-1")
    status, booked = platform.http(
        "POST",
        "/api/v1/appointments",
        {"patient_id": patient_id, "department": "眼科", "starts_at": soon(120), "channel": "web"},
        token=token,
    )
    assert status == 201
    visit = factories.visit("AT-1", phone="13677778888", department="眼科")
    now = datetime.datetime.now(datetime.timezone(datetime.timedelta(hours=8)))
    visit["data"]["visited_at"] = visit["occurred_at"] = now.isoformat()
    platform.publish(visit)
    wait_until(
        lambda: (
            platform.http("GET", f"/api/v1/appointments/{booked['appointment_id']}", token=token)[
                1
            ]["status"]
            == "attended"
        ),
        message="attended",
    )
