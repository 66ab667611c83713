"""IntakeService: hospital events in, patients kept, canonical events out.

A table of contents: each entrypoint translates and delegates to domain rules and the store.
"""

import dataclasses
import datetime
import logging
from typing import Any

from services.intake import domain
from services.intake.config import IntakeConfig
from services.intake.privacy import IntakePrivacyMixin
from services.intake.store import PUBLIC_FIELDS, IntakeStore
from shared.clock import utcnow
from shared.errors import ConflictingDuplicate, InvalidMessage, NotFound
from shared.events import dump_event, load_event
from shared.messaging import InboundMessage, reliable_batch_consumer, rpc
from shared.metrics import EVENTS_DUPLICATE, MetricsServer
from shared.paging import MAX_PAGE, page
from shared.phones import phone_digits
from shared.service import HealthMixin
from shared.timers import configured_timer

log = logging.getLogger(__name__)

# The most events one batch records: what arrived together, without waiting for more (staff
# wait on these records), so a quiet hour still sees each event at once.
BATCH_MAX = 100


@dataclasses.dataclass(frozen=True)
class Arrival:
    """One hospital event, validated: what recording it takes."""

    inbound: dict[str, Any]  # its canonical JSON form (what is stored and compared)
    loaded: dict[str, Any]  # the same with typed fields
    event_id: str  # intake's canonical id: the same (source, event_id) gives the same id
    mrn: str | None
    digits: str | None  # the phone's digits: a prospect's key

    @property
    def event_type(self) -> str:
        return self.inbound["event_type"]


def _arrival(message: InboundMessage) -> Arrival:
    loaded = load_event(message.body)  # EventInvalid -> hospital.events.rejected
    if message.routing_key != loaded["event_type"]:
        raise InvalidMessage(
            {
                "event_type": [
                    f"Must equal the routing key {message.routing_key!r} (docs/EVENTS.md)."
                ]
            }
        )
    inbound = dump_event(loaded)
    mrn, digits = domain.identity(loaded["data"]["patient"])
    return Arrival(
        inbound,
        loaded,
        domain.canonical_event_id(inbound["source"], inbound["event_id"]),
        mrn,
        digits,
    )


class IntakeService(IntakePrivacyMixin, HealthMixin):
    name = "intake"
    config_schema = IntakeConfig

    store = IntakeStore()
    metrics = MetricsServer()

    @reliable_batch_consumer("intake.inbound", max_batch=BATCH_MAX, check=_arrival)
    def handle_hospital_events(self, messages):
        """The hospital events that arrived together, recorded in bulk: one read of their
        patients, one insert of the events and one projection per patient for the whole
        batch, instead of four round trips per event.

        Every message is validated as it arrives (`check`), so a bad one is rejected alone
        and never joins a batch; called directly, the handler validates every message before
        anything is written (shared/messaging.BatchReliableConsumer). Every write is
        idempotent, so a batch that crashed half-way is completed by its redelivery.
        """
        arrivals = [message.checked or _arrival(message) for message in messages]
        now = utcnow()
        # A merge or a prospect (no MRN) changes who is who: recorded one at a time, in its
        # place among the others, as the consumer of one message did.
        recorded, run = [], []
        for arrival in arrivals:
            if arrival.mrn and arrival.event_type != "PatientsMerged":
                run.append(arrival)
                continue
            recorded += self._record_together(run, now)
            run = []
            recorded.append((arrival, *self._record_alone(arrival, now)))
        recorded += self._record_together(run, now)
        for arrival, doc, is_new in recorded:
            self._hand_on(arrival, doc, is_new)
        conflicts = [
            doc
            for arrival, doc, is_new in recorded
            if not is_new and domain.conflicts_with(doc, arrival.inbound)
        ]
        if conflicts:
            # Raised last, when the records are complete: the copy goes to the rejected
            # queue (a batch is re-handled one message at a time first, so only the copy).
            raise ConflictingDuplicate(_json(conflicts[0]["recorded_at"]))

    def _record_alone(self, arrival, now):
        """(doc, is_new) of one event, with its patient resolved, linked or merged first."""
        inbound = arrival.inbound
        patient_id, created = self.store.resolve_patient(arrival.mrn, arrival.digits, now)
        if arrival.event_type == "PatientsMerged":
            # The retired record's id goes out with the event: the other services re-point
            # what they hold under it (docs/EVENTS.md, v1.1).
            retired_id = self.store.merge(patient_id, inbound["data"]["merged_mrn"], now)
            inbound = dict(inbound, data=dict(inbound["data"], merged_patient_id=retired_id))
        doc, is_new = self.store.record_event(
            arrival.event_id, inbound, arrival.loaded, patient_id, now
        )
        # Always project: after a crash between the insert and here, the redelivered
        # duplicate is what completes the record.
        live = self.store.project_patient(doc["patient_id"], [doc] if created and is_new else None)
        if not live:  # the record was merged meanwhile: the event belongs to the survivor
            survivor = self.store.repoint_if_merged(doc["patient_id"])
            if survivor != doc["patient_id"]:
                self.store.project_patient(survivor)
        if created:
            for merged_into in self.store.reconcile_phones({arrival.digits} - {None}):
                self.store.project_patient(merged_into)
        return doc, is_new

    def _record_together(self, arrivals, now):
        """[(arrival, doc, is_new)] of events whose patient has an MRN, in bulk."""
        if not arrivals:
            return []
        known = self.store.patients_by_mrn({a.mrn for a in arrivals})
        # A retired MRN leads to the record it became.
        patient_of = {mrn: self.store.survivor_of(found) for mrn, found in known.items()}
        first_of_new: dict[str, Arrival] = {}
        for arrival in arrivals:
            if arrival.mrn not in known:
                first_of_new.setdefault(arrival.mrn, arrival)
        created = self.store.create_patients(
            [(a.mrn, a.digits) for a in first_of_new.values()], now
        )
        patient_of.update(created)
        phones = {a.digits for a in first_of_new.values() if a.mrn in created and a.digits}
        for arrival in first_of_new.values():
            if arrival.mrn not in created:  # a prospect to link, or created meanwhile
                patient_of[arrival.mrn], is_created = self.store.resolve_patient(
                    arrival.mrn, arrival.digits, now
                )
                if is_created and arrival.digits:
                    phones.add(arrival.digits)
        recorded = self.store.record_events(
            [(a.event_id, a.inbound, a.loaded, patient_of[a.mrn]) for a in arrivals], now
        )
        # Always project, duplicates' patients too (see _record_alone). A record created here
        # with new events only is projected from them, without reading them back.
        by_patient: dict[str, list[tuple[dict, bool]]] = {}
        for doc, is_new in recorded:
            by_patient.setdefault(doc["patient_id"], []).append((doc, is_new))
        self.store.project_patients(
            set(by_patient),
            known={
                patient_id: [doc for doc, _ in by_patient[patient_id]]
                for patient_id in created.values()
                if patient_id in by_patient and all(new for _, new in by_patient[patient_id])
            },
        )
        for merged_into in self.store.reconcile_phones(phones):
            self.store.project_patient(merged_into)
        return [(a, doc, is_new) for a, (doc, is_new) in zip(arrivals, recorded, strict=True)]

    def _hand_on(self, arrival, doc, is_new):
        """A new event to the outbox's sender; a duplicate counted (and published by whoever
        recorded it)."""
        if is_new:
            self.store.outbox.publish_new(doc)
        else:  # its writer, or else the outbox relay, publishes it
            EVENTS_DUPLICATE.labels(self.name, arrival.event_type).inc()
        log.info(
            "event recorded",
            extra={
                "event_id": arrival.event_id,
                "event_type": arrival.event_type,
                "patient_id": doc["patient_id"],
                "new": is_new,
            },
        )

    @configured_timer("outbox_relay_interval_s")
    def relay_outbox(self):
        self.store.relay_outbox()

    @rpc
    def conflicting_duplicate(self, event):
        """The first event's recorded_at when `event` (canonical, validated) repeats a recorded
        (source, event_id) with other content; None for a new event or an exact duplicate."""
        recorded = self.store.recorded(event["source"], event["event_id"])
        if recorded and domain.conflicts_with(recorded, event):
            return _json(recorded["recorded_at"])
        return None

    @rpc
    def get_patient(self, patient_id):
        patient = self.store.get_patient(patient_id)
        if patient is None:
            raise NotFound(f"no patient {patient_id}")
        return self._public(patient)

    @rpc
    def find_patients(self, mrn=None, phone=None, q=None, limit=50, offset=0):
        limit, offset = page(limit, offset)
        items, total = self.store.find_patients(
            mrn=mrn, phone_digits=phone_digits(phone) or None, text=q, limit=limit, offset=offset
        )
        return {"items": [self._public(p) for p in items], "total": total}

    @rpc
    def timeline(self, patient_id, limit=MAX_PAGE, offset=0):
        patient = self.store.get_patient(patient_id)
        if patient is None:
            raise NotFound(f"no patient {patient_id}")
        items, total = self.store.timeline(patient["_id"], *page(limit, offset))
        return {"items": [_timeline_entry(e) for e in items], "total": total}

    def _public(self, patient):
        now = datetime.datetime.now(datetime.UTC)
        view = patient.get("view", {})
        record = dict(
            view,
            patient_id=patient["_id"],
            mrn=patient.get("mrn"),
            stage=domain.stage(view.get("facts", {}), now, self.config["recovering_days"]),
        )
        return {field: _json(record.get(field)) for field in PUBLIC_FIELDS}


def _json(value):
    return value.isoformat() if isinstance(value, datetime.datetime) else value


def _timeline_entry(event):
    return {
        "event_id": event["_id"],
        "event_type": event["event_type"],
        "occurred_at": _json(event["occurred_at"]),
        "recorded_at": _json(event["recorded_at"]),
        "source": event["source"],
        "source_event_id": event["source_event_id"],
        "data": event["data"],
    }
