"""Analytics' own database: `facts` (one per event, unique on event_id: duplicates count
once), the `followups` / `complaints` entities folded from their events, and the per-day
partial figures (`day_figures`) with the change counters (`day_changes`) that say when a
day's partial is stale.

Queries select by one indexed field and check the rest here: NX-27017 picks the first
matching index, so an added `type` (four values) or a date-like text (never indexed there)
made every day's read a scan of the whole collection (bench/README.md)."""
import json
import logging

from pymongo import UpdateOne
from pymongo.errors import OperationFailure

from services.analytics.domain import DAY_FIELDS, day_number
from shared.store import Index, Store

log = logging.getLogger(__name__)
SCHEMA_VERSION = 2  # 2: the day-number twins of every day field (domain.DAY_FIELDS)
# Indexes of version 1 that NX-27017 preferred to the selective ones: dropped at start.
RETIRED_INDEXES = (("facts", "date_1"), ("facts", "type_1"), ("followups", "due_date_1"),
                   ("complaints", "received_date_1"), ("complaints", "resolved_date_1"),
                   ("day_figures", "date_1"))


class AnalyticsStore(Store):
    indexes = (
        Index("facts", ["day"]),
        Index("facts", ["ts"]),
        Index("facts", ["phone_key"]),
        Index("facts", ["mrn"]),
        Index("followups", ["due_day"]),
        Index("complaints", ["received_day"]),
        Index("complaints", ["resolved_day"]),
        Index("day_changes", ["dirty"]),
    )

    def setup(self):
        super().setup()
        self.migrate()

    def migrate(self, batch=2000):
        """Bring a database written by an older version up to SCHEMA_VERSION, once."""
        meta = self.db.meta.find_one({"_id": "schema"}) or {"version": 1}
        if meta["version"] >= SCHEMA_VERSION:
            return
        for collection, index in RETIRED_INDEXES:
            try:
                self.db[collection].drop_index(index)
            except OperationFailure:
                pass  # never created, or already dropped
        for collection in ("facts", "followups", "complaints"):
            done = 0
            while True:  # a missing `day` twin marks an older document
                docs = list(self.db[collection].find(
                    {"$or": [{text: {"$exists": True}, number: {"$exists": False}}
                             for text, number in DAY_FIELDS.items()]}).limit(batch))
                updates = [UpdateOne({"_id": doc["_id"]}, {"$set": {
                    number: day_number(doc[text]) if doc[text] else None
                    for text, number in DAY_FIELDS.items() if text in doc}}) for doc in docs]
                if not updates:
                    break
                self.db[collection].bulk_write(updates, ordered=False)
                done += len(updates)
            if done:
                log.info("migrated documents to day numbers", extra={"collection": collection, "count": done})
        self.db.meta.update_one({"_id": "schema"}, {"$set": {"version": SCHEMA_VERSION}}, upsert=True)

    def add_facts(self, facts):
        """Insert the facts not recorded yet (a duplicate event's fact is already there)."""
        if facts:
            self.db.facts.bulk_write([UpdateOne({"_id": fact["_id"]}, {"$setOnInsert": fact}, upsert=True)
                                      for fact in facts], ordered=False)

    def fold_all(self, updates):
        """Apply entity updates [(collection, id, fields)] in order; returns, for each, the
        entity as stored before this batch (None if new), whose dates the change may move
        away from. One read and one bulk write per collection."""
        by_collection = {}
        for collection, entity_id, fields in updates:
            merged = by_collection.setdefault(collection, {})
            merged.setdefault(entity_id, {}).update(fields)  # later events' fields win, as in order
        before = {}
        for collection, merged in by_collection.items():
            found = self.db[collection].find({"_id": {"$in": list(merged)}})
            before.update({(collection, doc["_id"]): doc for doc in found})
            self.db[collection].bulk_write([UpdateOne({"_id": entity_id}, {"$set": fields}, upsert=True)
                                            for entity_id, fields in merged.items()], ordered=False)
        return [before.get((collection, entity_id)) for collection, entity_id, _ in updates]

    def person_facts(self, keys):
        """The facts of the people with these keys {("phone_key" | "mrn", value)}, once each:
        one indexed lookup per key, the type and time left to the caller. NX-27017 scans for
        `$or`, for `$in` on any field but _id, and may take a low-selectivity index when a
        query names a second field (bench/README.md); a person has few facts."""
        found = {}
        for key, value in keys:
            for fact in self.db.facts.find({key: value}, {"date": 1, "type": 1, "ts": 1, "phone_key": 1, "mrn": 1}):
                found[fact["_id"]] = fact
        return list(found.values())

    def consultation_days(self, visit, window_s):
        """The days of the consultations this visit may convert (same phone or MRN, within the
        window before it): their partials change with it."""
        keys = {(key, visit[key]) for key in ("phone_key", "mrn") if visit.get(key)}
        return {fact["date"] for fact in self.person_facts(keys) if fact.get("type") == "ConsultationLogged"
                and visit["ts"] - window_s <= fact.get("ts", -1) <= visit["ts"]}

    # -- per-day partial figures ---------------------------------------------------------------
    def touch_days(self, days):
        """Record that these days' figures changed (after the change is written)."""
        days = sorted({d for d in days if d})
        if days:
            self.db.day_changes.bulk_write([UpdateOne({"_id": day}, {"$inc": {"n": 1}, "$set": {"dirty": 1}},
                                                      upsert=True) for day in days])

    def day_changes(self, start, end):
        return {doc["_id"]: doc["n"] for doc in self.db.day_changes.find({"_id": {"$gte": start, "$lte": end}})}

    def dirty_days(self, limit):
        return [(doc["_id"], doc["n"]) for doc in self.db.day_changes.find({"dirty": 1}).limit(limit)]

    def mark_clean(self, day, n):
        self.db.day_changes.update_one({"_id": day, "n": n}, {"$set": {"dirty": 0}})

    def cached_days(self, start, end, scope):
        # By _id ("scope|day", the primary key): one index range per scope.
        return {doc["date"]: (doc["n"], json.loads(doc["partial"])) for doc in self.db.day_figures.find(
            {"_id": {"$gte": f"{scope}|{start}", "$lte": f"{scope}|{end}"}}) if doc["scope"] == scope}

    def cached_scopes(self):
        """The departments that have stored partials (a department queried or refreshed once)."""
        return set(self.db.day_figures.distinct("scope"))

    def cache_days(self, scope, days):
        """Store partials [(day, n, partial)]: one bulk write. JSON text, since department and
        region names are free text, not safe as field names. The id starts with the scope:
        NX-27017 mismatches a string id that starts with an ISO date."""
        if days:
            self.db.day_figures.bulk_write([UpdateOne(
                {"_id": f"{scope}|{day}"},
                {"$set": {"date": day, "scope": scope, "n": n, "partial": json.dumps(part, ensure_ascii=False)}},
                upsert=True) for day, n, part in days], ordered=False)

    def facts(self, start, end, department=None):
        """Every fact of the days start..end (ISO dates), of every type: one read."""
        return [fact for fact in self.db.facts.find({"day": {"$gte": day_number(start), "$lte": day_number(end)}})
                if not department or fact.get("department") == department]

    def visits_of(self, keys):
        """The visits of the people with these keys (the conversions a consultation may have)."""
        return [fact for fact in self.person_facts(keys) if fact.get("type") == "PatientVisited"]

    def entities(self, collection, date_field, start, end, department=None):
        number = DAY_FIELDS[date_field]
        return [entity for entity in self.db[collection].find(
                {number: {"$gte": day_number(start), "$lte": day_number(end)}})
                if not department or entity.get("department") == department]
