"""Campaigns' own database (hcrm_campaigns).

Collections
  events         intake's canonical events about people (unique on event_id), filed under
                 the person's live patient_id: what `people` is derived from
  people         one document per person: `view` (domain.person_view as JSON text) and
                 `phone_digits` (an SMS reply finds its sender by it)
  aliases        retired patient_id -> the survivor (shared/aliases.py; PatientsMerged)
  opt_outs       one document per person who withdrew marketing consent (`state`
                 withdrawn | restored), with the outbox of MarketingConsentWithdrawn/Restored
  campaigns      one document per campaign: its definition and status
  deliveries     one document per (campaign, person), _id "<campaign_id>|<patient_id>": the
                 unique key that sends each person each campaign once; `queue_ts` is when it
                 is next due (domain.DONE_TS once final), with the outbox of its event
  daily_slots    the per-day limit: one document per message of a person on a local day
  notifications  messages recorded by the default notifier (shared/notifier.py)
  erasures       the erasures applied (shared/erasures.py)
Times compared in queries are epoch seconds; times shown are ISO text.
"""

import datetime
from collections.abc import Callable, Iterable
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.campaigns import domain
from shared import outbox
from shared.aliases import AliasesMixin
from shared.clock import utcnow
from shared.errors import NotFound
from shared.indexes import Index
from shared.phones import phone_digits
from shared.store import Store, insert_new

EXCHANGE = "campaigns.events"
# A new delivery has an empty outbox: its one event is appended when it is sent.
EMPTY_OUTBOX = {
    "outbox_queue": [],
    "outbox_seq": 0,
    "outbox_sent": 0,
    "outbox_state": outbox.PUBLISHED,
    "outbox_lock_ts": 0,
    "outbox_claim_ts": 0,
}
WITHDRAWN, RESTORED = "withdrawn", "restored"


class CampaignsStore(AliasesMixin, Store):
    indexes = (
        Index("events", ["patient_id"]),
        Index("people", ["phone_digits"]),
        Index("aliases", ["to"]),
        Index("opt_outs", ["state"]),
        Index("campaigns", ["status"]),
        Index("deliveries", ["campaign_id"]),
        Index("deliveries", ["queue_ts"]),
        Index("deliveries", ["patient_id"]),
        Index("daily_slots", ["patient_id"]),
        Index("notifications", ["patient_id"]),
        *outbox.Outbox.indexes("deliveries"),
        *outbox.Outbox.indexes("opt_outs"),
    )

    def setup(self) -> None:
        super().setup()
        amqp_uri = self.container.config["HCRM"]["amqp_uri"]
        self.outbox = outbox.Outbox(self.db.deliveries, amqp_uri, "campaigns")
        self.opt_out_outbox = outbox.Outbox(self.db.opt_outs, amqp_uri, "campaigns")

    # -- people ---------------------------------------------------------------------------------
    def record_event(self, event: dict[str, Any], patient_id: str | None) -> None:
        try:
            self.db.events.insert_one(
                {
                    "_id": event["event_id"],
                    "patient_id": patient_id,
                    "event_type": event["event_type"],
                    "occurred_at": event["occurred_at"],
                    "data": event.get("data") or {},
                }
            )
        except DuplicateKeyError:
            pass

    def events_of(self, patient_id: str | None) -> list[dict[str, Any]]:
        events = list(self.db.events.find({"patient_id": patient_id}))
        for event in events:
            event["event_id"] = event.pop("_id")
        return events

    def save_view(self, patient_id: str | None, view: dict[str, Any]) -> None:
        self.db.people.update_one(
            {"_id": patient_id},
            {
                "$set": {
                    "view": domain.dump_view(view),
                    "phone_digits": phone_digits(view.get("phone")) or "",
                }
            },
            upsert=True,
        )

    def view_of(self, patient_id: str | None) -> dict[str, Any] | None:
        doc = self.db.people.find_one({"_id": patient_id})
        return domain.load_view(doc.get("view")) if doc else None

    def views(self, patient_ids: Iterable[str] | None = None) -> dict[str, dict[str, Any] | None]:
        """{patient_id: view} of the given people (by _id), or of everyone."""
        query = {"_id": {"$in": list(patient_ids)}} if patient_ids is not None else {}
        return {doc["_id"]: domain.load_view(doc.get("view")) for doc in self.db.people.find(query)}

    def people_with_phone(self, digits: str | None) -> list[str]:
        return (
            [doc["_id"] for doc in self.db.people.find({"phone_digits": digits}, {"_id": 1})]
            if digits
            else []
        )

    def merge(self, retired: str, survivor: str) -> str | None:
        """PatientsMerged: record the alias (the first merge of a retired id stands), file the
        retired record's events under the survivor's live id, carry an opt-out over, and drop
        the retired person's view. Returns the live id."""
        self.add_alias(retired, survivor)
        live = self.live_patient_id(retired)
        self.repoint(retired, live)
        return live

    def retired_ids(self) -> set[str]:
        return {doc["_id"] for doc in self.db.aliases.find({}, {"_id": 1})}

    def repoint(self, old: str | None, new: str | None) -> None:
        if old == new:
            return
        self.db.events.update_many({"patient_id": old}, {"$set": {"patient_id": new}})
        self.db.people.delete_one({"_id": old})
        retired = self.db.opt_outs.find_one({"_id": old})
        if retired and retired.get("state") == WITHDRAWN:
            # The person withdrew under the retired record: the one person stays withdrawn.
            # (The stream has the withdrawal under the retired id already: no second event.)
            self.db.opt_outs.update_one(
                {"_id": new},
                {
                    "$setOnInsert": {
                        "state": WITHDRAWN,
                        "via": "merge",
                        "at": retired.get("at"),
                        "withdrawals": 1,
                        "restorals": 0,
                        **EMPTY_OUTBOX,
                    }
                },
                upsert=True,
            )

    # -- opt-outs ---------------------------------------------------------------------------------
    def withdraw(
        self,
        patient_id: str,
        fields: dict[str, Any],
        message_for: Callable[[int], dict[str, Any]],
        now: datetime.datetime,
    ) -> dict[str, Any] | None:
        """The person withdraws marketing consent: a new opt-out, or a restored one withdrawn
        again, with its event (MarketingConsentWithdrawn) in the same write. None when it is
        withdrawn already (nothing changes, nothing is published)."""
        doc = {"_id": patient_id, "state": WITHDRAWN, "withdrawals": 1, "restorals": 0, **fields}
        try:
            doc.update(outbox.fields(EXCHANGE, "MarketingConsentWithdrawn", message_for(1), now))
            self.db.opt_outs.insert_one(doc)
            return doc
        except DuplicateKeyError:
            pass
        return self._flip(
            patient_id,
            RESTORED,
            WITHDRAWN,
            counter="withdrawals",
            event="MarketingConsentWithdrawn",
            fields=fields,
            message_for=message_for,
            now=now,
        )

    def restore(
        self,
        patient_id: str,
        fields: dict[str, Any],
        message_for: Callable[[int], dict[str, Any]],
        now: datetime.datetime,
    ) -> dict[str, Any] | None:
        """A renewed consent lifts the opt-out (with MarketingConsentRestored). None when the
        person has no opt-out in force."""
        return self._flip(
            patient_id,
            WITHDRAWN,
            RESTORED,
            counter="restorals",
            event="MarketingConsentRestored",
            fields=fields,
            message_for=message_for,
            now=now,
        )

    def _flip(
        self,
        patient_id: str,
        from_state: str,
        to_state: str,
        counter: str,
        event: str,
        fields: dict[str, Any],
        message_for: Callable[[int], dict[str, Any]],
        now: datetime.datetime,
    ) -> dict[str, Any] | None:
        """Move an opt-out from one state to the other, counting the move in `counter` and
        publishing `event` in the same write. The filter on the old count makes a concurrent
        move lose (None) instead of counting twice."""
        current = self.db.opt_outs.find_one({"_id": patient_id})
        if current is None or current.get("state") != from_state:
            return None
        count = current.get(counter, 0) + 1
        update = outbox.append(
            {"$set": {"state": to_state, counter: count, **fields}},
            [(EXCHANGE, event, message_for(count))],
            now,
        )
        return self.db.opt_outs.find_one_and_update(
            {"_id": patient_id, "state": from_state, counter: current.get(counter, 0)},
            update,
            return_document=ReturnDocument.AFTER,
        )

    def opt_out_of(self, patient_id: str | None) -> dict[str, Any] | None:
        return self.db.opt_outs.find_one({"_id": patient_id}, {"outbox_queue": 0})

    def opted_out(self) -> set[str]:
        """Every person whose opt-out is in force."""
        return {doc["_id"] for doc in self.db.opt_outs.find({"state": WITHDRAWN}, {"_id": 1})}

    def is_opted_out(self, patient_id: str | None) -> bool:
        doc = self.db.opt_outs.find_one({"_id": patient_id}, {"state": 1})
        return bool(doc and doc.get("state") == WITHDRAWN)

    # -- campaigns ---------------------------------------------------------------------------------
    def insert_campaign(self, doc: dict[str, Any]) -> dict[str, Any]:
        self.db.campaigns.insert_one(doc)
        return doc

    def campaign(self, campaign_id: str) -> dict[str, Any]:
        doc = self.db.campaigns.find_one({"_id": campaign_id})
        if doc is None:
            raise NotFound(f"no campaign {campaign_id}")
        return doc

    def campaigns(
        self, limit: int, offset: int, status: str | None = None
    ) -> tuple[list[dict[str, Any]], int]:
        query = {"status": status} if status else {}
        docs = list(
            self.db.campaigns.find(query)
            .sort([("send_ts", -1), ("_id", 1)])
            .skip(offset)
            .limit(limit)
        )
        total = len(list(self.db.campaigns.find(query, {"_id": 1}).limit(100_000)))
        return docs, total

    def with_status(self, status: str) -> list[dict[str, Any]]:
        return list(self.db.campaigns.find({"status": status}))

    def claim_campaign(
        self, campaign: dict[str, Any], to_status: str, now_ts: float, claim_s: float
    ) -> dict[str, Any] | None:
        """Take a campaign to target (atomically: its status and claim as read are in the
        filter), so one replica targets it; a claim that ran out (its holder died) may be
        taken over. None when someone else has it."""
        return self.db.campaigns.find_one_and_update(
            {
                "_id": campaign["_id"],
                "status": campaign["status"],
                "claim_until_ts": campaign.get("claim_until_ts", 0),
            },
            {"$set": {"status": to_status, "claim_until_ts": now_ts + claim_s}},
            return_document=ReturnDocument.AFTER,
        )

    def set_campaign(
        self, campaign_id: str, from_status: str, fields: dict[str, Any]
    ) -> dict[str, Any] | None:
        return self.db.campaigns.find_one_and_update(
            {"_id": campaign_id, "status": from_status},
            {"$set": fields},
            return_document=ReturnDocument.AFTER,
        )

    # -- deliveries --------------------------------------------------------------------------------
    def add_deliveries(self, docs: Iterable[dict[str, Any]]) -> int:
        """Insert the deliveries that do not exist yet (a re-run of a targeting that was cut
        short inserts only what is missing). Returns how many are new."""
        return len(insert_new(self.db.deliveries, [{**doc, **EMPTY_OUTBOX} for doc in docs]))

    def due_deliveries(self, now_ts: float, limit: int) -> list[dict[str, Any]]:
        """Waiting deliveries whose time has come (by queue_ts alone: one indexed field)."""
        return list(
            self.db.deliveries.find({"queue_ts": {"$lte": now_ts}}, {"outbox_queue": 0})
            .sort([("queue_ts", 1), ("_id", 1)])
            .limit(limit)
        )

    def claim_delivery(
        self, delivery: dict[str, Any], now_ts: float, claim_s: float
    ) -> dict[str, Any] | None:
        """pending (or sending, its claim run out) -> sending until now + claim_s, atomically:
        the status and queue_ts as read are in the filter, so one sender has it."""
        return self.db.deliveries.find_one_and_update(
            {
                "_id": delivery["_id"],
                "status": delivery["status"],
                "queue_ts": delivery["queue_ts"],
            },
            {"$set": {"status": domain.SENDING, "queue_ts": now_ts + claim_s}},
            projection={"outbox_queue": 0},
            return_document=ReturnDocument.AFTER,
        )

    def finish_delivery(
        self,
        claimed: dict[str, Any],
        fields: dict[str, Any],
        messages: Iterable[tuple[str, dict[str, Any]]],
        now: datetime.datetime,
    ) -> dict[str, Any] | None:
        """The claimed delivery's final state, with its events in the same write; None when
        the claim was lost meanwhile (another sender took over: it finishes)."""
        update = {"$set": {**fields, "queue_ts": domain.DONE_TS}}
        if messages:
            update = outbox.append(update, [(EXCHANGE, kind, body) for kind, body in messages], now)
        return self.db.deliveries.find_one_and_update(
            {"_id": claimed["_id"], "status": domain.SENDING, "queue_ts": claimed["queue_ts"]},
            update,
            return_document=ReturnDocument.AFTER,
        )

    def defer_delivery(
        self, claimed: dict[str, Any], until_ts: float, reason: str
    ) -> dict[str, Any] | None:
        """Back to pending until `until_ts` (the per-day limit was reached)."""
        return self.db.deliveries.find_one_and_update(
            {"_id": claimed["_id"], "status": domain.SENDING, "queue_ts": claimed["queue_ts"]},
            {"$set": {"status": domain.PENDING, "queue_ts": until_ts, "deferred": reason}},
            projection={"outbox_queue": 0},
            return_document=ReturnDocument.AFTER,
        )

    def deliveries_of(
        self, campaign_id: str, projection: dict[str, Any] | None = None
    ) -> list[dict[str, Any]]:
        return list(
            self.db.deliveries.find(
                {"campaign_id": campaign_id},
                projection or {"status": 1, "patient_id": 1, "reached_ts": 1},
            )
        )

    def waiting_of(self, campaign_id: str) -> bool:
        """Whether any delivery of the campaign still waits (by campaign_id alone)."""
        return any(
            doc["queue_ts"] < domain.DONE_TS
            for doc in self.db.deliveries.find({"campaign_id": campaign_id}, {"queue_ts": 1})
        )

    def take_daily_slot(
        self, slot_ids: Iterable[str], delivery_id: str, patient_id: str | None
    ) -> str | None:
        """One of the person's message slots of the day (domain.daily_slot_ids), or None when
        every one is taken by another message. A slot this delivery took before a crash is
        its own again."""
        for slot_id in slot_ids:
            try:
                self.db.daily_slots.insert_one(
                    {"_id": slot_id, "delivery_id": delivery_id, "patient_id": patient_id}
                )
                return slot_id
            except DuplicateKeyError:
                holder = self.db.daily_slots.find_one({"_id": slot_id})
                if holder and holder.get("delivery_id") == delivery_id:
                    return slot_id
        return None

    def relay(self) -> int:
        now = utcnow()
        return self.outbox.relay(now=now) + self.opt_out_outbox.relay(now=now)
