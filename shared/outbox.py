"""Transactional outbox: a state change and the events it causes are one write.

A service records each outgoing event inside the same document write as its state change
(`fields(...)` in an insert, `append(update, ...)` in an update), so a crash can never keep
one without the other. Right after the write the service publishes the queued events with
broker confirms and records them as sent; if the process dies first, the relay timer finds
the pending document and publishes them. Two replicas never relay the same document at
once: each claims it with find_one_and_update (ARCHITECTURE.md rule 5). Consumers
deduplicate on event_id, so a second publish after a crash between the confirm and the
mark is harmless.
"""
import json
import logging
import os
import signal
import time

from nameko.timer import Timer
from pymongo import ReturnDocument

from shared import metrics
from shared.messaging import publish, utcnow

log = logging.getLogger(__name__)

CLAIM_SECONDS = 30
PENDING, PUBLISHED = "pending", "published"
# Fault injection for tests/reliability: with HCRM_FAILPOINT=outbox.before_publish the process
# kills itself (SIGKILL, as a crash or an OOM kill would) after the state change is
# committed and before its events are published: the window the outbox exists for.
FAILPOINT = os.environ.get("HCRM_FAILPOINT", "")


def _entry(exchange, routing_key, message):
    # Stored as JSON text: NX-27017 turns the documents of an array it $pushes to into
    # text, so text is what both stores keep alike.
    return json.dumps({"exchange": exchange, "routing_key": routing_key, "message": message},
                      ensure_ascii=False, default=str)


def fields(exchange, routing_key, message, now):
    """The outbox part of a new document: insert it in the same write as the state change."""
    return {"outbox_queue": [_entry(exchange, routing_key, message)], "outbox_seq": 1, "outbox_sent": 0,
            "outbox_state": PENDING,
            # The writer owns its record for CLAIM_SECONDS: the relay takes over only if the
            # writer died before publishing.
            "outbox_claim_ts": now.timestamp() + CLAIM_SECONDS}


def append(update, messages, now):
    """Add `messages` [(exchange, routing_key, message), ...] to an update of an existing
    document, so the state change and its events are one atomic write."""
    update = {op: dict(body) for op, body in update.items()}
    update.setdefault("$push", {})["outbox_queue"] = {
        "$each": [_entry(*message) for message in messages]}
    update.setdefault("$inc", {})["outbox_seq"] = 1
    update.setdefault("$set", {}).update(
        {"outbox_state": PENDING, "outbox_claim_ts": now.timestamp() + CLAIM_SECONDS})
    return update


class Outbox:
    """The outbox of one collection. Its state lives in top-level fields (`outbox_queue`, the
    document's events in order; `outbox_sent`, how many are published; `outbox_seq`, bumped
    by every append; `outbox_state` and `outbox_claim_ts`); `outbox_state` is indexed, so the
    relay finds the few pending documents without scanning every document ever written."""

    fields = staticmethod(fields)
    append = staticmethod(append)

    def __init__(self, collection, amqp_uri, service):
        self.collection = collection
        self.amqp_uri = amqp_uri
        self.service = service

    @staticmethod
    def indexes(collection_name):
        from shared.store import Index
        return (Index(collection_name, ["outbox_state"]),)

    def publish(self, doc):
        """Publish the queued messages of `doc` not yet sent, with confirms; record how many
        are sent, then mark the document published unless more were queued meanwhile (then
        go on with those). The queue is kept: it is the document's own, short, event list."""
        if FAILPOINT == "outbox.before_publish":
            os.kill(os.getpid(), signal.SIGKILL)
        for _ in range(5):
            queue = doc.get("outbox_queue") or []
            for text in queue[doc.get("outbox_sent", 0):]:
                entry = json.loads(text)
                publish(self.amqp_uri, entry["exchange"], entry["routing_key"], entry["message"],
                        message_id=str(entry["message"].get("event_id", "")) or None)
                metrics.EVENTS_OUT.labels(self.service, entry["routing_key"]).inc()
            done = self.collection.update_one(
                {"_id": doc["_id"], "outbox_seq": doc.get("outbox_seq")},
                {"$set": {"outbox_state": PUBLISHED, "outbox_published_ts": time.time()},
                 "$max": {"outbox_sent": len(queue)}})
            if done.matched_count:
                return
            # More was queued meanwhile: note what is sent, then publish the rest.
            self.collection.update_one({"_id": doc["_id"]}, {"$max": {"outbox_sent": len(queue)}})
            doc = self.collection.find_one({"_id": doc["_id"]})
            if doc is None or doc.get("outbox_state") != PENDING:
                return

    def publish_or_leave(self, doc):
        """Publish right after the write; on failure the record stays pending for the relay.
        The state change is durable already, so the triggering message is done either way."""
        try:
            self.publish(doc)
        except Exception as exc:
            log.warning("publish failed; the outbox relay will retry",
                        extra={"doc_id": str(doc["_id"]), "reason": f"{exc.__class__.__name__}: {exc}"})

    def relay(self, now=None, limit=500):
        """Publish documents whose claim ran out unpublished (their writer or relay died).
        Each is claimed atomically first, so two replicas never publish the same one."""
        now = (now or utcnow()).timestamp()
        candidates = [doc["_id"] for doc in self.collection.find(
            {"outbox_state": PENDING, "outbox_claim_ts": {"$lt": now}}, {"_id": 1}).limit(limit)]
        published = 0
        for doc_id in candidates:
            doc = self.collection.find_one_and_update(
                {"_id": doc_id, "outbox_state": PENDING, "outbox_claim_ts": {"$lt": now}},
                {"$set": {"outbox_claim_ts": now + CLAIM_SECONDS}},
                return_document=ReturnDocument.AFTER)
            if doc is not None:
                self.publish(doc)
                published += 1
        # Bounded: a gauge must never cost a scan of the whole collection.
        pending = len(list(self.collection.find({"outbox_state": PENDING}, {"_id": 1}).limit(10_000)))
        metrics.OUTBOX_PENDING.labels(self.service).set(pending)
        if published:
            log.info("outbox relay published unpublished events", extra={"count": published})
        return published


class ConfiguredTimer(Timer):
    """nameko's timer with its interval read from the validated config at start."""

    def __init__(self, config_key, **kwargs):
        self.config_key = config_key
        super().__init__(interval=1.0, **kwargs)

    def setup(self):
        self.interval = float(self.container.config["HCRM"][self.config_key])
        super().setup()


configured_timer = ConfiguredTimer.decorator
