"""Analytics' own database: `facts` (one per event, unique on event_id: duplicates count
once) and the `followups` / `complaints` entities folded from their events."""
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
        self.db[collection].update_one({"_id": entity_id}, {"$set": fields}, upsert=True)

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
