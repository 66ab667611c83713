"""Analytics' own database: `facts` (one per event, unique on event_id: duplicates count
once), the `followups` / `complaints` entities folded from their events, and the per-day
partial figures (`day_figures`) with the change counters (`day_changes`) that say when a
day's partial is stale. Since v1.1: `voids` (the corrections, by the key of what they void:
"visit|V1", "admission|A1", "discharge|A1") with a `void` flag on the facts they void, and
`people` (one document per patient id: its merge alias and its facts' entries, domain.People).

Queries select by one indexed field and check the rest here: NX-27017 picks the first
matching index, so an added `type` (four values) or a date-like text (never indexed there)
made every day's read a scan of the whole collection (bench/README.md)."""

import functools
import json
import logging
from collections.abc import Iterable
from typing import Any

from pymongo import UpdateOne
from pymongo.errors import OperationFailure

from services.analytics import privacy
from services.analytics.domain import DAY_FIELDS, People, day_number, person_entry
from services.analytics.pacing import RefreshPacer
from shared.indexes import Index
from shared.store import Store, find_in

log = logging.getLogger(__name__)
# 2: the day-number twins of every day field (domain.DAY_FIELDS); 3: `people` built from the
# facts (facts recorded before 3 have no `ref`: a correction cannot find them).
SCHEMA_VERSION = 3
# The keys that name a person beyond the patient id: a consultation is found by either.
PERSON_KEYS = ("phone_key", "mrn")
# The shape of a stored partial: a cached day of another shape is computed again (3 added the
# unique patients' previous-visit days).
PARTIAL_FORMAT = 3
# Indexes of version 1 that NX-27017 preferred to the selective ones: dropped at start.
RETIRED_INDEXES = (
    ("facts", "date_1"),
    ("facts", "type_1"),
    ("followups", "due_date_1"),
    ("complaints", "received_date_1"),
    ("complaints", "resolved_date_1"),
    ("day_figures", "date_1"),
)


class AnalyticsStore(Store):
    indexes = (
        Index("facts", ["day"]),
        Index("facts", ["ts"]),
        Index("facts", ["phone_key"]),
        Index("facts", ["mrn"]),
        Index("facts", ["ref"]),  # the facts a correction voids
        Index("followups", ["due_day"]),
        Index("complaints", ["received_day"]),
        Index("complaints", ["resolved_day"]),
        Index("day_changes", ["dirty"]),
        Index("agent_work", ["day"]),  # calls and resolutions by agent (agents.py)
        Index("survey_answers", ["day"]),  # service-quality answers (quality.py)
        *privacy.INDEXES,  # the minimal stream's outbox
    )

    @functools.cached_property
    def refresh_pacer(self) -> RefreshPacer:
        """This process's memory of when each changed day was last recomputed (pacing.py)."""
        return RefreshPacer()

    def setup(self) -> None:
        super().setup()
        self.migrate()
        # The minimal copies for the analytics stream (services/analytics/privacy.py).
        self.stream_outbox = privacy.stream_outbox(
            self.db, self.container.config["HCRM"]["amqp_uri"]
        )

    def migrate(self, batch: int = 2000) -> None:
        """Bring a database written by an older version up to SCHEMA_VERSION, once."""
        meta = self.db.meta.find_one({"_id": "schema"}) or {"version": 1}
        if meta["version"] >= SCHEMA_VERSION:
            return
        if meta["version"] < 2:
            self._add_day_numbers(batch)
        if meta["version"] < 3:
            self._build_people(batch)
        self.db.meta.update_one(
            {"_id": "schema"}, {"$set": {"version": SCHEMA_VERSION}}, upsert=True
        )

    def _add_day_numbers(self, batch: int) -> None:
        for collection, index in RETIRED_INDEXES:
            try:
                self.db[collection].drop_index(index)
            except OperationFailure:
                pass  # never created, or already dropped
        for collection in ("facts", "followups", "complaints"):
            done = 0
            while True:  # a missing `day` twin marks an older document
                docs = list(
                    self.db[collection]
                    .find(
                        {
                            "$or": [
                                {text: {"$exists": True}, number: {"$exists": False}}
                                for text, number in DAY_FIELDS.items()
                            ]
                        }
                    )
                    .limit(batch)
                )
                updates = [
                    UpdateOne(
                        {"_id": doc["_id"]},
                        {
                            "$set": {
                                number: day_number(doc[text]) if doc[text] else None
                                for text, number in DAY_FIELDS.items()
                                if text in doc
                            }
                        },
                    )
                    for doc in docs
                ]
                if not updates:
                    break
                self.db[collection].bulk_write(updates, ordered=False)
                done += len(updates)
            if done:
                log.info(
                    "migrated documents to day numbers",
                    extra={"collection": collection, "count": done},
                )

    def _build_people(self, batch: int) -> None:
        """Every recorded fact's entry in its person's document (idempotent: a restart
        mid-way writes the same again); then every day's partial is recomputed by the refresh."""
        chunk, done = [], 0
        for fact in self.db.facts.find(
            {}, {"type": 1, "patient_id": 1, "day": 1, "ts": 1, "department": 1, "void": 1}
        ):
            chunk.append(fact)
            if len(chunk) >= batch:
                done += self.add_person_entries(chunk)
                chunk = []
        done += self.add_person_entries(chunk)
        self.db.day_changes.update_many({}, {"$inc": {"n": 1}, "$set": {"dirty": 1}})
        if done:
            log.info("built people from facts", extra={"count": done})

    def add_facts(self, facts: list[dict[str, Any]]) -> None:
        """Insert the facts not recorded yet (a duplicate event's fact is already there)."""
        if facts:
            self.db.facts.bulk_write(
                [
                    UpdateOne({"_id": fact["_id"]}, {"$setOnInsert": fact}, upsert=True)
                    for fact in facts
                ],
                ordered=False,
            )

    def add_person_entries(self, facts: Iterable[dict[str, Any]]) -> int:
        """Each fact's entry in its patient id's `people` document: one upsert per person,
        setting its own fields only, so concurrent batches never undo each other."""
        by_person: dict[str, dict[str, Any]] = {}
        for fact in facts:
            entry = person_entry(fact)
            if entry:
                section, key, value = entry
                by_person.setdefault(fact["patient_id"], {})[f"{section}.{key}"] = value
        if by_person:
            self.db.people.bulk_write(
                [
                    UpdateOne({"_id": pid}, {"$set": fields}, upsert=True)
                    for pid, fields in by_person.items()
                ],
                ordered=False,
            )
        return len(by_person)

    def people(
        self, patient_ids: Iterable[str | None], sections: Iterable[str] | None = None
    ) -> People:
        """domain.People of these ids and of the ids they were merged into: one read by _id
        for the lot, another only where an alias leads to an id not read yet."""
        found, asked = {}, set()
        wanted = {pid for pid in patient_ids if pid}
        projection = dict.fromkeys(("alias_of", *sections), 1) if sections else None
        while wanted:
            asked |= wanted
            for doc in self.db.people.find({"_id": {"$in": sorted(wanted)}}, projection):
                found[doc["_id"]] = doc
            wanted = {doc["alias_of"] for doc in found.values() if doc.get("alias_of")} - asked
        return People(found.values())

    def move_entries(self, moves: list[tuple[dict[str, Any], str, str]]) -> None:
        """[(fact, from_id, to_id)]: the fact re-pointed to the person it belongs to now, and its
        entry moved from the retired id's document to that person's."""
        if not moves:
            return
        self.db.facts.bulk_write(
            [
                UpdateOne({"_id": fact["_id"]}, {"$set": {"patient_id": to}})
                for fact, _, to in moves
            ],
            ordered=False,
        )
        sets: dict[str, dict[str, Any]] = {}
        unsets: dict[str, dict[str, str]] = {}
        for fact, retired, to in moves:
            entry = person_entry(dict(fact, patient_id=to))
            assert entry is not None  # it has a patient id: `to`
            section, key, value = entry
            sets.setdefault(to, {})[f"{section}.{key}"] = value
            unsets.setdefault(retired, {})[f"{section}.{key}"] = ""
        self.db.people.bulk_write(
            [UpdateOne({"_id": pid}, {"$set": fields}, upsert=True) for pid, fields in sets.items()]
            + [UpdateOne({"_id": pid}, {"$unset": fields}) for pid, fields in unsets.items()],
            ordered=False,
        )

    def alias(self, retired: str, survivor: str) -> None:
        self.db.people.update_one({"_id": retired}, {"$set": {"alias_of": survivor}}, upsert=True)

    def facts_by_id(self, ids: Iterable[str]) -> list[dict[str, Any]]:
        return list(self.db.facts.find({"_id": {"$in": sorted(ids)}})) if ids else []

    # -- corrections -----------------------------------------------------------------------------
    def add_voids(self, voids: list[tuple[str, float | None]]) -> None:
        """[(key, until_ts)]: a DischargeCancelled keeps the latest time (`$max`: any order)."""
        if voids:
            self.db.voids.bulk_write(
                [
                    UpdateOne(
                        {"_id": key},
                        {"$max": {"until_ts": until}}
                        if until is not None
                        else {"$setOnInsert": {"voided": 1}},
                        upsert=True,
                    )
                    for key, until in voids
                ],
                ordered=False,
            )

    def voids(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        """{key: doc} of the stored voids among these keys: one read by _id."""
        return (
            {doc["_id"]: doc for doc in self.db.voids.find({"_id": {"$in": sorted(keys)}})}
            if keys
            else {}
        )

    def facts_of_ref(self, ref: str) -> list[dict[str, Any]]:
        return list(self.db.facts.find({"ref": ref}))

    def mark_void(self, facts: list[dict[str, Any]]) -> None:
        """Flag the facts void, and their visits' entries (a person's earlier visit skips them)."""
        if not facts:
            return
        self.db.facts.bulk_write(
            [UpdateOne({"_id": fact["_id"]}, {"$set": {"void": 1}}) for fact in facts],
            ordered=False,
        )
        self.add_person_entries(
            [dict(fact, void=1) for fact in facts if fact["type"] == "PatientVisited"]
        )

    def fold_all(
        self, updates: list[tuple[str, str, dict[str, Any]]]
    ) -> list[dict[str, Any] | None]:
        """Apply entity updates [(collection, id, fields)] in order; returns, for each, the
        entity as stored before this batch (None if new), whose dates the change may move
        away from. One read and one bulk write per collection."""
        by_collection: dict[str, dict[str, dict[str, Any]]] = {}
        for collection, entity_id, fields in updates:
            merged = by_collection.setdefault(collection, {})
            merged.setdefault(entity_id, {}).update(fields)  # later events' fields win, as in order
        before = {}
        for collection, merged in by_collection.items():
            found = self.db[collection].find({"_id": {"$in": list(merged)}})
            before.update({(collection, doc["_id"]): doc for doc in found})
            self.db[collection].bulk_write(
                [
                    UpdateOne({"_id": entity_id}, {"$set": fields}, upsert=True)
                    for entity_id, fields in merged.items()
                ],
                ordered=False,
            )
        return [before.get((collection, entity_id)) for collection, entity_id, _ in updates]

    def person_facts(self, keys: Iterable[tuple[str, Any]]) -> list[dict[str, Any]]:
        """The facts of the people with these keys {("phone_key" | "mrn", value)}, once each,
        the type and time left to the caller: one query per key field while the facts are
        few enough to scan, one per key after (shared.store.find_in)."""
        by_field: dict[str, set[Any]] = {}
        for key, value in keys:
            by_field.setdefault(key, set()).add(value)
        found = {}
        for key, values in sorted(by_field.items()):
            for fact in find_in(
                self.db.facts,
                key,
                values,
                {"date": 1, "type": 1, "ts": 1, "phone_key": 1, "mrn": 1, "void": 1},
            ):
                found[fact["_id"]] = fact
        return list(found.values())

    def consultation_days(self, visits: list[dict[str, Any]], window_s: float) -> set[str]:
        """The days of the consultations these visits may convert (same phone or MRN, within
        the window before the visit): their partials change with them. One read for all."""
        keys = {(key, visit[key]) for visit in visits for key in PERSON_KEYS if visit.get(key)}
        if not keys:
            return set()
        consultations = [
            fact for fact in self.person_facts(keys) if fact.get("type") == "ConsultationLogged"
        ]
        return {
            fact["date"]
            for visit in visits
            for fact in consultations
            if any(visit.get(key) and fact.get(key) == visit[key] for key in PERSON_KEYS)
            and visit["ts"] - window_s <= fact.get("ts", -1) <= visit["ts"]
        }

    # -- per-day partial figures ---------------------------------------------------------------
    def touch_days(self, days: Iterable[str | None]) -> None:
        """Record that these days' figures changed (after the change is written)."""
        days = sorted({d for d in days if d})
        if days:
            self.db.day_changes.bulk_write(
                [
                    UpdateOne({"_id": day}, {"$inc": {"n": 1}, "$set": {"dirty": 1}}, upsert=True)
                    for day in days
                ]
            )

    def day_changes(self, start: str, end: str) -> dict[str, int]:
        return {
            doc["_id"]: doc["n"]
            for doc in self.db.day_changes.find({"_id": {"$gte": start, "$lte": end}})
        }

    def dirty_days(self, limit: int) -> list[tuple[str, int]]:
        return [
            (doc["_id"], doc["n"]) for doc in self.db.day_changes.find({"dirty": 1}).limit(limit)
        ]

    def mark_clean(self, day: str, n: int) -> None:
        self.db.day_changes.update_one({"_id": day, "n": n}, {"$set": {"dirty": 0}})

    def cached_days(
        self, start: str, end: str, scope: str
    ) -> dict[str, tuple[int, dict[str, Any]]]:
        # By _id ("scope|day", the primary key): one index range per scope.
        return {
            doc["date"]: (doc["n"], json.loads(doc["partial"]))
            for doc in self.db.day_figures.find(
                {"_id": {"$gte": f"{scope}|{start}", "$lte": f"{scope}|{end}"}}
            )
            if doc["scope"] == scope and doc.get("format") == PARTIAL_FORMAT
        }

    def cached_scopes(self) -> set[str]:
        """The departments that have stored partials (a department queried or refreshed once)."""
        return set(self.db.day_figures.distinct("scope"))

    def cache_days(self, scope: str, days: list[tuple[str, int, dict[str, Any]]]) -> None:
        """Store partials [(day, n, partial)]: one bulk write. JSON text, since department and
        region names are free text, not safe as field names. The id starts with the scope:
        NX-27017 mismatches a string id that starts with an ISO date."""
        if days:
            self.db.day_figures.bulk_write(
                [
                    UpdateOne(
                        {"_id": f"{scope}|{day}"},
                        {
                            "$set": {
                                "date": day,
                                "scope": scope,
                                "n": n,
                                "format": PARTIAL_FORMAT,
                                "partial": json.dumps(part, ensure_ascii=False),
                            }
                        },
                        upsert=True,
                    )
                    for day, n, part in days
                ],
                ordered=False,
            )

    def facts(self, start: str, end: str, department: str | None = None) -> list[dict[str, Any]]:
        """Every fact that counts of the days start..end (ISO dates), of every type: one read."""
        return [
            fact
            for fact in self.db.facts.find(
                {"day": {"$gte": day_number(start), "$lte": day_number(end)}}
            )
            if not fact.get("void") and (not department or fact.get("department") == department)
        ]

    def visits_of(self, keys: Iterable[tuple[str, Any]]) -> list[dict[str, Any]]:
        """The visits that count of the people with these keys (the conversions a consultation
        may have)."""
        return [
            fact
            for fact in self.person_facts(keys)
            if fact.get("type") == "PatientVisited" and not fact.get("void")
        ]

    # -- agents' work and survey answers (their own collections: a range reads only them) ------
    def add_records(self, collection: str, records: list[dict[str, Any]]) -> None:
        """Insert the records not kept yet (a duplicated event's record is already there)."""
        if records:
            self.db[collection].bulk_write(
                [UpdateOne({"_id": r["_id"]}, {"$setOnInsert": r}, upsert=True) for r in records],
                ordered=False,
            )

    def records(
        self, collection: str, start: str, end: str, department: str | None = None
    ) -> list[dict[str, Any]]:
        """The records of the days start..end (ISO dates), of one department if given."""
        return [
            record
            for record in self.db[collection].find(
                {"day": {"$gte": day_number(start), "$lte": day_number(end)}}
            )
            if not department or record.get("department") == department
        ]

    def entities(
        self, collection: str, date_field: str, start: str, end: str, department: str | None = None
    ) -> list[dict[str, Any]]:
        number = DAY_FIELDS[date_field]
        return [
            entity
            for entity in self.db[collection].find(
                {number: {"$gte": day_number(start), "$lte": day_number(end)}}
            )
            if not department or entity.get("department") == department
        ]
