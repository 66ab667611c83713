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
    def __init__(self, collection, amqp_uri, service):
        self.collection = collection
        self.amqp_uri = amqp_uri
        self.service = service

    @staticmethod
    def fields(exchange, routing_key, message, now):
        """The outbox part of a document; store it in the same insert as the state change."""
        # A state string and epoch seconds, not nulls and dates: every store compares those
        # the same way (NX-27017 keeps a date given to $set as text).
        return {"outbox": {"exchange": exchange, "routing_key": routing_key, "message": message,
                           "state": PENDING, "created_ts": now.timestamp(), "published_ts": 0.0,
                           # The writer owns its record for CLAIM_SECONDS: the relay takes
                           # over only if the writer died before publishing.
                           "claimed_until_ts": now.timestamp() + CLAIM_SECONDS}}

    def publish(self, doc):
        box = doc["outbox"]
        publish(self.amqp_uri, box["exchange"], box["routing_key"], box["message"],
                message_id=str(doc["_id"]))
        self.collection.update_one({"_id": doc["_id"]}, {"$set": {"outbox.state": PUBLISHED, "outbox.published_ts": time.time()}})
        metrics.EVENTS_OUT.labels(self.service, box["routing_key"]).inc()

    def publish_or_leave(self, doc):
        """Publish right after the write; on failure the record stays pending for the relay.
        The state change is durable already, so the inbound message is done either way."""
        try:
            self.publish(doc)
        except Exception as exc:
            log.warning("publish failed; the outbox relay will retry",
                        extra={"event_id": str(doc["_id"]), "reason": f"{exc.__class__.__name__}: {exc}"})

    def relay(self, now=None, limit=500):
        """Publish records whose claim ran out unpublished (their writer or relay died)."""
        now = now or utcnow()
        published = 0
        for _ in range(limit):
            doc = self.collection.find_one_and_update(
                {"outbox.state": PENDING, "outbox.claimed_until_ts": {"$lt": now.timestamp()}},
                {"$set": {"outbox.claimed_until_ts": now.timestamp() + CLAIM_SECONDS}},
                return_document=ReturnDocument.AFTER)
            if doc is None:
                break
            self.publish(doc)
            published += 1
        pending = self.collection.count_documents({"outbox.state": PENDING})
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
