"""PatientsMerged on the real broker and store (contract v1.1): complaints and appointments
of the retired patient move to the survivor, later events naming the retired id land on the
survivor, chains resolve transitively and duplicates change nothing."""

import datetime
import uuid

import pytest
from pymongo import MongoClient

from services.appointments.domain import mirror_appointment_id
from shared.messaging import publish
from tests import factories
from tests.support import wait_until

pytestmark = pytest.mark.integration

TZ = datetime.timezone(datetime.timedelta(hours=8))


def database(platform, service):
    return MongoClient(platform.database_uri(service), tz_aware=True).get_default_database()


def scheduled(mrn, appointment_id, phone, occurred_at):
    starts = (datetime.datetime.now(TZ) + datetime.timedelta(hours=2)).replace(microsecond=0)
    return {
        "event_id": uuid.uuid4().hex,
        "event_type": "AppointmentScheduled",
        "occurred_at": occurred_at,
        "source": "his",
        "data": {
            "patient": factories.patient(mrn, phone=phone),
            "appointment_id": appointment_id,
            "department": "心内科",
            "starts_at": starts.isoformat(),
        },
    }


def merged(survivor_mrn, survivor_phone, retired_mrn, occurred_at):
    return {
        "event_id": uuid.uuid4().hex,
        "event_type": "PatientsMerged",
        "occurred_at": occurred_at,
        "source": "his",
        "data": {
            "patient": factories.patient(survivor_mrn, phone=survivor_phone),
            "merged_mrn": retired_mrn,
        },
    }


def recovery(platform, patient_id, followup_id):
    """What followup publishes when a call ends with satisfaction 1."""
    now = datetime.datetime.now(datetime.UTC).isoformat()
    publish(
        platform.amqp_uri,
        "followup.events",
        "ServiceRecoveryRequested",
        {
            "event_id": uuid.uuid4().hex,
            "event_type": "ServiceRecoveryRequested",
            "schema_version": 1,
            "occurred_at": now,
            "recorded_at": now,
            "service": "followup",
            "patient_id": patient_id,
            "data": {
                "followup_id": followup_id,
                "kind": "post_visit_call",
                "satisfaction": 1,
                "department": "心内科",
                "agent": "ann",
            },
        },
    )


def test_a_merge_repoints_appointments_and_complaints_and_maps_later_events(platform):
    for service in ("intake", "appointments", "complaints"):
        platform.start_service(service)
    appointments, complaints = database(platform, "appointments"), database(platform, "complaints")
    phones = {"MG-R": "13900000001", "MG-S": "13900000002", "MG-T": "13900000003"}
    for mrn, phone in phones.items():
        platform.publish(factories.registered(mrn, phone=phone))

    def patient_id(mrn):
        return wait_until(
            lambda: appointments.events.find_one({"data.patient.mrn": mrn}),
            message=f"patient {mrn}",
        )["patient_id"]

    ids = {mrn: patient_id(mrn) for mrn in phones}
    retired, survivor, last = ids["MG-R"], ids["MG-S"], ids["MG-T"]

    platform.publish(scheduled("MG-R", "HIS-R1", phones["MG-R"], factories.at(1, 10)))
    first_appointment = mirror_appointment_id("his", "HIS-R1")
    wait_until(
        lambda: appointments.appointments.find_one(
            {"_id": first_appointment, "patient_id": retired}
        ),
        message="the retired patient's appointment",
    )
    recovery(platform, retired, "F-1")
    wait_until(
        lambda: complaints.complaints.find_one({"patient_id": retired}),
        message="the retired one's complaint",
    )

    # R is merged into S: what R held is S's.
    platform.publish(merged("MG-S", phones["MG-S"], "MG-R", factories.at(2, 9)))
    wait_until(
        lambda: appointments.appointments.find_one(
            {"_id": first_appointment, "patient_id": survivor}
        ),
        message="the appointment re-pointed",
    )
    wait_until(
        lambda: complaints.complaints.find_one({"patient_id": survivor}),
        message="the complaint re-pointed",
    )
    assert '"patient_merged"' in "".join(
        complaints.complaints.find_one({"patient_id": survivor})["history"]
    )

    # Events published before the merge arrive after it, still naming R: they land on S.
    now = datetime.datetime.now(datetime.UTC).isoformat()
    late = scheduled("MG-R", "HIS-R2", phones["MG-R"], factories.at(1, 11))
    publish(
        platform.amqp_uri,
        "intake.events",
        "AppointmentScheduled",
        dict(
            late,
            event_id=f"late-{late['event_id']}",
            schema_version=1,
            recorded_at=now,
            service="intake",
            source_event_id=late["event_id"],
            patient_id=retired,
            data=dict(late["data"], duration_minutes=15),
        ),
    )
    recovery(platform, retired, "F-2")
    second_appointment = mirror_appointment_id("his", "HIS-R2")
    wait_until(
        lambda: appointments.appointments.find_one({"_id": second_appointment}),
        message="the late appointment",
    )
    assert appointments.appointments.find_one({"_id": second_appointment})["patient_id"] == survivor
    wait_until(
        lambda: complaints.complaints.count_documents({"patient_id": survivor}) == 2,
        message="the late complaint on the survivor",
    )

    # The same merge again changes nothing; S merged into T takes R's along (R -> S -> T).
    platform.publish(merged("MG-S", phones["MG-S"], "MG-R", factories.at(2, 10)))
    platform.publish(merged("MG-T", phones["MG-T"], "MG-S", factories.at(3, 9)))
    wait_until(
        lambda: appointments.appointments.count_documents({"patient_id": last}) == 2,
        message="both appointments on the last survivor",
    )
    wait_until(
        lambda: complaints.complaints.count_documents({"patient_id": last}) == 2,
        message="both complaints on the last survivor",
    )
    recovery(platform, retired, "F-3")
    wait_until(
        lambda: complaints.complaints.count_documents({"patient_id": last}) == 3,
        message="a complaint naming R lands on T",
    )
    assert (
        complaints.complaints.count_documents({}) == 3
        and appointments.appointments.count_documents({}) == 2
    )
    assert {a["_id"]: a["to"] for a in complaints.aliases.find()} == {
        retired: survivor,
        survivor: last,
    }


def test_complaints_ignore_an_event_type_they_do_not_handle(platform):
    platform.start_service("complaints")
    publish(
        platform.amqp_uri,
        "",
        "complaints.inbound",
        {
            "event_id": "x",
            "event_type": "SomethingElse",
            "occurred_at": "2026-03-01T08:00:00+08:00",
        },
    )
    retries = [f"complaints.inbound.retry.{delay}ms" for delay in (200, 500, 1000)]  # tests' delays
    wait_until(
        lambda: platform.idle("complaints.inbound", *retries),
        message="complaints.inbound settled",
    )
    assert platform.queue_depth("complaints.dlq") == 0  # neither rejected nor failed
    assert database(platform, "complaints").complaints.count_documents({}) == 0
