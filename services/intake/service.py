"""IntakeService: hospital events in, patients kept, canonical events out.

A table of contents: each entrypoint translates and delegates to domain rules and the store.
"""

import datetime
import logging

from services.intake import domain
from services.intake.config import IntakeConfig
from services.intake.privacy import IntakePrivacyMixin
from services.intake.store import PUBLIC_FIELDS, IntakeStore
from shared.clock import utcnow
from shared.errors import ConflictingDuplicate, InvalidMessage, NotFound
from shared.events import dump_event, load_event
from shared.messaging import reliable_consumer, rpc
from shared.metrics import EVENTS_DUPLICATE, MetricsServer
from shared.paging import MAX_PAGE, page
from shared.phones import phone_digits
from shared.service import HealthMixin
from shared.timers import configured_timer

log = logging.getLogger(__name__)


class IntakeService(IntakePrivacyMixin, HealthMixin):
    name = "intake"
    config_schema = IntakeConfig

    store = IntakeStore()
    metrics = MetricsServer()

    @reliable_consumer("intake.inbound")
    def handle_hospital_event(self, message):
        inbound_raw = message.body
        loaded = load_event(inbound_raw)  # EventInvalid -> hospital.events.rejected
        if message.routing_key != loaded["event_type"]:
            raise InvalidMessage(
                {
                    "event_type": [
                        f"Must equal the routing key {message.routing_key!r} (docs/EVENTS.md)."
                    ]
                }
            )
        inbound = dump_event(loaded)
        now = utcnow()
        event_id = domain.canonical_event_id(inbound["source"], inbound["event_id"])
        mrn, digits = domain.identity(loaded["data"]["patient"])
        patient_id, created = self.store.resolve_patient(mrn, digits, now)
        recorded_data = inbound["data"]
        if inbound["event_type"] == "PatientsMerged":
            # The retired record's id goes out with the event: the other services re-point
            # what they hold under it (docs/EVENTS.md, v1.1).
            retired_id = self.store.merge(patient_id, inbound["data"]["merged_mrn"], now)
            inbound = dict(inbound, data=dict(recorded_data, merged_patient_id=retired_id))
        doc, is_new = self.store.record_event(event_id, inbound, loaded, patient_id, now)
        # Always project: after a crash between the insert and here, the redelivered
        # duplicate is what completes the record.
        live = self.store.project_patient(doc["patient_id"], [doc] if created and is_new else None)
        if not live:  # the record was merged meanwhile: the event belongs to the survivor
            survivor = self.store.repoint_if_merged(doc["patient_id"])
            if survivor != doc["patient_id"]:
                self.store.project_patient(survivor)
        if created:
            for merged_into in self.store.reconcile_phone(digits):
                self.store.project_patient(merged_into)
        if is_new:
            self.store.outbox.publish_or_leave(doc)
        else:  # already recorded: its writer, or else the outbox relay, publishes it
            EVENTS_DUPLICATE.labels(self.name, inbound["event_type"]).inc()
        log.info(
            "event recorded",
            extra={
                "event_id": event_id,
                "event_type": inbound["event_type"],
                "patient_id": doc["patient_id"],
                "new": is_new,
            },
        )
        if not is_new and domain.conflicts_with(doc, dict(inbound, data=recorded_data)):
            # Raised last, when the record is complete: the copy goes to the rejected queue.
            raise ConflictingDuplicate(_json(doc["recorded_at"]))

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
