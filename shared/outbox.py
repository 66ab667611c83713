"""Transactional outbox: a state change and the events it causes are one write.

A service records each outgoing event inside the same document write as its state change
(`fields(...)` in an insert, `append(update, ...)` in an update), so a crash can never keep
one without the other. Right after the write the service hands the document to its sender,
a thread that publishes whatever documents are waiting as one batch (one wait for the
broker's confirms of all of them) and marks them sent with one bulk write; if the process
dies first, the relay timer finds the pending documents and publishes them. Two replicas
never publish the same document at once: a publisher first takes the document's lock
(`outbox_lock`, a conditional write; docs/ARCHITECTURE.md rule 5), and the relay also claims a
document with find_one_and_update before it takes over a writer's. A writer that publishes
what it inserts can insert it holding the lock already (`fields(..., held=True)`, then
`publish_new`): a write and a read less per document, the same rules. Consumers
deduplicate on event_id, so a second publish after a crash between the confirm and the
mark is harmless.
"""

import datetime
import json
import logging
import os
import signal
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from eventlet.queue import LightQueue
from pymongo import ReturnDocument, UpdateOne
from pymongo.collection import Collection

from shared import metrics, tracing
from shared.clock import utcnow
from shared.indexes import Index
from shared.messaging import ConfirmedPublisher

log = logging.getLogger(__name__)

CLAIM_SECONDS = 30
PENDING, PUBLISHED = "pending", "published"
# Fault injection for tests/reliability: with HCRM_FAILPOINT=outbox.before_publish the process
# kills itself (SIGKILL, as a crash or an OOM kill would) after the state change is
# committed and before its events are published: the window the outbox exists for.
FAILPOINT = os.environ.get("HCRM_FAILPOINT", "")
# The most documents one batch publishes (their events share one wait for confirms).
BATCH_MAX = 200
_STOP = object()
# What a publisher reads of a document it holds the lock of.
_HELD = {"outbox_queue": 1, "outbox_sent": 1, "outbox_seq": 1, "outbox_lock": 1}


def _entry(exchange: str, routing_key: str, message: Mapping[str, Any]) -> str:
    # Stored as JSON text: NX-27017 turns the documents of an array it $pushes to into
    # text, so text is what both stores keep alike. The trace of the work that writes the
    # event goes with it: whoever publishes it later (the sender, the relay of another
    # replica) sends it under that trace (shared/tracing.py).
    entry = {"exchange": exchange, "routing_key": routing_key, "message": message}
    traceparent = tracing.traceparent_for(message)
    if traceparent:
        entry["traceparent"] = traceparent
    return json.dumps(entry, ensure_ascii=False, default=str)


def fields(
    exchange: str,
    routing_key: str,
    message: Mapping[str, Any],
    now: datetime.datetime,
    held: bool = False,
) -> dict[str, Any]:
    """The outbox part of a new document: insert it in the same write as the state change.

    `held`: the document is created holding its own publishing lock, for a writer that hands
    it to `Outbox.publish_new` right after the insert: its sender then publishes it without
    first taking the lock and reading the document back (a write and a read less per
    document). If the writer dies first, the lock runs out with the claim, and the relay
    takes over as for any other document."""
    claim_ts = now.timestamp() + CLAIM_SECONDS
    return {
        "outbox_queue": [_entry(exchange, routing_key, message)],
        "outbox_seq": 1,
        "outbox_sent": 0,
        "outbox_state": PENDING,
        **(
            {"outbox_lock": uuid.uuid4().hex, "outbox_lock_ts": claim_ts}
            if held
            else {"outbox_lock_ts": 0}  # no publisher holds it yet
        ),
        # The writer owns its record for CLAIM_SECONDS: the relay takes over only if the
        # writer died before publishing.
        "outbox_claim_ts": claim_ts,
    }


def append(
    update: dict[str, Any],
    messages: Iterable[tuple[str, str, Mapping[str, Any]]],
    now: datetime.datetime,
) -> dict[str, Any]:
    """Add `messages` [(exchange, routing_key, message), ...] to an update of an existing
    document, so the state change and its events are one atomic write."""
    update = {op: dict(body) for op, body in update.items()}
    update.setdefault("$push", {})["outbox_queue"] = {
        "$each": [_entry(*message) for message in messages]
    }
    update.setdefault("$inc", {})["outbox_seq"] = 1
    update.setdefault("$set", {}).update(
        {"outbox_state": PENDING, "outbox_claim_ts": now.timestamp() + CLAIM_SECONDS}
    )
    return update


class Outbox:
    """The outbox of one collection. Its state lives in top-level fields (`outbox_queue`, the
    document's events in order; `outbox_sent`, how many are published; `outbox_seq`, bumped
    by every append; `outbox_state` and `outbox_claim_ts`); `outbox_state` is indexed, so the
    relay finds the few pending documents without scanning every document ever written."""

    fields = staticmethod(fields)
    append = staticmethod(append)

    def __init__(self, collection: Collection[dict[str, Any]], amqp_uri: str, service: str) -> None:
        self.collection = collection
        self.amqp_uri = amqp_uri
        self.service = service
        self._publisher = ConfirmedPublisher(amqp_uri)
        self._publishing = threading.Lock()  # the sender and the relay share one channel
        self._waiting: Any = None  # the sender's queue of documents (LightQueue), while it runs
        self._sender: Any = None

    @staticmethod
    def indexes(collection_name: str) -> tuple[Index, ...]:
        return (Index(collection_name, ["outbox_state"]),)

    # -- the sender -----------------------------------------------------------------------
    def start(self, container: Any) -> None:
        """Run the sender in the service container (the store starts it)."""
        self._waiting = LightQueue()
        self._sender = container.spawn_managed_thread(
            self._send_forever, identifier=f"outbox.{self.collection.name}"
        )

    def stop(self) -> None:
        """Publish what is waiting, then stop (handlers have finished by now)."""
        waiting, self._waiting = self._waiting, None
        if waiting is not None:
            waiting.put(_STOP)
            self._sender.wait()
        self._publisher.close()

    def _send_forever(self) -> None:
        waiting = self._waiting
        while True:
            batch = [waiting.get()]
            while len(batch) < BATCH_MAX and not waiting.empty():
                batch.append(waiting.get())
            items = [item for item in batch if item is not _STOP]
            if items:
                self._publish_or_leave(items)
            if len(items) < len(batch):
                return

    def publish_or_leave(self, doc: Mapping[str, Any]) -> None:
        """Publish the document's new events soon after its write (by the sender, batched with
        other documents'); if that fails the document stays pending for the relay. The state
        change is durable already, so the triggering message is done either way."""
        self._hand_over(doc, False)

    def publish_new(self, doc: Mapping[str, Any]) -> None:
        """publish_or_leave for a document just inserted holding its own lock (`fields(...,
        held=True)`), exactly as inserted: published without taking the lock first."""
        self._hand_over(doc, True)

    def _hand_over(self, doc: Mapping[str, Any], fresh: bool) -> None:
        if self._waiting is not None:
            self._waiting.put((doc, fresh))
        else:
            self._publish_or_leave([(doc, fresh)])

    def _publish_or_leave(self, items: list[tuple[Mapping[str, Any], bool]]) -> None:
        try:
            self.publish_batch(
                [doc for doc, fresh in items if not fresh],
                fresh=[doc for doc, fresh in items if fresh],
            )
        except Exception as exc:
            log.warning(
                "publish failed; the outbox relay will retry",
                extra={
                    "documents": len(items),
                    "doc_id": str(items[0][0]["_id"]),
                    "reason": f"{exc.__class__.__name__}: {exc}",
                },
            )

    # -- publishing -----------------------------------------------------------------------
    def publish_batch(
        self,
        docs: Iterable[Mapping[str, Any]],
        attempts: int = 5,
        fresh: Iterable[Mapping[str, Any]] = (),
    ) -> int:
        """Publish the queued messages of `docs` not yet sent, with one wait for the broker's
        confirms, then mark each document published (one bulk write) unless more were queued
        on it meanwhile: those are re-read and published in the next round. The queue is
        kept: it is the document's own, short, event list.

        Only the holder of a document's publishing lock publishes it, so two replicas that
        both appended to one document never send the same event twice. A writer that finds
        the lock held leaves its events to the holder, who re-reads the document after
        releasing the lock and publishes whatever was appended meanwhile. Returns how many
        documents this call published (held the lock of).

        `fresh`: documents as their writer inserted them, holding their own lock
        (`publish_new`): their events are the ones in hand, so no lock is taken and nothing
        read back. If one changed meanwhile, marking it fails as for any other document, and
        what was appended is read back and published."""
        if FAILPOINT == "outbox.before_publish":
            os.kill(os.getpid(), signal.SIGKILL)
        held = list({doc["_id"]: doc for doc in fresh}.values())
        in_hand = {doc["_id"] for doc in held}
        ids = [
            doc_id for doc_id in dict.fromkeys(doc["_id"] for doc in docs) if doc_id not in in_hand
        ]
        if ids:
            held += self._lock(ids, uuid.uuid4().hex)
        if not held:
            return 0
        entries = [
            json.loads(text)
            for doc in held
            for text in (doc.get("outbox_queue") or [])[doc.get("outbox_sent", 0) :]
        ]
        try:
            with self._publishing:
                self._publisher.publish_all(
                    [
                        (
                            entry["exchange"],
                            entry["routing_key"],
                            entry["message"],
                            str(entry["message"].get("event_id", "")) or None,
                            {tracing.TRACEPARENT: entry["traceparent"]}
                            if entry.get("traceparent")
                            else {},
                        )
                        for entry in entries
                    ]
                )
        except Exception:
            # Unlocked as it was: the relay, or the next writer, publishes them.
            self._unlock(held, {doc["_id"]: doc.get("outbox_sent", 0) for doc in held})
            raise
        for entry in entries:
            metrics.EVENTS_OUT.labels(self.service, entry["routing_key"]).inc()
        # Published and unlocked in one write each, if nothing was appended meanwhile.
        sent = {doc["_id"]: len(doc.get("outbox_queue") or []) for doc in held}
        done = self.collection.bulk_write(
            [
                UpdateOne(
                    {
                        "_id": doc["_id"],
                        "outbox_seq": doc.get("outbox_seq"),
                        "outbox_lock": doc["outbox_lock"],
                    },
                    {
                        "$set": {
                            "outbox_state": PUBLISHED,
                            "outbox_published_ts": time.time(),
                            "outbox_lock_ts": 0,
                        },
                        "$max": {"outbox_sent": sent[doc["_id"]]},
                    },
                )
                for doc in held
            ],
            ordered=False,
        )
        if done.matched_count == len(held):
            return len(held)
        # More was queued on some meanwhile, and its writer found the lock held: note what is
        # sent, unlock, then publish the rest (if another writer has not taken it by then).
        self._unlock(held, sent)
        again = [
            doc
            for doc in self.collection.find({"_id": {"$in": list(sent)}}, {"outbox_state": 1})
            if doc.get("outbox_state") == PENDING
        ]
        if again and attempts > 1:
            self.publish_batch(again, attempts - 1)
        return len(held)

    def _lock(self, ids: list[Any], token: str) -> list[dict[str, Any]]:
        """Take the publishing lock of each document that is free or expired, and return the
        documents now held: their queue and what is sent by now, fresh."""
        now = time.time()
        take = {"$set": {"outbox_lock": token, "outbox_lock_ts": now + CLAIM_SECONDS}}
        if len(ids) == 1:  # the usual case at a low rate: lock and read in one round trip
            doc = self.collection.find_one_and_update(
                {"_id": ids[0], "outbox_lock_ts": {"$lt": now}},
                take,
                projection=_HELD,
                return_document=ReturnDocument.AFTER,
            )
            if doc is not None:
                return [doc]
            # Held by another publisher, or written before the lock existed: the general way.
        # A document written before the lock existed has no lock field.
        self.collection.bulk_write(
            [
                UpdateOne({"_id": doc_id, "outbox_lock_ts": free}, take)
                for doc_id in ids
                for free in ({"$lt": now}, {"$exists": False})
            ],
            ordered=False,
        )
        return [
            doc
            for doc in self.collection.find({"_id": {"$in": ids}}, _HELD)  # by _id only (NX-27017)
            if doc.get("outbox_lock") == token
        ]

    def _unlock(self, held: list[Mapping[str, Any]], sent: Mapping[Any, int]) -> None:
        """Release the lock of the `held` documents, recording what is sent of each (`sent`:
        {_id: how many of its events are published})."""
        self.collection.bulk_write(
            [
                UpdateOne(
                    {"_id": doc["_id"], "outbox_lock": doc["outbox_lock"]},
                    {"$set": {"outbox_lock_ts": 0}, "$max": {"outbox_sent": sent[doc["_id"]]}},
                )
                for doc in held
            ],
            ordered=False,
        )

    def relay(self, now: datetime.datetime | None = None, limit: int = 500) -> int:
        """Publish documents whose claim ran out unpublished (their writer or relay died).
        Each is claimed atomically first, so two replicas never publish the same one."""
        now = (now or utcnow()).timestamp()
        candidates = [
            doc["_id"]
            for doc in self.collection.find(
                {"outbox_state": PENDING, "outbox_claim_ts": {"$lt": now}}, {"_id": 1}
            ).limit(limit)
        ]
        claimed = list(
            filter(
                None,
                (
                    self.collection.find_one_and_update(
                        {"_id": doc_id, "outbox_state": PENDING, "outbox_claim_ts": {"$lt": now}},
                        {"$set": {"outbox_claim_ts": now + CLAIM_SECONDS}},
                        projection={"_id": 1},
                    )
                    for doc_id in candidates
                ),
            )
        )  # publish_batch reads what it publishes under its lock
        published = sum(
            self.publish_batch(claimed[start : start + BATCH_MAX])
            for start in range(0, len(claimed), BATCH_MAX)
        )
        # Bounded: a gauge must never cost a scan of the whole collection.
        pending = len(
            list(self.collection.find({"outbox_state": PENDING}, {"_id": 1}).limit(10_000))
        )
        metrics.OUTBOX_PENDING.labels(self.service).set(pending)
        if published:
            log.info("outbox relay published unpublished events", extra={"count": published})
        return published
