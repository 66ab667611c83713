"""Intake and the patients' data rights (README.md § Data protection), mixed into IntakeService.

- export_patient: the person's record, the records merged into it and every event recorded
  about them, as JSON.
- erase_patient (the gateway's POST /api/v1/patients/{id}/erase): intake owns the erasure. It
  records a PatientErased event first (its outbox publishes it on intake.events, so every
  service acts on it whatever is running now), then the record keeps its id and counters
  but loses every personal field, its MRNs and phone key are released (a later event with the
  same MRN starts a NEW record), and each of the person's events keeps only what counts are
  derived from (shared/privacy.erased_data), its outbox copy too. Idempotent: asked again, it
  applies the same erasure again and answers with it.
- retention: an inbound event recorded more than `event_retention_days` ago
  (`inpatient_event_retention_days` for admissions and discharges) keeps its ids, times and
  codes, and of its person only the statements that are still the latest of their field
  (shared/privacy.latest_statements): the record, which is derived from the events, stays
  exactly as it was. A page at a time in the order they were recorded (shared/retention.py); an
  event that kept a statement is looked at again every RECHECK_DAYS, for a newer statement may
  have replaced it since.
"""

import datetime
import logging

from pymongo.errors import DuplicateKeyError

from services.intake import domain
from services.intake.store import EXCHANGE
from shared import erasures, outbound, retention
from shared.clock import utcnow
from shared.errors import NotFound
from shared.messaging import rpc
from shared.outbox import PUBLISHED, Outbox
from shared.privacy import (
    ERASED_EVENT,
    PROFILE_FIELDS,
    cutoff,
    erased_data,
    jsonable,
    latest_statements,
    reduce_queue,
    retained_data,
    without_outbox,
)
from shared.timers import configured_timer

log = logging.getLogger(__name__)

HCRM_SOURCE = "hcrm"  # the `source` of what intake records on its own (PatientErased)
INPATIENT_TYPES = (
    "PatientAdmitted",
    "PatientDischarged",
    "AdmissionCancelled",
    "DischargeCancelled",
)
RECHECK_DAYS = 30
PAGE = retention.PAGE
MAX_HOPS = 32
_READ = {
    "event_type": 1,
    "occurred_at": 1,
    "data": 1,
    "outbox_queue": 1,
    "outbox_seq": 1,
    "outbox_state": 1,
    "erased": 1,
    "patient_id": 1,
    "retained_at": 1,
    "retention_recheck_ts": 1,
}


def erased_view(view, now):
    """The record's derived view with no personal field left: counters, stage facts, segment
    and times stay; no calls (consent false), no profile."""
    view = dict(view or {})
    view.update(dict.fromkeys(PROFILE_FIELDS))
    view.update(
        contact_consent=False,
        marketing_consent=False,
        phone_digits=None,
        merged_mrns=[],
        erased_at=now.isoformat(),
    )
    return view


class IntakePrivacyMixin:
    # -- the person's records -----------------------------------------------------------------
    def _live_record(self, patient_id):
        doc = self.store.db.patients.find_one({"_id": patient_id})
        if doc is not None and doc.get("merged_into"):
            doc = self.store.db.patients.find_one({"_id": self.store.survivor_of(doc)})
        if doc is None or doc.get("event_count", 0) <= 0:
            raise NotFound(f"no patient {patient_id}")
        return doc

    def _person_records(self, live):
        """The live record and every record merged into it (directly or through a chain)."""
        records, frontier = [live], [live["_id"]]
        seen = {live["_id"]}
        for _ in range(MAX_HOPS):
            found = [
                doc
                for pid in frontier
                for doc in self.store.db.patients.find({"merged_into": pid})
                if doc["_id"] not in seen
            ]
            if not found:
                break
            seen |= {doc["_id"] for doc in found}
            records += found
            frontier = [doc["_id"] for doc in found]
        return records

    @staticmethod
    def _mrns_of(records):
        mrns = [doc["mrn"] for doc in records if doc.get("mrn")]
        mrns += [
            mrn
            for mrn in (records[0].get("view") or {}).get("merged_mrns") or ()
            if mrn not in mrns
        ]
        return mrns

    # -- export -------------------------------------------------------------------------------
    @rpc
    def export_patient(self, patient_id, patient_ids=None):
        """Everything intake holds about the person (the gateway's export, manager and admin)."""
        live = self._live_record(patient_id)
        records = self._person_records(live)
        ids = [doc["_id"] for doc in records] + [
            pid for pid in patient_ids or () if pid not in {doc["_id"] for doc in records}
        ]
        events = sorted(
            (
                without_outbox(event)
                for pid in ids
                for event in self.store.db.events.find({"patient_id": pid})
            ),
            key=lambda event: (event.get("occurred_at") or datetime.datetime.min, event["_id"]),
        )
        return jsonable(
            {
                "service": "intake",
                "patient_id": live["_id"],
                "patient_ids": ids,
                "mrns": self._mrns_of(records),
                "record": self._public(live),
                "records": [
                    {
                        key: doc.get(key)
                        for key in (
                            "_id",
                            "mrn",
                            "created_at",
                            "linked_at",
                            "merged_into",
                            "merged_at",
                            "erased_at",
                            "event_count",
                            "view",
                        )
                    }
                    for doc in records
                ],
                "events": events,
            }
        )

    # -- erasure ------------------------------------------------------------------------------
    @rpc
    def erase_patient(self, patient_id, erasure_id):
        """Erase the person (PatientErased to every service); answers what was erased.
        `erasure_id` is the caller's (the gateway's): asking again applies the first erasure
        again and answers with its id and time."""
        now = utcnow()
        live = self._live_record(patient_id)
        records = self._person_records(live)
        ids = [doc["_id"] for doc in records]
        existing = next(
            (
                event
                for event in self.store.db.events.find({"patient_id": live["_id"]})
                if event["event_type"] == ERASED_EVENT
            ),
            None,
        )
        if existing is None:
            existing = self._record_erasure(
                live["_id"], ids, self._mrns_of(records), erasure_id, now
            )
        data = existing["data"]
        ids = sorted(set(ids) | set(data.get("patient_ids") or ()))
        erasures.record(self.store.db, data["erasure_id"], ids, existing["recorded_at"])
        self._apply_erasure(ids, data["erasure_id"], now)
        if existing.get("outbox_state") != PUBLISHED:
            self.store.outbox.publish_or_leave(existing)
        log.info(
            "patient erased",
            extra={
                "patient_id": live["_id"],
                "erasure_id": data["erasure_id"],
                "records": len(ids),
            },
        )
        return jsonable(
            {
                "patient_id": live["_id"],
                "erasure_id": data["erasure_id"],
                "erased_at": existing["recorded_at"],
                "patient_ids": ids,
            }
        )

    def _record_erasure(self, live_id, ids, mrns, erasure_id, now):
        """The PatientErased event, in the events collection with its outbox. The published
        message names the MRNs too (the HL7 listener finds its raw messages by MRN); the stored
        copy drops them once published (enforce_retention)."""
        event_id = domain.canonical_event_id(HCRM_SOURCE, erasure_id)
        data = {"erasure_id": erasure_id, "patient_ids": sorted(ids)}
        message = outbound.build(
            ERASED_EVENT,
            {**data, "mrns": mrns},
            event_id=event_id,
            patient_id=live_id,
            now=now,
            source=HCRM_SOURCE,
            source_event_id=erasure_id,
        )
        doc = {
            "_id": event_id,
            "source": HCRM_SOURCE,
            "source_event_id": erasure_id,
            "event_type": ERASED_EVENT,
            "occurred_at": now,
            "recorded_at": now,
            "patient_id": live_id,
            "data": data,
            "erased": True,
            **Outbox.fields(EXCHANGE, ERASED_EVENT, message, now),
        }
        try:
            self.store.db.events.insert_one(doc)
            return doc
        except DuplicateKeyError:  # the same erasure asked twice at once
            return self.store.db.events.find_one({"_id": event_id})

    def _apply_erasure(self, ids, erasure_id, now):
        """Idempotent: the records lose their personal fields and identity keys, the events
        their personal data (also in their outbox copies)."""
        db = self.store.db
        for doc in db.patients.find({"_id": {"$in": list(ids)}}):
            if doc.get("erased_at") and not doc.get("mrn") and not doc.get("phone_digits"):
                continue
            db.patients.update_one(
                {"_id": doc["_id"]},
                {
                    "$set": {
                        "view": erased_view(doc.get("view"), now),
                        "erased_at": now,
                        "erasure_id": erasure_id,
                    },
                    "$unset": {"mrn": "", "prospect_key": "", "phone_digits": ""},
                },
            )
        for pid in ids:
            for event in db.events.find({"patient_id": pid}, _READ):
                if event["event_type"] != ERASED_EVENT:
                    self._rewrite(event, erased_data, {"erased": True})

    def _rewrite(self, event, reduce, marks, unset=(), attempts=3):
        """Apply `reduce` to the event's data and its outbox copy (with `marks` set and `unset`
        removed), in one write conditional on the outbox not having changed meanwhile. An
        event already so (an erasure applied again) is not written. Returns whether it was."""
        for _ in range(attempts):
            data = reduce(event["event_type"], event.get("data") or {})
            queue, changed = reduce_queue(event.get("outbox_queue"), reduce)
            if (
                data == event.get("data")
                and not changed
                and not unset
                and all(event.get(key) == value for key, value in marks.items())
            ):
                return False
            update = {
                "$set": {"data": data, **marks, **({"outbox_queue": queue} if changed else {})}
            }
            if unset:
                update["$unset"] = dict.fromkeys(unset, "")
            done = self.store.db.events.update_one(
                {"_id": event["_id"], "outbox_seq": event.get("outbox_seq")}, update
            )
            if done.matched_count:
                return True
            event = self.store.db.events.find_one({"_id": event["_id"]}, _READ)
            if event is None:
                return False
        return False

    # -- retention ----------------------------------------------------------------------------
    @configured_timer("retention_interval_s")
    def enforce_retention(self):
        now = utcnow()
        stripped = 0
        for inpatient, days in (
            (False, self.config["event_retention_days"]),
            (True, self.config["inpatient_event_retention_days"]),
        ):
            stripped += self._strip_old_events(now, days, inpatient)
        stripped += self._strip(
            list(
                self.store.db.events.find(
                    {"retention_recheck_ts": {"$lt": now.timestamp()}}, {"patient_id": 1}
                ).limit(PAGE)
            ),
            now,
        )
        for erasure in erasures.recent(self.store.db, now, self.config["erasure_sweep_days"]):
            self._apply_erasure(erasure["patient_ids"], erasure["_id"], now)
            self._forget_published_mrns(erasure["_id"])
        if stripped:
            log.info("old events stripped of personal data", extra={"count": stripped})
        return stripped

    def _strip_old_events(self, now, days, inpatient):
        """One page of the events recorded before the cutoff, in the order they were recorded."""
        page = retention.next_page(
            self.store.db,
            "events",
            "recorded_at",
            cutoff(now, days),
            "retention.events." + ("inpatient" if inpatient else "outpatient"),
            {"patient_id": 1, "event_type": 1, "recorded_at": 1},
        )
        if not page:
            return 0
        stripped = self._strip(
            [event for event in page if (event["event_type"] in INPATIENT_TYPES) == inpatient], now
        )
        retention.advance(
            self.store.db,
            "retention.events." + ("inpatient" if inpatient else "outpatient"),
            "recorded_at",
            page[-1],
        )
        return stripped

    def _strip(self, candidates, now):
        """Strip the given events (read again with every event of their person: which
        statements are the latest is a question about all of them)."""
        wanted = {}
        for event in candidates:
            wanted.setdefault(event.get("patient_id"), set()).add(event["_id"])
        count = 0
        for patient_id, ids in wanted.items():
            events = list(self.store.db.events.find({"patient_id": patient_id}, _READ))
            statements = latest_statements(
                [
                    {
                        "event_id": e["_id"],
                        "occurred_at": e.get("occurred_at"),
                        "data": e.get("data"),
                    }
                    for e in events
                ]
            )
            for event in events:
                if (
                    event["_id"] not in ids
                    or event.get("erased")
                    or event["event_type"] == ERASED_EVENT
                ):
                    continue
                keep = tuple(sorted(statements.get(event["_id"], ())))
                marks = {"retained_at": now}
                if keep:
                    marks["retention_recheck_ts"] = now.timestamp() + RECHECK_DAYS * 86400
                if event.get("outbox_state") != PUBLISHED:
                    event = dict(event, outbox_queue=None)  # never rewrite what is still to be sent
                unset = (
                    () if keep or "retention_recheck_ts" not in event else ("retention_recheck_ts",)
                )
                count += self._rewrite(
                    event,
                    lambda kind, data, keep=keep: retained_data(kind, data, keep),
                    marks,
                    unset,
                )
        return count

    def _forget_published_mrns(self, erasure_id):
        """The stored copy of a published PatientErased no longer names the MRNs."""
        event = self.store.db.events.find_one(
            {"_id": domain.canonical_event_id(HCRM_SOURCE, erasure_id)}, _READ
        )
        if event and event.get("outbox_state") == PUBLISHED:
            self._rewrite(
                event, lambda kind, data: {k: v for k, v in data.items() if k != "mrns"}, {}
            )
