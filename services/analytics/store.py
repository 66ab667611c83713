"""Analytics' own database: `facts` (one per event, unique on event_id: duplicates count
once), the `followups` / `complaints` entities folded from their events, and the per-day
partial figures (`day_figures`) with the change counters (`day_changes`) that say when a
day's partial is stale."""
import json

from pymongo import ReturnDocument, UpdateOne
from pymongo.errors import DuplicateKeyError

from shared.store import Index, Store


class AnalyticsStore(Store):
    indexes = (
        Index("facts", ["date"]),
        Index("facts", ["type"]),
        Index("facts", ["ts"]),
        Index("followups", ["due_date"]),
        Index("complaints", ["received_date"]),
        Index("complaints", ["resolved_date"]),
        Index("seen", ["seen_at"]),
        Index("facts", ["phone_key"]),
        Index("facts", ["mrn"]),
        Index("day_figures", ["date"]),
        Index("day_changes", ["dirty"]),
    )

    def first_time(self, event_id, now):
        """True the first time an event id is seen (the idempotency point)."""
        try:
            self.db.seen.insert_one({"_id": event_id, "seen_at": now.timestamp()})
            return True
        except DuplicateKeyError:
            return False

    def add_fact(self, fact):
        self.db.facts.update_one({"_id": fact["_id"]}, {"$setOnInsert": fact}, upsert=True)

    def fold(self, collection, entity_id, fields):
        """Set the entity's fields; the entity as it was before (None if new)."""
        return self.db[collection].find_one_and_update({"_id": entity_id}, {"$set": fields}, upsert=True,
                                                       return_document=ReturnDocument.BEFORE)

    def consultation_days(self, visit, window_s):
        """The days of the consultations this visit may convert (same phone or MRN, within the
        window before it): their partials change with it."""
        days = set()
        for key in ("phone_key", "mrn"):
            if visit.get(key):
                days.update(doc["date"] for doc in self.db.facts.find(
                    {key: visit[key], "type": "ConsultationLogged",
                     "ts": {"$gte": visit["ts"] - window_s, "$lte": visit["ts"]}}, {"date": 1}))
        return days

    # -- per-day partial figures ---------------------------------------------------------------
    def touch_days(self, days):
        """Record that these days' figures changed (after the change is written)."""
        for day in sorted({d for d in days if d}):
            self.db.day_changes.update_one({"_id": day}, {"$inc": {"n": 1}, "$set": {"dirty": 1}}, upsert=True)

    def day_changes(self, start, end):
        return {doc["_id"]: doc["n"] for doc in self.db.day_changes.find({"_id": {"$gte": start, "$lte": end}})}

    def dirty_days(self, limit):
        return [(doc["_id"], doc["n"]) for doc in self.db.day_changes.find({"dirty": 1}).limit(limit)]

    def mark_clean(self, day, n):
        self.db.day_changes.update_one({"_id": day, "n": n}, {"$set": {"dirty": 0}})

    def cached_days(self, start, end, scope):
        return {doc["date"]: (doc["n"], json.loads(doc["partial"])) for doc in self.db.day_figures.find(
            {"date": {"$gte": start, "$lte": end}, "scope": scope})}

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

    def facts(self, kind, start, end, department=None, department_field="department"):
        query = {"type": kind, "date": {"$gte": start, "$lte": end}}
        if department:
            query[department_field] = department
        return list(self.db.facts.find(query))

    def visits_between(self, start_ts, end_ts):
        return list(self.db.facts.find({"type": "PatientVisited", "ts": {"$gte": start_ts, "$lte": end_ts}},
                                       {"ts": 1, "phone_key": 1, "mrn": 1}))

    def entities(self, collection, date_field, start, end, department=None):
        query = {date_field: {"$gte": start, "$lte": end}}
        if department:
            query["department"] = department
        return list(self.db[collection].find(query))
