"""Appointments' own database.

Collections
  appointments   one document per appointment, with the outbox of its events
  slots          one document per (doctor, 5-minute unit) taken: the unique _id is what
                 makes double booking impossible, across workers and replicas
  events         intake events received (for the patient's phone and consent)
  notifications  reminders recorded by the default notifier
  mirror_marks   per mirrored appointment id: what the hospital's system said besides
                 scheduling it (withdrawn, missed), kept even when that came first
  void_visits    visit ids a VisitCancelled voided (kept: the visit may come later)
  aliases        retired patient id -> the id it was merged into (PatientsMerged)
"""

import datetime
from collections.abc import Iterable
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.appointments import domain
from shared import outbox
from shared.aliases import AliasesMixin
from shared.clock import utcnow
from shared.errors import Conflict, NotFound
from shared.indexes import Index
from shared.store import Store

EXCHANGE = "appointments.events"


class AppointmentsStore(AliasesMixin, Store):
    indexes = (
        Index("appointments", ["patient_id"]),
        Index("appointments", ["status"]),
        Index("appointments", ["local_date"]),
        Index("appointments", ["reminder_state"]),
        Index("slots", ["appointment_id"]),
        Index("appointments", ["attended_visit_id"]),
        Index("events", ["patient_id"]),
        Index(
            "notifications", ["patient_id"]
        ),  # a person's reminders (privacy.py: export, erasure)
        *outbox.Outbox.indexes("appointments"),
    )

    def setup(self) -> None:
        super().setup()
        self.outbox = outbox.Outbox(
            self.db.appointments, self.container.config["HCRM"]["amqp_uri"], "appointments"
        )

    # -- slots ----------------------------------------------------------------------------
    def claim_slots(self, doctor_id: str, units: Iterable[int], appointment_id: str) -> None:
        """Claim every unit, ascending; on a taken unit give back what was claimed: Conflict."""
        claimed = []
        for unit in units:
            try:
                self.db.slots.insert_one(
                    {"_id": f"{doctor_id}|{unit}", "appointment_id": appointment_id}
                )
                claimed.append(unit)
            except DuplicateKeyError:
                holder = self.db.slots.find_one({"_id": f"{doctor_id}|{unit}"})
                if holder and holder["appointment_id"] == appointment_id:
                    continue  # a retry of this very booking
                self.db.slots.delete_many(
                    {
                        "_id": {"$in": [f"{doctor_id}|{u}" for u in claimed]},
                        "appointment_id": appointment_id,
                    }
                )
                raise Conflict(f"doctor {doctor_id} is already booked at that time") from None

    def release_slots(self, appointment_id: str, keep: Iterable[str] = ()) -> None:
        self.db.slots.delete_many(
            {"appointment_id": appointment_id, **({"_id": {"$nin": list(keep)}} if keep else {})}
        )

    # -- appointments -----------------------------------------------------------------------
    def insert(
        self, doc: dict[str, Any], message: dict[str, Any], now: datetime.datetime
    ) -> dict[str, Any]:
        doc = {**doc, **outbox.fields(EXCHANGE, message["event_type"], message, now)}
        self.db.appointments.insert_one(doc)
        return doc

    def get(self, appointment_id: str) -> dict[str, Any]:
        doc = self.find_one(appointment_id)
        if doc is None:
            raise NotFound(f"no appointment {appointment_id}")
        return doc

    def find_one(self, appointment_id: str) -> dict[str, Any] | None:
        return self.db.appointments.find_one({"_id": appointment_id})

    def change(
        self,
        appointment: dict[str, Any],
        set_fields: dict[str, Any],
        messages: Iterable[dict[str, Any]],
        now: datetime.datetime,
        extra_filter: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Apply a change to the appointment as read (same status, and `extra_filter`): atomic
        with its events. None when it changed meanwhile."""
        update = (
            outbox.append(
                {"$set": set_fields}, [(EXCHANGE, m["event_type"], m) for m in messages], now
            )
            if messages
            else {"$set": set_fields}
        )  # nothing to publish: the outbox is untouched
        return self.db.appointments.find_one_and_update(
            {"_id": appointment["_id"], "status": appointment["status"], **(extra_filter or {})},
            update,
            return_document=ReturnDocument.AFTER,
        )

    def due_reminders(self, now_ts: float, limit: int = 500) -> list[dict[str, Any]]:
        return list(
            self.db.appointments.find(
                {"reminder_state": "pending", "reminder_due_ts": {"$lte": now_ts}}
            ).limit(limit)
        )

    def due_no_shows(self, now_ts: float, limit: int = 500) -> list[dict[str, Any]]:
        return [
            doc
            for status in domain.ACTIVE
            for doc in self.db.appointments.find(
                {"status": status, "no_show_due_ts": {"$lte": now_ts}}
            ).limit(limit)
        ]

    def same_day(
        self, patient_id: str, department: str | None, local_date: str
    ) -> list[dict[str, Any]]:
        return list(
            self.db.appointments.find(
                {"patient_id": patient_id, "department": department, "local_date": local_date}
            )
        )

    def find(
        self, query: dict[str, Any], limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        items = list(
            self.db.appointments.find(query, {"outbox_queue": 0})
            .sort([("starts_ts", 1), ("_id", 1)])
            .skip(offset)
            .limit(limit)
        )
        total = len(list(self.db.appointments.find(query, {"_id": 1}).limit(100_000)))
        return items, total

    # -- patients' contact data ------------------------------------------------------------
    def record_event(self, message: dict[str, Any]) -> None:
        try:
            self.db.events.insert_one(
                {
                    "_id": message["event_id"],
                    "event_type": message["event_type"],
                    "patient_id": message.get("patient_id"),
                    "occurred_at": message["occurred_at"],
                    "data": message.get("data") or {},
                }
            )
        except DuplicateKeyError:
            pass

    def events_of(self, patient_id: str) -> list[dict[str, Any]]:
        events = list(self.db.events.find({"patient_id": patient_id}))
        for event in events:
            event["event_id"] = event.pop("_id")
        return events

    # -- the mirror's marks ------------------------------------------------------------------
    def mark(self, appointment_id: str, kind: str, details: dict[str, Any]) -> None:
        """Record that the source system withdrew / missed the appointment (idempotent; an
        upsert, so it holds also when it arrives before the AppointmentScheduled)."""
        self.db.mirror_marks.update_one(
            {"_id": appointment_id}, {"$set": {kind: True, f"{kind}_details": details}}, upsert=True
        )

    def marks_of(self, appointment_id: str) -> dict[str, Any]:
        return self.db.mirror_marks.find_one({"_id": appointment_id}) or {}

    # -- cancelled visits -------------------------------------------------------------------
    def void_visit(self, visit_id: str, event_id: str) -> None:
        self.db.void_visits.update_one(
            {"_id": visit_id}, {"$setOnInsert": {"event_id": event_id}}, upsert=True
        )

    def visit_is_void(self, visit_id: str | None) -> bool:
        return bool(visit_id) and self.db.void_visits.find_one({"_id": visit_id}) is not None

    def attended_by(self, visit_id: str) -> list[dict[str, Any]]:
        return list(
            self.db.appointments.find({"attended_visit_id": visit_id, "status": domain.ATTENDED})
        )

    # -- merged patients (alias_of / add_alias: shared.aliases.AliasesMixin) --------------
    def repoint(self, retired: str, survivor: str) -> int:
        """What is held under the retired id now belongs to the survivor."""
        moved = self.db.appointments.update_many(
            {"patient_id": retired}, {"$set": {"patient_id": survivor}}
        ).modified_count
        self.db.events.update_many({"patient_id": retired}, {"$set": {"patient_id": survivor}})
        return moved

    def relay(self) -> int:
        return self.outbox.relay(now=utcnow())
