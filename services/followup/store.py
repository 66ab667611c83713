"""Followup's own database.

Collections
  events   the canonical events it received (unique on event_id): the facts tasks derive
           from, filed under the person's live patient_id (aliases followed)
  tasks    one document per follow-up task (id deterministic from what caused it), carrying
           the outbox of the events its changes cause
  aliases  one document per retired patient_id (_id = the retired id, `survivor`): a
           PatientsMerged leaves one person; later events of the retired id are filed under
           the survivor (chains followed)
Times compared in queries are epoch seconds (`due_ts`, `anchor_ts`, `claim_until_ts`);
times shown are ISO text (`due_at`): both keep their type in every store.
"""

import datetime
import json
from collections.abc import Callable, Iterable
from typing import Any

from pymongo import ReturnDocument
from pymongo.errors import DuplicateKeyError

from services.followup import domain
from shared import aliases, outbox
from shared.clock import utcnow
from shared.contact import Contact
from shared.errors import Conflict, NotFound
from shared.indexes import Index
from shared.phones import phone_digits
from shared.store import Store, find_in, insert_new

EXCHANGE = "followup.events"
PENDING = domain.PENDING


class FollowupStore(Store):
    indexes = (
        Index("events", ["patient_id"]),
        Index("events", ["phone_digits"]),
        Index("tasks", ["patient_id"]),
        Index("tasks", ["status"]),
        Index("tasks", ["due_ts"]),
        Index("tasks", ["phone_digits"]),
        Index("tasks", ["survey_token_hash"]),  # a survey link finds its task by the token's hash
        Index("tasks", ["survey_state"]),  # links still to send
        *outbox.Outbox.indexes("tasks"),
    )

    def setup(self) -> None:
        super().setup()
        self.outbox = outbox.Outbox(
            self.db.tasks, self.container.config["HCRM"]["amqp_uri"], "followup"
        )

    # -- people ---------------------------------------------------------------------------
    def resolve(self, patient_id: str | None) -> str | None:
        """The live patient_id of `patient_id`: aliases followed (R -> S -> T gives T). One
        lookup for a person never merged."""
        return aliases.resolve(patient_id, self._survivor_of)

    def _survivor_of(self, patient_id: str) -> str | None:
        alias = self.db.aliases.find_one({"_id": patient_id}, {"survivor": 1})
        return alias["survivor"] if alias else None

    def resolve_many(self, patient_ids: set[str]) -> dict[str, str | None]:
        """{patient_id: its live id} for many: one read of their aliases (by _id); only a
        person merged before costs a chain of lookups."""
        retired = {
            alias["_id"]
            for alias in self.db.aliases.find({"_id": {"$in": sorted(patient_ids)}}, {"_id": 1})
        }
        return {
            patient_id: self.resolve(patient_id) if patient_id in retired else patient_id
            for patient_id in patient_ids
        }

    def merge(
        self, retired: str, survivor: str, event_id: str, now: datetime.datetime
    ) -> str | None:
        """Record retired -> survivor (once; the first merge of a retired id stands) and move
        what is filed under the retired id to the survivor's live id. Returns that id."""
        live = self.resolve(survivor)
        if self.resolve(retired) == live:  # merged already (a duplicate, or a chain to it)
            self.repoint(retired, live)
            return live
        try:
            self.db.aliases.insert_one(
                {
                    "_id": retired,
                    "survivor": survivor,
                    "event_id": event_id,
                    "merged_at": now.isoformat(),
                }
            )
        except DuplicateKeyError:
            pass
        live = self.resolve(retired)
        self.repoint(retired, live)
        return live

    def repoint(self, old: str | None, new: str | None) -> None:
        """File the events and tasks of `old` under `new` (idempotent). A worker that filed
        something under `old` after this ran notices the alias and calls it again."""
        if old != new:
            self.db.events.update_many({"patient_id": old}, {"$set": {"patient_id": new}})
            self.db.tasks.update_many({"patient_id": old}, {"$set": {"patient_id": new}})

    # -- facts ----------------------------------------------------------------------------
    @staticmethod
    def _event_doc(message: dict[str, Any], patient_id: str | None) -> dict[str, Any]:
        data = message.get("data") or {}
        doc = {
            "_id": message["event_id"],
            "patient_id": patient_id,
            "event_type": message["event_type"],
            "occurred_at": message["occurred_at"],
            "data": data,
            "phone_digits": phone_digits((data.get("patient") or {}).get("phone")) or None,
        }
        if message["event_type"] == "PatientVisited":
            doc["visited_ts"] = domain.parse_time(data["visited_at"]).timestamp()
        return doc

    def record_events(self, items: list[tuple[dict[str, Any], str | None]]) -> None:
        """Keep each event [(message, live patient_id)] once, in one insert (duplicates are
        skipped by the unique _id, the event id)."""
        insert_new(self.db.events, [self._event_doc(*item) for item in items])

    def events_of(self, patient_id: str | None) -> list[dict[str, Any]]:
        return self.events_of_many({patient_id}).get(patient_id, [])

    def events_of_many(self, patient_ids: set[Any]) -> dict[Any, list[dict[str, Any]]]:
        """{patient_id: every event filed under it}, in one read."""
        found: dict[Any, list[dict[str, Any]]] = {}
        for event in find_in(self.db.events, "patient_id", patient_ids):
            event["event_id"] = event.pop("_id")
            found.setdefault(event["patient_id"], []).append(event)
        return found

    def forget_visits(self, event_ids: Iterable[str]) -> None:
        """Voided visits no longer count as the visit a prospect call waits for (idempotent)."""
        if event_ids:
            self.db.events.update_many(
                {"_id": {"$in": list(event_ids)}}, {"$unset": {"visited_ts": ""}}
            )

    def visited_since(self, digits: str | None, since_ts: float) -> bool:
        return (
            bool(digits)
            and self.db.events.find_one(
                {"phone_digits": digits, "visited_ts": {"$gte": since_ts}}, {"_id": 1}
            )
            is not None
        )

    # -- tasks ----------------------------------------------------------------------------
    def schedule_many(
        self,
        planned: Iterable[
            tuple[
                str | None,
                Iterable[domain.PlannedTask],
                Contact,
                Callable[[str, domain.PlannedTask], dict[str, Any]],
            ]
        ],
        now: datetime.datetime,
    ) -> list[dict[str, Any]]:
        """Insert the planned tasks [(patient_id, tasks, contact, message_for)] that do not
        exist yet, in one round trip (every event of a patient re-plans all of the patient's
        tasks; the deterministic ids make the existing ones duplicates). Returns the
        documents that are new."""
        docs = [
            doc
            for patient_id, tasks, contact, message_for in planned
            for doc in self._task_docs(patient_id, tasks, contact, message_for, now)
        ]
        return insert_new(self.db.tasks, docs)

    @staticmethod
    def _task_docs(
        patient_id: str | None,
        planned: Iterable[domain.PlannedTask],
        contact: Contact,
        message_for: Callable[[str, domain.PlannedTask], dict[str, Any]],
        now: datetime.datetime,
    ) -> list[dict[str, Any]]:
        return [
            {
                "_id": task.followup_id,
                "patient_id": patient_id,
                "kind": task.kind,
                "anchor_key": task.key,
                "department": task.department,
                "reason": task.reason,
                "doctor_id": task.doctor_id,
                **({"script": task.script} if task.script else {}),  # a campaign call's own script
                "due_at": task.due_at.isoformat(),
                "due_ts": task.due_at.timestamp(),
                "planned_due_ts": task.due_at.timestamp(),  # due_ts moves on a retry; this does not
                "anchor_ts": task.anchor_at.timestamp(),
                "status": PENDING,
                "attempts": 0,
                "phone_digits": phone_digits(contact.phone),
                "patient_name": contact.name,
                "cause_event_id": task.cause_event_id,
                "created_at": now.isoformat(),
                "claimed_by": None,
                "claim_until_ts": 0.0,
                "history": [],
                # Published right after the insert (FollowupService._replan).
                **outbox.fields(
                    EXCHANGE,
                    "FollowUpScheduled",
                    message_for("FollowUpScheduled", task),
                    now,
                    held=True,
                ),
            }
            for task in planned
        ]

    def cancel(
        self, followup_id: str, reason: str, message: dict[str, Any], now: datetime.datetime
    ) -> dict[str, Any] | None:
        """Cancel a pending task (atomically; a done or cancelled task stays as it is)."""
        update = outbox.append(
            {
                "$set": {
                    "status": domain.CANCELLED,
                    "cancel_reason": reason,
                    "cancelled_at": now.isoformat(),
                }
            },
            [(EXCHANGE, "FollowUpCancelled", message)],
            now,
        )
        return self.db.tasks.find_one_and_update(
            {"_id": followup_id, "status": PENDING}, update, return_document=ReturnDocument.AFTER
        )

    def tasks_of(self, patient_id: str | None) -> list[dict[str, Any]]:
        """Every task of the person, any status (without their outbox). By patient only:
        given the status too, NX-27017 may take the status index and scan every pending
        task (16 ms against 1.7 ms at 30k tasks)."""
        return list(self.db.tasks.find({"patient_id": patient_id}, {"outbox_queue": 0}))

    def pending_of(self, patient_id: str | None) -> list[dict[str, Any]]:
        return [task for task in self.tasks_of(patient_id) if task["status"] == PENDING]

    def restate_contact(self, patient_id: str | None, contact: Contact) -> None:
        """After a merge: the tasks show the surviving person's name and phone (by patient
        only, as in tasks_of)."""
        self.db.tasks.update_many(
            {"patient_id": patient_id},
            {"$set": {"patient_name": contact.name, "phone_digits": phone_digits(contact.phone)}},
        )

    def pending_prospect_calls_many(
        self, visits: Iterable[tuple[str | None, float]]
    ) -> list[dict[str, Any]]:
        """The pending prospect calls that visits [(phone digits, visited_ts)] answer (a call
        planned before the visit), in one read."""
        latest: dict[str, float] = {}
        for digits, visited_ts in visits:
            if digits:
                latest[digits] = max(visited_ts, latest.get(digits, visited_ts))
        if not latest:
            return []
        return [
            task
            for task in find_in(
                self.db.tasks, "phone_digits", latest, kind=domain.PROSPECT_CALL, status=PENDING
            )
            if task["anchor_ts"] <= latest[task["phone_digits"]]
        ]

    def get(self, followup_id: str) -> dict[str, Any]:
        task = self.db.tasks.find_one({"_id": followup_id})
        if task is None:
            raise NotFound(f"no follow-up {followup_id}")
        return task

    def claim(
        self, followup_id: str, agent: str, now: datetime.datetime, minutes: float
    ) -> dict[str, Any]:
        """An agent takes the task for `minutes`; nobody else can meanwhile (atomic)."""
        now_ts = now.timestamp()
        task = self.db.tasks.find_one_and_update(
            {
                "_id": followup_id,
                "status": PENDING,
                "$or": [{"claim_until_ts": {"$lt": now_ts}}, {"claimed_by": agent}],
            },
            {"$set": {"claimed_by": agent, "claim_until_ts": now_ts + minutes * 60}},
            return_document=ReturnDocument.AFTER,
        )
        if task is None:
            current = self.get(followup_id)
            raise Conflict(
                f"follow-up {followup_id} is {current['status']}"
                + (f", claimed by {current['claimed_by']}" if current["status"] == PENDING else "")
            )
        return task

    def complete(
        self,
        task: dict[str, Any],
        set_fields: dict[str, Any],
        messages: Iterable[tuple[str, dict[str, Any]]],
        now: datetime.datetime,
        agent: str,
    ) -> dict[str, Any]:
        """Apply a completion to the task as it was read (attempts unchanged, still pending,
        not claimed by someone else): one atomic write with its events."""
        # JSON text, like the outbox queue: NX-27017 turns documents in a $pushed array to text.
        history = json.dumps(
            {"at": now.isoformat(), "by": agent, "outcome": set_fields.get("last_outcome")},
            ensure_ascii=False,
        )
        update = outbox.append(
            {"$set": set_fields, "$push": {"history": history}},
            [(EXCHANGE, kind, body) for kind, body in messages],
            now,
        )
        filter_ = {
            "_id": task["_id"],
            "status": PENDING,
            "attempts": task.get("attempts", 0),
            "$or": [{"claim_until_ts": {"$lt": now.timestamp()}}, {"claimed_by": agent}],
        }
        done = self.db.tasks.find_one_and_update(
            filter_, update, return_document=ReturnDocument.AFTER
        )
        if done is None:
            current = self.get(task["_id"])
            raise Conflict(
                f"follow-up {task['_id']} is {current['status']}"
                + (f", claimed by {current['claimed_by']}" if current.get("claimed_by") else "")
            )
        return done

    # -- survey links (services/followup/survey.py) ------------------------------------------
    def links_to_send(self, limit: int = 100) -> list[dict[str, Any]]:
        return list(
            self.db.tasks.find({"survey_state": "to_send"}, {"outbox_queue": 0}).limit(limit)
        )

    def claim_link(self, followup_id: str, fields: dict[str, Any]) -> dict[str, Any] | None:
        """Take a link still to send (atomically: one sender, whatever the replicas) and set
        its token hash and expiry, or its reason not to be sent. None when taken already."""
        return self.db.tasks.find_one_and_update(
            {"_id": followup_id, "survey_state": "to_send"},
            {"$set": fields},
            return_document=ReturnDocument.AFTER,
        )

    def by_survey_hash(self, hashed: str) -> dict[str, Any] | None:
        return self.db.tasks.find_one(
            {"survey_token_hash": hashed}, {"outbox_queue": 0, "history": 0}
        )

    def answer_survey(
        self,
        task: dict[str, Any],
        now_ts: float,
        fields: dict[str, Any],
        messages: Iterable[tuple[str, dict[str, Any]]],
        now: datetime.datetime,
    ) -> dict[str, Any] | None:
        """Record a link's answer with its events in one write, if the link is still open:
        the filter holds the state and the expiry, so a link is used once, whatever races.
        By _id (found by the hash before): the store takes the primary key's index."""
        update = outbox.append(
            {"$set": fields}, [(EXCHANGE, kind, body) for kind, body in messages], now
        )
        return self.db.tasks.find_one_and_update(
            {
                "_id": task["_id"],
                "survey_token_hash": task["survey_token_hash"],
                "survey_state": "sent",
                "survey_expires_ts": {"$gt": now_ts},
            },
            update,
            return_document=ReturnDocument.AFTER,
        )

    def find(
        self, query: dict[str, Any], limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        items = list(
            self.db.tasks.find(query, {"outbox_queue": 0})
            .sort([("due_ts", 1), ("_id", 1)])
            .skip(offset)
            .limit(limit)
        )
        total = len(list(self.db.tasks.find(query, {"_id": 1}).limit(100_000)))
        return items, total

    def count(self, query: dict[str, Any]) -> int:
        return len(list(self.db.tasks.find(query, {"_id": 1}).limit(1_000_000)))

    def relay(self) -> int:
        return self.outbox.relay(now=utcnow())


def local_day_bounds(day: datetime.date, tz: datetime.tzinfo) -> tuple[float, float]:
    start = datetime.datetime.combine(day, datetime.time(0, 0), tz)
    return start.timestamp(), (start + datetime.timedelta(days=1)).timestamp()
