"""The HL7 listener and the patients' data rights (README.md § Data protection), mixed into
Hl7Service. The listener keeps every message as it came (raw bytes: names, phones, addresses)
for audit and replay, and knows patients only by MRN.

- export_patient: the messages naming one of the person's MRNs (the gateway passes them),
  their text included.
- PatientErased (intake.events, queue hl7.inbound; the event names the person's MRNs): those
  messages lose their text, the reason of their answer and the copies of the events derived
  from them (the ACK, header fields and a code, stays: a resend is answered with it again);
  the visits remembered for the MRNs (first visit or return) are forgotten, so a later
  message with the same MRN is a new person's first visit, as intake makes it a new record.
  What stays: when, from which system, which control id and trigger, and the outcome. A
  message that named the person but could not be mapped to an MRN (answered AE/AR) is not
  found this way: its text goes with the retention period below.
- retention: a message's text (and its events' copies) is removed `raw_retention_days` after
  it was received, a page at a time in `received_at` order (shared/retention.py). A message
  without its text can no longer be replayed (`hcrm hl7 replay` skips it).
"""

import logging

from shared import retention
from shared.clock import utcnow
from shared.errors import InvalidMessage
from shared.messaging import reliable_consumer, rpc
from shared.outbox import PUBLISHED
from shared.privacy import ERASED_EVENT, cutoff, erased_data, jsonable, reduce_queue, without_outbox
from shared.timers import configured_timer

log = logging.getLogger(__name__)


def _naming(mrns):
    """The messages naming one of these MRNs. `$in`, not equality: NX-27017 finds nothing for an
    equality on an indexed array field (count_documents does; MongoDB does either way)."""
    return {"mrns": {"$in": list(mrns)}}


def _remove_text(db, doc, why, now, **more):
    """A stored message loses its text (and `more` fields) and its queued events' copies keep
    only ids. Guarded by outbox_seq: when the outbox changed the queue meanwhile, nothing is
    written over it (0 matched; the caller tries again later)."""
    queue, _ = reduce_queue(doc.get("outbox_queue"), erased_data)
    return db.messages.update_one(
        {"_id": doc["_id"], "outbox_seq": doc.get("outbox_seq")},
        {
            "$set": {
                "raw": None,
                **more,
                "outbox_queue": queue,
                "raw_removed": why,
                "raw_removed_at": now,
            }
        },
    )


class Hl7PrivacyMixin:
    @rpc
    def export_patient(self, patient_id=None, patient_ids=None, mrns=None):
        db = self.store.db
        messages = (
            {doc["_id"]: without_outbox(doc) for doc in db.messages.find(_naming(mrns))}
            if mrns
            else {}
        )
        return jsonable(
            {
                "service": "hl7",
                "mrns": list(mrns or ()),
                "messages": sorted(
                    messages.values(),
                    key=lambda doc: (str(doc.get("received_at")), str(doc["_id"])),
                ),
                "remembered_visits": [
                    doc for mrn in mrns or () for doc in db.visits.find({"mrn": mrn})
                ],
            }
        )

    @reliable_consumer("hl7.inbound")
    def handle_intake_event(self, message):
        event = message.body
        if not isinstance(event, dict) or not event.get("event_type"):
            raise InvalidMessage({"event_type": ["A canonical event with an event_type."]})
        if event["event_type"] == ERASED_EVENT:
            self.erase_mrns((event.get("data") or {}).get("mrns") or [])

    def erase_mrns(self, mrns):
        db, now, count = self.store.db, utcnow(), 0
        for mrn in mrns:
            for doc in db.messages.find(_naming([mrn]), {"outbox_queue": 1, "outbox_seq": 1}):
                done = _remove_text(db, doc, "erased", now, reason=None, mrns=[])
                count += done.modified_count
            db.visits.delete_many({"mrn": mrn})
        log.info("patient erased", extra={"messages": count})

    @configured_timer("retention_interval_s")
    def enforce_retention(self):
        db, now, removed = self.store.db, utcnow(), []

        def remove(doc):
            if doc.get("raw_removed"):
                return True
            if doc.get("outbox_state") not in (None, PUBLISHED):
                return False  # its events are still to be sent: next time
            done = _remove_text(db, doc, "retention", now)
            if done.matched_count:
                removed.append(doc["_id"])
            return bool(done.matched_count)

        retention.walk(
            db,
            "messages",
            "received_at",
            cutoff(now, self.config["raw_retention_days"]),
            "retention.raw",
            remove,
            {
                "received_at": 1,
                "raw_removed": 1,
                "outbox_queue": 1,
                "outbox_seq": 1,
                "outbox_state": 1,
            },
        )
        if removed:
            log.info("old HL7 message texts removed", extra={"count": len(removed)})
