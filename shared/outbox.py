"""Transactional outbox: a state change and the events it causes are one write.

A service records each outgoing event inside the same document insert as its state change
(`Outbox.fields(...)`), so a crash can never keep one without the other. Right after the
write the service publishes the event with a broker confirm and marks it published; if the
process dies first, the relay timer finds the unpublished record and publishes it. Two
replicas never relay the same record at once: each claims it with find_one_and_update
(ARCHITECTURE.md rule 5). Consumers deduplicate on event_id, so a second publish after a
crash between the confirm and the mark is harmless.
"""
import logging
import time

from nameko.timer import Timer
from pymongo import ReturnDocument

from shared import metrics
from shared.messaging import publish, utcnow

log = logging.getLogger(__name__)

CLAIM_SECONDS = 30
PENDING, PUBLISHED = "pending", "published"


class Outbox:
    """The outbox of one collection. Its state lives in two top-level fields,
    `outbox_state` and `outbox_claim_ts`, indexed (see `indexes`): the relay then finds the
    few pending records by index instead of scanning every document ever written."""

    def __init__(self, collection, amqp_uri, service):
        self.collection = collection
        self.amqp_uri = amqp_uri
        self.service = service

    @staticmethod
    def indexes(collection_name):
        from shared.store import Index
        return (Index(collection_name, ["outbox_state"]),)

    @staticmethod
    def fields(exchange, routing_key, message, now):
        """The outbox part of a document; store it in the same insert as the state change."""
        # A state string and epoch seconds, not nulls and dates: every store compares those
        # the same way (NX-27017 keeps a date given to $set as text).
        return {"outbox": {"exchange": exchange, "routing_key": routing_key, "message": message,
                           "created_ts": now.timestamp()},
                "outbox_state": PENDING,
                # The writer owns its record for CLAIM_SECONDS: the relay takes over only if
                # the writer died before publishing.
                "outbox_claim_ts": now.timestamp() + CLAIM_SECONDS}

    def publish(self, doc):
        box = doc["outbox"]
        publish(self.amqp_uri, box["exchange"], box["routing_key"], box["message"],
                message_id=str(doc["_id"]))
        self.collection.update_one({"_id": doc["_id"]},
                                   {"$set": {"outbox_state": PUBLISHED, "outbox_published_ts": time.time()}})
        metrics.EVENTS_OUT.labels(self.service, box["routing_key"]).inc()

    def publish_or_leave(self, doc):
        """Publish right after the write; on failure the record stays pending for the relay.
        The state change is durable already, so the triggering message is done either way."""
        try:
            self.publish(doc)
        except Exception as exc:
            log.warning("publish failed; the outbox relay will retry",
                        extra={"event_id": str(doc["_id"]), "reason": f"{exc.__class__.__name__}: {exc}"})

    def relay(self, now=None, limit=500):
        """Publish records whose claim ran out unpublished (their writer or relay died).
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
