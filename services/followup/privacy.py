"""Follow-up and the patients' data rights (README.md § Data protection), mixed into
FollowupService.

- export_patient: the person's tasks (with their history, notes and outcomes) and the copies
  of intake's events followup keeps about them.
- PatientErased (intake.events): the person's pending calls are cancelled with the reason
  "erased" (FollowUpCancelled; the figures keep counting them as due, services/analytics);
  every task loses the person's name, phone key, the call notes and the complaint text (also in
  the copies of its events in the outbox), every kept event its personal data. Outcomes,
  scores, times and agents stay: the figures are derived from them.
- retention: a task due more than `task_notes_retention_days` ago loses its notes and
  complaint text, a page at a time in `due_ts` order (indexed; shared/retention.py).
"""

import logging

from shared import aliases, erasures, retention
from shared.clock import utcnow
from shared.messaging import rpc
from shared.privacy import (
    ERASED_REASON,
    cutoff,
    erased_data,
    jsonable,
    reduce_queue,
    without_outbox,
)
from shared.timers import configured_timer

log = logging.getLogger(__name__)

FREE_TEXT = ("notes", "complaint")  # what a call's agent typed


def without_free_text(kind, data):
    """A follow-up event's data without the call's notes and complaint text."""
    return {key: value for key, value in (data or {}).items() if key not in FREE_TEXT}


class FollowupPrivacyMixin(erasures.ErasesPatients):
    def _person_ids(self, patient_id, patient_ids=()):
        return aliases.person_ids(
            self.store.db.aliases, self.store.resolve, patient_id, patient_ids, to_field="survivor"
        )

    # -- export -------------------------------------------------------------------------------
    @rpc
    def export_patient(self, patient_id, patient_ids=None):
        ids = self._person_ids(patient_id, patient_ids)
        tasks = [
            without_outbox(task)
            for pid in ids
            for task in self.store.db.tasks.find({"patient_id": pid})
        ]
        events = [event for pid in ids for event in self.store.db.events.find({"patient_id": pid})]
        return jsonable(
            {
                "service": "followup",
                "patient_ids": ids,
                "tasks": sorted(tasks, key=lambda task: (task.get("due_ts") or 0, task["_id"])),
                "events": sorted(
                    events, key=lambda event: (str(event.get("occurred_at")), event["_id"])
                ),
            }
        )

    # -- erasure ------------------------------------------------------------------------------
    def _erase(self, ids):
        now = utcnow()
        db = self.store.db
        for pid in ids:
            for task in self.store.pending_of(pid):
                doc = self._cancel(task, ERASED_REASON, now)
                if doc:
                    self.store.outbox.publish_or_leave(doc)
            for task in db.tasks.find({"patient_id": pid}):
                queue, changed = reduce_queue(task.get("outbox_queue"), erased_data)
                if not changed and not any(
                    task.get(key) for key in ("patient_name", "phone_digits", *FREE_TEXT)
                ):
                    continue
                db.tasks.update_one(
                    {"_id": task["_id"], "outbox_seq": task.get("outbox_seq")},
                    {
                        "$set": {
                            "outbox_queue": queue,
                            "notes": None,
                            "complaint": None,
                            "patient_name": None,
                            "phone_digits": None,
                        }
                    },
                )
            for kept in db.events.find({"patient_id": pid}):
                cleared = erased_data(kept["event_type"], kept.get("data"))
                if cleared != kept.get("data") or kept.get("phone_digits"):
                    db.events.update_one(
                        {"_id": kept["_id"]}, {"$set": {"data": cleared, "phone_digits": None}}
                    )

    # -- retention ----------------------------------------------------------------------------
    @configured_timer("retention_interval_s")
    def enforce_retention(self):
        now = utcnow()
        stripped = self._expire_notes(now)
        for erasure in erasures.recent(self.store.db, now, self.config["erasure_sweep_days"]):
            self._erase(erasure["patient_ids"])
        if stripped:
            log.info("old call notes removed", extra={"count": stripped})
        return stripped

    def _expire_notes(self, now):
        db, stripped = self.store.db, []

        def expire(task):
            queue, changed = reduce_queue(task.get("outbox_queue"), without_free_text)
            if not changed and not any(task.get(key) for key in FREE_TEXT):
                return True
            # Conditional on the outbox as read: a task written meanwhile is looked at again.
            done = db.tasks.update_one(
                {"_id": task["_id"], "outbox_seq": task.get("outbox_seq")},
                {
                    "$set": {
                        "outbox_queue": queue,
                        "notes": None,
                        "complaint": None,
                        "notes_expired_at": now.isoformat(),
                    }
                },
            )
            if done.matched_count:
                stripped.append(task["_id"])
            return bool(done.matched_count)

        upper = cutoff(now, self.config["task_notes_retention_days"]).timestamp()
        retention.walk(
            db,
            "tasks",
            "due_ts",
            upper,
            "retention.notes",
            expire,
            {"due_ts": 1, "notes": 1, "complaint": 1, "outbox_queue": 1, "outbox_seq": 1},
        )
        return len(stripped)
