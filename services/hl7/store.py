"""The HL7 listener's own database (hcrm_hl7).

Collections
  messages  one document per message received (MLLP or HTTP): the raw bytes as they came
            (audit, replay), the header fields, the outcome (status accepted / error /
            rejected, the ACK bytes answered, the reason) and the events it was mapped to,
            which double as its outbox. Unique on (sending_application, sending_facility,
            control_id): the deduplication point (docs/HL7.md, a duplicate is answered with the
            first ACK again). A message without a readable header has no control_id and is
            kept for the record only.
  visits    the visits this listener mapped (one per PatientVisited it derived), by MRN: what
            `has_earlier_visit` reads to tell a first visit from a return. It is the listener's
            own view: visits that reached intake by another route (JSON events, another
            listener), or were cancelled later, are not in it.
  tallies   messages counted by hospital day, trigger and ACK code (the admin page's counts,
            without scanning every message ever received). Counted in memory and written
            by the relay timer (and at stop), so a message costs no extra round trip; a
            kill -9 loses the last seconds of counts, never a message.
"""

import collections
import datetime
from collections.abc import Iterable
from typing import Any

from bson import ObjectId
from pymongo import ReturnDocument, UpdateOne

from shared.clock import utcnow
from shared.indexes import Index
from shared.outbox import Outbox
from shared.store import Store
from shared.topology import HOSPITAL_EXCHANGE

# Never sent to callers of recent(): the message itself, the ACK and the outbox.
HIDDEN = {"raw": 0, "ack": 0, "outbox_queue": 0, "mrns": 0}


def message_key(
    sending_application: str | None, sending_facility: str | None, control_id: str | None
) -> str:
    """The text form of the deduplication key (visits refer to their message by it)."""
    return "\x1f".join((sending_application or "", sending_facility or "", control_id or ""))


class Hl7Store(Store):
    indexes = (
        Index(
            "messages",
            ["sending_application", "sending_facility", "control_id"],
            unique=True,
            partialFilterExpression={"control_id": {"$type": "string"}},
        ),
        Index("messages", ["received_at"]),
        Index("messages", ["control_id"]),
        Index("messages", ["mrns"]),  # a person's messages (privacy.py: export, erasure)
        *Outbox.indexes("messages"),
        Index("visits", ["mrn"]),
    )

    def setup(self) -> None:
        super().setup()
        self.outbox = Outbox(self.db.messages, self.container.config["HCRM"]["amqp_uri"], "hl7")
        # (day, trigger, ack_code, field) -> not yet written
        self._counted: collections.Counter[tuple[str, str, str, str]] = collections.Counter()

    def stop(self) -> None:
        self.flush_tallies()
        super().stop()

    # -- receiving ------------------------------------------------------------------------
    def find_message(
        self, sending_application: str | None, sending_facility: str | None, control_id: str | None
    ) -> dict[str, Any] | None:
        return self.db.messages.find_one(
            {
                "sending_application": sending_application,
                "sending_facility": sending_facility,
                "control_id": control_id,
            }
        )

    def insert_message(self, doc: dict[str, Any]) -> dict[str, Any]:
        """One write: the message, its outcome and its events (the outbox). Raises
        DuplicateKeyError when the same message was recorded first by another worker."""
        doc.setdefault("_id", ObjectId())
        self.db.messages.insert_one(doc)
        return doc

    def has_earlier_visit(self, mrn: str, before: datetime.datetime, key: str) -> bool:
        """Whether this listener mapped a visit of `mrn` from a message received before
        `before`, other than the message `key` itself (a resend of a message whose visit was
        recorded but whose ACK was lost must not count its own visit).
        Compared as epoch seconds (`received_ts`): NX-27017 compares dates to the second, and
        two visits of one MRN a few milliseconds apart (a batch file, a replay) are still
        one before the other. Visits remembered before `received_ts` fall back to the date."""
        return (
            self.db.visits.find_one(
                {
                    "mrn": mrn,
                    "message_key": {"$ne": key},
                    "$or": [
                        {"received_ts": {"$lt": before.timestamp()}},
                        {"received_ts": {"$exists": False}, "received_at": {"$lt": before}},
                    ],
                },
                {"_id": 1},
            )
            is not None
        )

    def record_visits(self, key: str, mrns: Iterable[str], received_at: datetime.datetime) -> None:
        """Remember the visits a message maps to (idempotent: keyed by message and MRN)."""
        for mrn in dict.fromkeys(mrns):
            self.db.visits.update_one(
                {"_id": f"{key}\x1f{mrn}"},
                {
                    "$setOnInsert": {
                        "mrn": mrn,
                        "message_key": key,
                        "received_at": received_at,
                        "received_ts": received_at.timestamp(),
                    }
                },
                upsert=True,
            )

    def tally(self, day: str, trigger: str, ack_code: str, duplicate: bool = False) -> None:
        self._counted[(day, trigger, ack_code, "duplicates" if duplicate else "messages")] += 1

    def flush_tallies(self) -> None:
        counted, self._counted = self._counted, collections.Counter()
        if not counted:
            return
        # The day last in the _id: NX-27017 misreads an _id that starts like a date.
        try:
            self.db.tallies.bulk_write(
                [
                    UpdateOne(
                        {"_id": f"{trigger}|{ack_code}|{day}"},
                        {
                            "$setOnInsert": {"day": day, "trigger": trigger, "ack_code": ack_code},
                            "$inc": {field: n},
                        },
                        upsert=True,
                    )
                    for (day, trigger, ack_code, field), n in counted.items()
                ],
                ordered=False,
            )
        except Exception:
            self._counted.update(counted)  # written with the next flush (at worst twice: counts)
            raise

    # -- reading --------------------------------------------------------------------------
    def recent(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        cursor = self.db.messages.find({}, HIDDEN).sort("_id", -1).skip(offset).limit(limit)
        return list(cursor), self.db.messages.estimated_document_count()

    def tallies(self) -> list[dict[str, Any]]:
        self.flush_tallies()
        return list(self.db.tallies.find({}))

    # -- replay ---------------------------------------------------------------------------
    def messages_to_replay(
        self,
        since: datetime.datetime | None = None,
        control_id: str | None = None,
        after: str | None = None,
        limit: int = 100,
    ) -> list[dict[str, Any]]:
        """Stored messages with a readable header, oldest first, from `after` (an _id)."""
        query: dict[str, Any] = {"control_id": {"$type": "string"}}
        if control_id:
            query["control_id"] = control_id
        if since:
            query["received_at"] = {"$gte": since}
        if after:
            query["_id"] = {"$gt": ObjectId(after)}
        return list(self.db.messages.find(query, {"outbox_queue": 0}).sort("_id", 1).limit(limit))

    def record_replay(
        self,
        doc_id: Any,
        changes: dict[str, Any],
        events: Iterable[dict[str, Any]],
        now: datetime.datetime,
    ) -> dict[str, Any] | None:
        """Append the re-derived events to the message's outbox with its new outcome, in one
        write; returns the document for the sender."""
        update = Outbox.append(
            {"$set": changes, "$inc": {"replays": 1}},
            [(HOSPITAL_EXCHANGE, event["event_type"], event) for event in events],
            now,
        )
        return self.db.messages.find_one_and_update(
            {"_id": doc_id}, update, projection={"_id": 1}, return_document=ReturnDocument.AFTER
        )

    def relay_outbox(self) -> int:
        self.flush_tallies()
        return self.outbox.relay(now=utcnow())


def hospital_day(moment: datetime.datetime, zone: datetime.tzinfo) -> str:
    return moment.astimezone(zone).date().isoformat()
