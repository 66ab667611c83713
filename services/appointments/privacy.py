"""Appointments and the patients' data rights (README.md § Data protection), mixed into
AppointmentsService.

- export_patient: the person's appointments, the reminders sent to them (text and number),
  what the hospital's scheduling system said about their appointments, and the copies of
  intake's events kept for their phone and consent.
- PatientErased (intake.events): the person's booked or confirmed appointments are cancelled
  with the reason "erased" (AppointmentCancelled; the hospital's own appointments too: the
  person is gone from HCRM, the scheduling system keeps its own), so no reminder is sent any
  more; the reminders keep when and what kind but lose the number and the text, the kept
  events and the outbox copies their personal data and free text.
"""

import logging

from services.appointments import domain
from shared import aliases, erasures
from shared.clock import utcnow
from shared.messaging import rpc
from shared.privacy import ERASED_REASON, erased_data, jsonable, reduce_queue, without_outbox
from shared.timers import configured_timer

log = logging.getLogger(__name__)

SYSTEM = "system"


class AppointmentsPrivacyMixin(erasures.ErasesPatients):
    def _person_ids(self, patient_id, patient_ids=()):
        return aliases.person_ids(
            self.store.db.aliases, self._current_patient, patient_id, patient_ids, to_field="to"
        )

    # -- export -------------------------------------------------------------------------------
    @rpc
    def export_patient(self, patient_id, patient_ids=None):
        db = self.store.db
        ids = self._person_ids(patient_id, patient_ids)
        appointments = [
            without_outbox(doc) for pid in ids for doc in db.appointments.find({"patient_id": pid})
        ]
        marks = (
            list(db.mirror_marks.find({"_id": {"$in": [a["_id"] for a in appointments]}}))
            if appointments
            else []
        )
        return jsonable(
            {
                "service": "appointments",
                "patient_ids": ids,
                "appointments": sorted(
                    appointments, key=lambda a: (a.get("starts_ts") or 0, a["_id"])
                ),
                "reminders": [
                    doc for pid in ids for doc in db.notifications.find({"patient_id": pid})
                ],
                "scheduling_system_marks": marks,
                "events": [doc for pid in ids for doc in db.events.find({"patient_id": pid})],
            }
        )

    # -- erasure ------------------------------------------------------------------------------
    def _erase(self, ids):
        now = utcnow()
        db = self.store.db
        for pid in ids:
            for appointment in db.appointments.find({"patient_id": pid}):
                if appointment["status"] in domain.ACTIVE:
                    self._cancel_erased(appointment, now)
            for appointment in db.appointments.find({"patient_id": pid}):
                queue, changed = reduce_queue(appointment.get("outbox_queue"), erased_data)
                if changed:
                    db.appointments.update_one(
                        {"_id": appointment["_id"], "outbox_seq": appointment.get("outbox_seq")},
                        {"$set": {"outbox_queue": queue}},
                    )
                db.mirror_marks.update_one(
                    {"_id": appointment["_id"], "withdrawn_details.reason": {"$ne": None}},
                    {"$set": {"withdrawn_details.reason": None}},
                )
            db.notifications.update_many(
                {"patient_id": pid, "$or": [{"phone": {"$ne": None}}, {"text": {"$ne": None}}]},
                {"$set": {"phone": None, "text": None}},
            )
            for kept in db.events.find({"patient_id": pid}):
                cleared = erased_data(kept["event_type"], kept.get("data"))
                if cleared != kept.get("data"):
                    db.events.update_one({"_id": kept["_id"]}, {"$set": {"data": cleared}})

    def _cancel_erased(self, appointment, now):
        fields = {
            "status": domain.CANCELLED,
            "cancelled_at": now.isoformat(),
            "cancel_by": SYSTEM,
            "cancel_reason": ERASED_REASON,
        }
        if appointment.get("reminder_state") == "pending":
            fields["reminder_state"] = "skipped"
        message = self._message(
            "AppointmentCancelled",
            {**appointment, **fields},
            now,
            {"actor": SYSTEM, "reason": ERASED_REASON},
            discriminator="cancel",
        )
        done = self.store.change(appointment, fields, [message], now)
        if done is not None:
            self.store.release_slots(appointment["_id"])
            self.store.outbox.publish_or_leave(done)

    # -- retention ----------------------------------------------------------------------------
    @configured_timer("retention_interval_s")
    def enforce_retention(self):
        for erasure in erasures.recent(self.store.db, utcnow(), self.config["erasure_sweep_days"]):
            self._erase(erasure["patient_ids"])
