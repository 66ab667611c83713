"""Complaints' own database: one document per complaint with its full history and the
outbox of the events its changes cause. Compared times are epoch seconds (`*_ts`, 0 = not
yet); shown times are ISO text. `aliases` maps a retired patient id to the one it was
merged into (PatientsMerged)."""

import datetime
import json
from collections.abc import Iterable
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.complaints import domain
from shared import outbox
from shared.aliases import AliasesMixin
from shared.clock import utcnow
from shared.errors import NotFound
from shared.indexes import Index
from shared.store import Store

EXCHANGE = "complaints.events"


def history_entry(
    at: datetime.datetime,
    by: str | None,
    action: str,
    note: str | None = None,
    status_from: str | None = None,
    status_to: str | None = None,
) -> str:
    # JSON text: NX-27017 turns documents in a $pushed array to text.
    return json.dumps(
        {
            "at": at.isoformat(),
            "by": by,
            "action": action,
            "note": note,
            "from": status_from,
            "to": status_to,
        },
        ensure_ascii=False,
    )


class ComplaintsStore(AliasesMixin, Store):
    indexes = (
        Index("complaints", ["status"]),
        Index("complaints", ["patient_id"]),
        Index("complaints", ["received_ts"]),
        Index("complaints", ["ack_breach"]),
        Index("complaints", ["resolve_breach"]),
        *outbox.Outbox.indexes("complaints"),
        *outbox.Outbox.indexes("reports"),
    )

    def setup(self) -> None:
        super().setup()
        amqp_uri = self.container.config["HCRM"]["amqp_uri"]
        self.outbox = outbox.Outbox(self.db.complaints, amqp_uri, "complaints")
        self.report_outbox = outbox.Outbox(self.db.reports, amqp_uri, "complaints")

    def open(
        self, doc: dict[str, Any], message: dict[str, Any], now: datetime.datetime
    ) -> tuple[dict[str, Any], bool]:
        """Insert a complaint (once, by id) with its ComplaintOpened event."""
        doc = {**doc, **outbox.fields(EXCHANGE, "ComplaintOpened", message, now)}
        try:
            self.db.complaints.insert_one(doc)
            return doc, True
        except DuplicateKeyError:
            return self.get(doc["_id"]), False

    def get(self, complaint_id: str) -> dict[str, Any]:
        doc = self.db.complaints.find_one({"_id": complaint_id})
        if doc is None:
            raise NotFound(f"no complaint {complaint_id}")
        return doc

    def change(
        self,
        complaint: dict[str, Any],
        set_fields: dict[str, Any],
        history: str,
        messages: Iterable[tuple[str, dict[str, Any]]],
        now: datetime.datetime,
        guard: dict[str, Any] | None = None,
    ) -> dict[str, Any] | None:
        """Apply a change to the complaint as it was read (same status): atomic, with its
        history entry and events. None when someone changed it meanwhile."""
        update = outbox.append(
            {"$set": set_fields, "$push": {"history": history}},
            [(EXCHANGE, kind, body) for kind, body in messages],
            now,
        )
        return self.db.complaints.find_one_and_update(
            {"_id": complaint["_id"], "status": complaint["status"], **(guard or {})},
            update,
            return_document=ReturnDocument.AFTER,
        )

    def breach_candidates(self, now_ts: float, limit: int = 500) -> list[dict[str, Any]]:
        """Unresolved complaints with a deadline passed and not yet recorded (by index)."""
        seen, out = set(), []
        for query in (
            {"ack_breach": "no", "ack_due_ts": {"$lt": now_ts}, "acknowledged_ts": 0},
            {"resolve_breach": "no", "resolve_due_ts": {"$lt": now_ts}},
        ):
            for doc in self.db.complaints.find(query).limit(limit):
                if doc["_id"] not in seen and doc["status"] != domain.RESOLVED:
                    seen.add(doc["_id"])
                    out.append(doc)
        return out

    def find(
        self, query: dict[str, Any], limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        items = list(
            self.db.complaints.find(query, {"outbox_queue": 0})
            .sort([("received_ts", -1), ("_id", 1)])
            .skip(offset)
            .limit(limit)
        )
        total = len(list(self.db.complaints.find(query, {"_id": 1}).limit(100_000)))
        return items, total

    def received_between(self, start_ts: float, end_ts: float) -> list[dict[str, Any]]:
        return list(
            self.db.complaints.find(
                {"received_ts": {"$gte": start_ts, "$lt": end_ts}},
                {"outbox_queue": 0, "history": 0},
            )
        )

    def count(self, query: dict[str, Any]) -> int:
        return len(list(self.db.complaints.find(query, {"_id": 1}).limit(1_000_000)))

    def publish_report(
        self,
        week_start: str,
        report: dict[str, Any],
        message: dict[str, Any],
        now: datetime.datetime,
    ) -> dict[str, Any] | None:
        """Store the week's report once (its week is the id): replicas never send it twice."""
        doc = {
            "_id": week_start,
            "report": report,
            "created_at": now.isoformat(),
            **outbox.fields(EXCHANGE, message["event_type"], message, now),
        }
        try:
            self.db.reports.insert_one(doc)
            return doc
        except DuplicateKeyError:
            return None

    # -- merged patients (alias_of / add_alias: shared.aliases.AliasesMixin) --------------
    def repoint(self, retired: str, survivor: str, history: str) -> int:
        """The retired id's complaints are the survivor's from now on (noted in their history)."""
        return self.db.complaints.update_many(
            {"patient_id": retired},
            {"$set": {"patient_id": survivor}, "$push": {"history": history}},
        ).modified_count

    def relay(self) -> None:
        self.outbox.relay(now=utcnow())
        self.report_outbox.relay(now=utcnow())
