"""Analytics and the patients' data rights (README.md § Data protection), mixed into
AnalyticsService:

- the minimal stream: analytics receives every canonical event once, so after it records a
  batch it appends each event's minimal copy (shared/minimise.py) to the exchange hcrm.stream,
  which the stream hcrm.analytics is bound to. Through an outbox (collection `stream_outbox`,
  one document per event, its id the event's): a crash between recording and publishing loses
  nothing, a redelivered event is not appended twice by this service;
- export: the facts held about a person;
- erasure (PatientErased): the facts keep their figures' inputs (department, region, age band,
  times, ids) but lose the MRN and phone key; both become one token per erasure, so a person's
  own consultations still convert to their own visits and every figure stays as it was;
- retention: published stream copies are deleted after `stream_outbox_keep_hours`.
"""

import logging

from pymongo import UpdateOne

from shared import erasures
from shared.clock import utcnow
from shared.messaging import rpc
from shared.minimise import minimal_copy
from shared.outbox import PUBLISHED, Outbox
from shared.privacy import ERASED_EVENT, cutoff, jsonable
from shared.store import insert_new
from shared.timers import configured_timer
from shared.topology import STREAM_EXCHANGE

log = logging.getLogger(__name__)

INDEXES = (*Outbox.indexes("stream_outbox"),)
ERASED_KEY = "erased:"  # the token an erased person's MRN and phone key become


def stream_outbox(db, amqp_uri):
    return Outbox(db.stream_outbox, amqp_uri, "analytics")


class AnalyticsPrivacyMixin:
    # -- the minimal stream -----------------------------------------------------------------
    def append_to_stream(self, events):
        """Called last for a recorded batch: the minimal copies, one outbox document each."""
        now = utcnow()
        copies = [copy for copy in (minimal_copy(event, self._tz) for event in events) if copy]
        docs = [
            {
                "_id": copy["event_id"],
                **Outbox.fields(STREAM_EXCHANGE, copy["event_type"], copy, now, held=True),
            }
            for copy in {copy["event_id"]: copy for copy in copies}.values()
        ]
        for doc in insert_new(self.store.db.stream_outbox, docs):
            self.store.stream_outbox.publish_new(doc)

    @configured_timer("outbox_relay_interval_s")
    def relay_stream_outbox(self):
        self.store.stream_outbox.relay(now=utcnow())

    # -- erasure ----------------------------------------------------------------------------
    def erase_from_batch(self, events):
        for event in events:
            if event.get("event_type") == ERASED_EVENT:
                data = event.get("data") or {}
                ids = {event.get("patient_id"), *(data.get("patient_ids") or ())} - {None}
                erasure_id = data.get("erasure_id") or event["event_id"]
                erasures.record(self.store.db, erasure_id, ids, utcnow())
                self._erase_facts(ids, erasure_id)

    def _person_fact_ids(self, ids):
        people = self.store.people(set(ids))
        persons = set(ids) | {people.person(pid) for pid in ids}
        return {
            entry["id"]
            for pid in persons
            for section in ("v", "c", "o")
            for entry in ((people.docs.get(pid) or {}).get(section) or {}).values()
        }

    def _erase_facts(self, ids, erasure_id):
        token = ERASED_KEY + erasure_id
        facts = self.store.facts_by_id(self._person_fact_ids(ids))
        updates = [
            UpdateOne(
                {"_id": fact["_id"]},
                {"$set": {key: token for key in ("phone_key", "mrn") if fact.get(key)}},
            )
            for fact in facts
            if any(
                fact.get(key) and not str(fact[key]).startswith(ERASED_KEY)
                for key in ("phone_key", "mrn")
            )
        ]
        if updates:
            self.store.db.facts.bulk_write(updates, ordered=False)
        log.info("patient erased", extra={"erasure_id": erasure_id, "facts": len(updates)})

    # -- export -----------------------------------------------------------------------------
    @rpc
    def export_patient(self, patient_id, patient_ids=None):
        ids = {patient_id, *(patient_ids or ())} - {None}
        facts = self.store.facts_by_id(self._person_fact_ids(ids))
        return jsonable(
            {
                "service": "analytics",
                "patient_ids": sorted(ids),
                "facts": sorted(facts, key=lambda fact: (fact.get("ts") or 0, str(fact["_id"]))),
            }
        )

    # -- retention --------------------------------------------------------------------------
    @configured_timer("retention_interval_s")
    def enforce_retention(self):
        now = utcnow()
        # A published copy is on the stream; kept a while so a redelivered event is not
        # appended again.
        old = cutoff(now, self.config["stream_outbox_keep_hours"] / 24).timestamp()
        deleted = self.store.db.stream_outbox.delete_many(
            {"outbox_state": PUBLISHED, "outbox_published_ts": {"$lt": old}}
        ).deleted_count
        for erasure in erasures.recent(self.store.db, now, self.config["erasure_sweep_days"]):
            self._erase_facts(erasure["patient_ids"], erasure["_id"])
        if deleted:
            log.info("published stream copies deleted", extra={"count": deleted})
