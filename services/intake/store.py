"""Intake's own database: patients, and the recorded events (which double as the outbox).

Collections
  patients  one document per person: identity keys (mrn, prospect_key) and the projection
  events    one document per accepted inbound event, unique on (source, source_event_id):
            the deduplication point, the patient's timeline and the outbox record at once
"""

import datetime
import re
import uuid
from typing import Any, ClassVar

from pymongo import UpdateOne
from pymongo.errors import DuplicateKeyError

from services.intake import domain
from shared.clock import utcnow
from shared.indexes import Index
from shared.outbox import Outbox
from shared.store import Store, any_of, find_in, insert_new
from shared.topology import SERVICE_EXCHANGES

EXCHANGE = "intake.events"
assert EXCHANGE in SERVICE_EXCHANGES

# Fields of the patient view the API shows; the rest are internal.
PUBLIC_FIELDS = (
    "patient_id",
    "mrn",
    *domain.PROFILE_FIELDS,
    "stage",
    "segment",
    "visit_count",
    "first_seen_at",
    "last_seen_at",
    "merged_mrns",
    "erased_at",
)


class IntakeStore(Store):
    indexes = (
        # Deduplication is a unique index, never a read-then-write (docs/ARCHITECTURE.md rule 3).
        Index("events", ["source", "source_event_id"], unique=True),
        Index("events", ["patient_id", "occurred_at"]),
        # NX-27017 does not use a compound index's prefix; MongoDB does not mind the extra one.
        Index("events", ["patient_id"]),
        *Outbox.indexes("events"),
        # mrn is the hospital's identity; prospects (no mrn yet) are keyed by phone digits.
        Index(
            "patients", ["mrn"], unique=True, partialFilterExpression={"mrn": {"$type": "string"}}
        ),
        Index(
            "patients",
            ["prospect_key"],
            unique=True,
            partialFilterExpression={"prospect_key": {"$type": "string"}},
        ),
        Index("patients", ["phone_digits"]),
        Index("patients", ["view.last_seen_at"]),
        # Data protection (services/intake/privacy.py): a person's merged records, the events
        # past their retention period (by when they were recorded), and those to look at again.
        Index("patients", ["merged_into"]),
        Index("events", ["recorded_at"]),
        Index("events", ["retention_recheck_ts"]),
    )

    def setup(self) -> None:
        super().setup()
        self.outbox = Outbox(self.db.events, self.container.config["HCRM"]["amqp_uri"], "intake")

    # -- identity -------------------------------------------------------------------------
    # A person is one patient record. The MRN is the hospital's identity; before the person
    # has one (a consultation), the phone key stands in. Lookups go by the `phone_digits`
    # written at creation, so a record is findable before its first projection.
    LIVE: ClassVar[dict[str, Any]] = {"merged_into": {"$exists": False}}

    def resolve_patient(
        self, mrn: str | None, digits: str | None, now: datetime.datetime
    ) -> tuple[str, bool]:
        """(patient_id, created) for this identity, creating or linking as needed.

        Every write is atomic and guarded by a unique index, so concurrent workers (or
        replicas) resolving the same MRN converge on one record. Two workers racing on the
        same *phone* (a consultation and a visit at once) may still create two records;
        `reconcile_phones` merges those right after.
        """
        for _ in range(5):
            if mrn:
                found = self.db.patients.find_one({"mrn": mrn}, {"_id": 1, "merged_into": 1})
                if found:
                    # A retired MRN (v1.1 PatientsMerged) leads to the record it became.
                    return self.survivor_of(found), False
                if digits:
                    # A prospect who phoned in earlier becomes this patient (docs/EVENTS.md:
                    # a later visit with the same phone links to it).
                    # Found by the index first, then claimed by _id: NX-27017 scans the whole
                    # collection for a find_one_and_update on any other field (17 ms at 30k).
                    prospect = self.db.patients.find_one(
                        {"prospect_key": digits, **self.LIVE}, {"_id": 1}
                    )
                    try:
                        linked = prospect and self.db.patients.find_one_and_update(
                            {"_id": prospect["_id"], "prospect_key": digits, **self.LIVE},
                            {
                                "$set": {"mrn": mrn, "linked_at": now.isoformat()},
                                "$unset": {"prospect_key": ""},
                            },
                            projection={"_id": 1},
                        )
                    except DuplicateKeyError:
                        continue  # another worker created this mrn meanwhile: find it
                    if linked:
                        return linked["_id"], False
                try:
                    return self._create({"mrn": mrn, "phone_digits": digits}, now), True
                except DuplicateKeyError:
                    continue
            else:
                found = self.db.patients.find_one(
                    {"prospect_key": digits, **self.LIVE}, {"_id": 1}
                ) or self.db.patients.find_one(
                    {"phone_digits": digits, **self.LIVE}, {"_id": 1}, sort=[("created_at", 1)]
                )
                if found:
                    return found["_id"], False
                try:
                    return self._create({"prospect_key": digits, "phone_digits": digits}, now), True
                except DuplicateKeyError:
                    continue
        raise RuntimeError("could not resolve the patient after 5 attempts")

    MAX_CHAIN = 20  # merges chain (R -> S -> T); a longer chain is a loop in bad data

    def survivor_of(self, patient: dict[str, Any]) -> str:
        """The live record a (possibly merged) patient document leads to: its _id."""
        for _ in range(self.MAX_CHAIN):
            if not patient.get("merged_into"):
                return patient["_id"]
            patient = self.db.patients.find_one(
                {"_id": patient["merged_into"]}, {"_id": 1, "merged_into": 1}
            )
            if patient is None:
                break
        raise RuntimeError("a merged patient record leads nowhere (a broken or looping chain)")

    def merge(self, survivor_id: str, retired_mrn: str, now: datetime.datetime) -> str:
        """PatientsMerged (v1.1): the record of `retired_mrn` becomes part of the survivor.

        Idempotent and order-free: if the retired MRN was never seen, an alias record is
        created for it, so its events, when they come, resolve to the survivor. Returns the
        retired record's id (what downstream services re-point). The record is marked first
        and its events re-pointed after, so an event recorded meanwhile on it moves too (and
        a worker that recorded one after the re-point repairs it: `repoint_if_merged`).
        """
        for _ in range(5):
            retired = self.db.patients.find_one({"mrn": retired_mrn}, {"_id": 1, "merged_into": 1})
            if retired is None:
                try:
                    return self._create(
                        {
                            "mrn": retired_mrn,
                            "merged_into": survivor_id,
                            "merged_at": now.isoformat(),
                        },
                        now,
                        event_count=-1,
                    )
                except DuplicateKeyError:
                    continue  # its first event arrived meanwhile: merge that record
            if self.survivor_of(retired) == survivor_id:
                return retired["_id"]  # merged already (a duplicate, or a chain to it)
            self.db.patients.update_one(
                {"_id": retired["_id"]},
                {
                    "$set": {
                        "merged_into": survivor_id,
                        "merged_at": now.isoformat(),
                        "event_count": -1,
                    },
                    "$unset": {"prospect_key": ""},
                },
            )
            # Records merged into the retired one earlier follow the chain; their events too.
            self.db.events.update_many(
                {"patient_id": retired["_id"]}, {"$set": {"patient_id": survivor_id}}
            )
            return retired["_id"]
        raise RuntimeError("could not merge after 5 attempts")

    def repoint_if_merged(self, patient_id: str) -> str:
        """After recording under `patient_id`: if that record was merged meanwhile, move its
        events to the survivor. Returns the live id. Only called when a projection found
        the record not live (rare), so an ordinary event pays nothing for it."""
        patient = self.db.patients.find_one({"_id": patient_id}, {"_id": 1, "merged_into": 1})
        if patient is None or not patient.get("merged_into"):
            return patient_id
        survivor = self.survivor_of(patient)
        self.db.events.update_many({"patient_id": patient_id}, {"$set": {"patient_id": survivor}})
        return survivor

    def _create(self, keys: dict[str, Any], now: datetime.datetime, event_count: int = 0) -> str:
        record = _new_record(keys, now, event_count)
        self.db.patients.insert_one(record)
        return record["_id"]

    def create_patients(
        self, identities: list[tuple[str, str | None]], now: datetime.datetime
    ) -> dict[str, str]:
        """Create the records of new MRNs [(mrn, phone digits)] in one insert: {mrn: id} of
        those created. Left out, for resolve_patient to handle one by one: an MRN whose phone
        belongs to a prospect (who becomes this patient), and one created meanwhile by another
        worker (the unique index says so). Callers reconcile the phones after
        (`reconcile_phones`), as after any creation."""
        phones = sorted({digits for _, digits in identities if digits})
        prospects = {
            found["prospect_key"]
            for found in find_in(
                self.db.patients, "prospect_key", phones, {"prospect_key": 1}, **self.LIVE
            )
        }
        docs = [
            _new_record({"mrn": mrn, "phone_digits": digits}, now)
            for mrn, digits in identities
            if digits not in prospects
        ]
        return {doc["mrn"]: doc["_id"] for doc in insert_new(self.db.patients, docs)}

    def reconcile_phones(self, phones: set[str]) -> list[str]:
        """Merge prospects that share one of these phones into the one patient they turned
        out to be, with one read of the records that hold them.

        Runs after every creation of a record with a phone: a race needs two creations, and
        whichever of the two creators finishes last sees both records. Returns the ids
        whose records changed (to re-project).
        """
        if not phones:
            return []
        by_phone: dict[str, list[dict[str, Any]]] = {}
        for person in find_in(
            self.db.patients,
            "phone_digits",
            phones,
            {"mrn": 1, "created_at": 1, "phone_digits": 1},
            **self.LIVE,
        ):
            by_phone.setdefault(person["phone_digits"], []).append(person)
        return [
            target
            for people in by_phone.values()
            if (target := self._merge_prospects(sorted(people, key=lambda p: p["created_at"])))
        ]

    def _merge_prospects(self, people: list[dict[str, Any]]) -> str | None:
        """Of the live records sharing one phone (oldest first): merge the prospects into the
        one patient, or into the oldest prospect. Returns the id merged into, if any."""
        with_mrn = [p for p in people if p.get("mrn")]
        prospects = [p for p in people if not p.get("mrn")]
        if len(with_mrn) == 1 and prospects:
            target, merged = with_mrn[0]["_id"], [p["_id"] for p in prospects]
        elif not with_mrn and len(prospects) > 1:
            target, merged = prospects[0]["_id"], [p["_id"] for p in prospects[1:]]
        else:
            return None  # one record, or several patients with their own MRNs sharing a phone
        for patient_id in merged:
            self.db.patients.update_one(
                {"_id": patient_id},
                {
                    "$set": {"merged_into": target, "event_count": -1},
                    "$unset": {"prospect_key": ""},
                },
            )
        # Re-point after marking, so an event recorded meanwhile on a merged record moves too.
        for patient_id in merged:  # one by one: `$in` on a field other than _id scans in NX-27017
            self.db.events.update_many({"patient_id": patient_id}, {"$set": {"patient_id": target}})
        return target

    # -- recording ------------------------------------------------------------------------
    def patients_by_mrn(self, mrns: set[str]) -> dict[str, dict[str, Any]]:
        """{mrn: the record holding it (_id, merged_into)} for those of `mrns` known: one read
        for a batch's patients."""
        return {
            patient["mrn"]: patient
            for patient in find_in(
                self.db.patients, "mrn", mrns, {"_id": 1, "mrn": 1, "merged_into": 1}
            )
        }

    @staticmethod
    def _event_doc(
        event_id: str,
        inbound: dict[str, Any],
        loaded: dict[str, Any],
        patient_id: str,
        now: datetime.datetime,
    ) -> dict[str, Any]:
        """The recorded event, with its canonical message waiting in its outbox."""
        message = domain.canonical_message(event_id, inbound, patient_id, now)
        return {
            "_id": event_id,
            "source": inbound["source"],
            "source_event_id": inbound["event_id"],
            "event_type": inbound["event_type"],
            "occurred_at": loaded["occurred_at"],
            "recorded_at": now,
            "patient_id": patient_id,
            "data": inbound["data"],
            # Its writer publishes it right after the insert (IntakeService._hand_on).
            **Outbox.fields(EXCHANGE, inbound["event_type"], message, now, held=True),
        }

    def record_event(
        self,
        event_id: str,
        inbound: dict[str, Any],
        loaded: dict[str, Any],
        patient_id: str,
        now: datetime.datetime,
    ) -> tuple[dict[str, Any], bool]:
        """Insert the event (and its outbox record) once. Returns (doc, is_new)."""
        return self.record_events([(event_id, inbound, loaded, patient_id)], now)[0]

    def record_events(
        self,
        items: list[tuple[str, dict[str, Any], dict[str, Any], str]],
        now: datetime.datetime,
    ) -> list[tuple[dict[str, Any], bool]]:
        """record_event for many [(event_id, inbound, loaded, patient_id)] in one insert; a
        duplicate is caught by the unique index, as alone, and read back by its id (the
        canonical id is the _id, and the same (source, event_id) always gives the same id).
        Returns [(doc, is_new)] in the order of `items`."""
        docs = [self._event_doc(*item, now) for item in items]
        new = {id(doc) for doc in insert_new(self.db.events, docs)}
        repeated = [doc["_id"] for doc in docs if id(doc) not in new]
        existing = (
            {doc["_id"]: doc for doc in self.db.events.find({"_id": {"$in": repeated}})}
            if repeated
            else {}
        )
        return [
            (doc, True) if id(doc) in new else (existing.get(doc["_id"], doc), False)
            for doc in docs
        ]

    def recorded(self, source: str, source_event_id: str) -> dict[str, Any] | None:
        return self.db.events.find_one(
            {"source": source, "source_event_id": source_event_id},
            {
                "event_type": 1,
                "occurred_at": 1,
                "data": 1,
                "recorded_at": 1,
                "erased": 1,
                "retained_at": 1,
            },
        )

    _PROJECTED: ClassVar[dict[str, int]] = {
        "patient_id": 1,
        "event_type": 1,
        "occurred_at": 1,
        "data": 1,
    }

    def project_patient(
        self, patient_id: str, known_events: list[dict[str, Any]] | None = None
    ) -> bool:
        """Recompute the patient from its events; a stale computation never overwrites a
        newer one (the event count only grows, so more events = more complete).

        `known_events`: the patient's events when the caller has them all (a record it just
        created with its first event), which saves reading them back. If the write then
        finds a projection as complete already (another event was recorded meanwhile, and
        projected without this one), the events are read back after all."""
        read_back = known_events is None
        if known_events is None:
            known_events = list(self.db.events.find({"patient_id": patient_id}, self._PROJECTED))
        done = self.db.patients.update_one(*self._projection(patient_id, known_events))
        if not done.matched_count and not read_back:
            return self.project_patient(patient_id)
        return bool(done.matched_count)

    def project_patients(
        self, patient_ids: set[str], known: dict[str, list[dict[str, Any]]] | None = None
    ) -> None:
        """project_patient for many: one read of their events, one bulk write. `known`: the
        events of records the caller just created with them (not read back, as in
        project_patient). A record merged meanwhile has its events moved to the survivor,
        which is projected then."""
        if not patient_ids:
            return
        events: dict[str, list[dict[str, Any]]] = {patient_id: [] for patient_id in patient_ids}
        known = {pid: docs for pid, docs in (known or {}).items() if pid in patient_ids}
        events.update(known)
        if patient_ids - set(known):
            for event in find_in(
                self.db.events, "patient_id", patient_ids - set(known), self._PROJECTED
            ):
                events.setdefault(event["patient_id"], []).append(event)
        writes = [
            UpdateOne(*self._projection(patient_id, events[patient_id]))
            for patient_id in sorted(patient_ids)
            if events[patient_id]
        ]
        if writes and self.db.patients.bulk_write(writes, ordered=False).matched_count == len(
            patient_ids
        ):
            return
        # Not all written: a record projected as completely by another worker already (a
        # duplicate), erased, or merged meanwhile; or a new record that another event reached
        # first (its projection may lack the events in hand: read back, as project_patient).
        for patient_id in known:
            self.project_patient(patient_id)
        for patient in self.db.patients.find(
            {"_id": any_of(patient_ids)}, {"_id": 1, "merged_into": 1}
        ):
            if patient.get("merged_into"):
                survivor = self.repoint_if_merged(patient["_id"])
                if survivor != patient["_id"]:
                    self.project_patient(survivor)

    def _projection(
        self, patient_id: str, known_events: list[dict[str, Any]]
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        """(filter, update) writing the patient's view computed from all of its events."""
        events = [
            {
                "event_id": event["_id"],
                "event_type": event["event_type"],
                "occurred_at": event["occurred_at"],
                "data": event["data"],
            }
            for event in known_events
        ]
        view = domain.project(events)
        view.pop("mrn")  # identity is set by resolve_patient, never by a projection
        # The derived record lives in one subdocument, replaced whole: the identity fields
        # beside it are never touched, and its dates and booleans keep their types.
        update = {"view": view, "event_count": view["event_count"]}
        if view["phone_digits"]:
            update["phone_digits"] = view["phone_digits"]  # the latest phone is the lookup key
        # An erased record is never projected again (services/intake/privacy.py).
        return (
            {
                "_id": patient_id,
                "event_count": {"$lt": view["event_count"]},
                **self.LIVE,
                "erased_at": {"$exists": False},
            },
            {"$set": update},
        )

    # -- reading --------------------------------------------------------------------------
    def get_patient(self, patient_id: str) -> dict[str, Any] | None:
        """The live record; the id of a merged record leads to the patient it became."""
        patient = self.db.patients.find_one({"_id": patient_id})
        if patient and patient.get("merged_into"):
            patient = self.db.patients.find_one({"_id": self.survivor_of(patient)})
        return patient if patient and patient.get("event_count", 0) > 0 else None

    def find_patients(
        self,
        mrn: str | None = None,
        phone_digits: str | None = None,
        text: str | None = None,
        limit: int = 50,
        offset: int = 0,
    ) -> tuple[list[dict[str, Any]], int]:
        query: dict[str, Any] = {"event_count": {"$gt": 0}}
        if mrn:
            query["mrn"] = mrn
        if phone_digits:
            query["phone_digits"] = phone_digits
        if text:
            pattern = re.escape(text)
            query["$or"] = [
                {"view.name": {"$regex": pattern, "$options": "i"}},
                {"mrn": {"$regex": pattern, "$options": "i"}},
            ]
        total = self.db.patients.count_documents(query)
        if mrn and not total:
            # v1.1: a retired MRN finds the patient it was merged into.
            retired = self.db.patients.find_one({"mrn": mrn, "merged_into": {"$exists": True}})
            survivor = retired and self.get_patient(retired["_id"])
            if survivor and not (phone_digits and survivor.get("phone_digits") != phone_digits):
                return ([survivor], 1) if offset == 0 and limit > 0 else ([], 1)
        cursor = (
            self.db.patients.find(query)
            .sort([("view.last_seen_at", -1), ("_id", 1)])
            .skip(offset)
            .limit(limit)
        )
        return list(cursor), total

    def timeline(
        self, patient_id: str, limit: int = 500, offset: int = 0
    ) -> tuple[list[dict[str, Any]], int]:
        query = {"patient_id": patient_id}
        total = self.db.events.count_documents(query)
        cursor = (
            self.db.events.find(query, {"outbox_queue": 0})
            .sort([("occurred_at", 1), ("_id", 1)])
            .skip(offset)
            .limit(limit)
        )
        return list(cursor), total

    def relay_outbox(self) -> int:
        return self.outbox.relay(now=utcnow())


def _new_record(
    keys: dict[str, Any], now: datetime.datetime, event_count: int = 0
) -> dict[str, Any]:
    """A new patient record: its identity keys (those given), before any projection."""
    return {
        "_id": uuid.uuid4().hex,
        **{k: v for k, v in keys.items() if v},
        "created_at": now,
        "event_count": event_count,
    }
