"""Complaints and the patients' data rights (README.md § Data protection), mixed into
ComplaintsService.

- export_patient: the person's complaints with their whole history.
- PatientErased (intake.events, bound for complaints.inbound): the person's unresolved
  complaints are closed as cancelled with the reason "erased" (ComplaintCancelled: no deadline
  escalates them any more; the figures, which count complaints by when they were received and
  resolved, stay as they were); every complaint of the person loses its description (the text
  "(erased)" stands in), the resolution text and the notes of its history, also in the copies
  of its events in the outbox. Category, department, severity, times and SLA results stay.
"""

import json
import logging

from services.complaints import domain
from services.complaints.store import history_entry
from shared import aliases, erasures
from shared.clock import utcnow
from shared.messaging import rpc
from shared.privacy import (
    ERASED_REASON,
    ERASED_TEXT,
    erased_data,
    jsonable,
    reduce_queue,
    without_outbox,
)
from shared.timers import configured_timer

log = logging.getLogger(__name__)

SYSTEM = "system"


def cleared_history(history):
    """The history entries without their notes (who did what when stays)."""
    out = []
    for entry in history or []:
        parsed = json.loads(entry) if isinstance(entry, str) else dict(entry)
        if parsed.get("action") != "patient_merged":  # that note holds two patient ids, no text
            parsed["note"] = None
        out.append(json.dumps(parsed, ensure_ascii=False) if isinstance(entry, str) else parsed)
    return out


class ComplaintsPrivacyMixin(erasures.ErasesPatients):
    def _person_ids(self, patient_id, patient_ids=()):
        return aliases.person_ids(
            self.store.db.aliases, self._current_patient, patient_id, patient_ids, to_field="to"
        )

    @rpc
    def export_patient(self, patient_id, patient_ids=None):
        ids = self._person_ids(patient_id, patient_ids)
        complaints = []
        for pid in ids:
            for doc in self.store.db.complaints.find({"patient_id": pid}):
                doc = without_outbox(doc)
                doc["history"] = [
                    json.loads(h) if isinstance(h, str) else h for h in doc.get("history") or []
                ]
                complaints.append(doc)
        return jsonable(
            {
                "service": "complaints",
                "patient_ids": ids,
                "complaints": sorted(
                    complaints, key=lambda c: (c.get("received_ts") or 0, c["_id"])
                ),
            }
        )

    def _erase(self, ids):
        now = utcnow()
        db = self.store.db
        for pid in ids:
            for complaint in db.complaints.find({"patient_id": pid}):
                if complaint["status"] not in domain.CLOSED:
                    self._cancel_erased(complaint, now)
            for complaint in db.complaints.find({"patient_id": pid}):
                queue, changed = reduce_queue(complaint.get("outbox_queue"), erased_data)
                history = cleared_history(complaint.get("history"))
                if (
                    not changed
                    and history == (complaint.get("history") or [])
                    and complaint.get("description") == ERASED_TEXT
                    and not complaint.get("resolution")
                ):
                    continue
                db.complaints.update_one(
                    {"_id": complaint["_id"], "outbox_seq": complaint.get("outbox_seq")},
                    {
                        "$set": {
                            "outbox_queue": queue,
                            "history": history,
                            "description": ERASED_TEXT,
                            "resolution": None,
                        }
                    },
                )

    def _cancel_erased(self, complaint, now):
        fields = {
            "status": domain.CANCELLED,
            "cancelled_at": now.isoformat(),
            "cancel_reason": ERASED_REASON,
        }
        message = self._message(
            "ComplaintCancelled",
            {**complaint, **fields},
            now,
            {"actor": SYSTEM, "reason": ERASED_REASON},
            discriminator="cancel",
        )
        done = self.store.change(
            complaint,
            fields,
            history_entry(
                now, SYSTEM, "cancel", ERASED_REASON, complaint["status"], domain.CANCELLED
            ),
            [("ComplaintCancelled", message)],
            now,
        )
        if done is not None:
            self.store.outbox.publish_or_leave(done)

    @configured_timer("retention_interval_s")
    def enforce_retention(self):
        for erasure in erasures.recent(self.store.db, utcnow(), self.config["erasure_sweep_days"]):
            self._erase(erasure["patient_ids"])
