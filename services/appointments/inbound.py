"""What the appointments service does with intake's events (queue appointments.inbound):
attendance from visits and its correction (VisitCancelled), the mirror of the hospital's
scheduling system (AppointmentScheduled / Withdrawn / Missed) and merged patients
(PatientsMerged). Rules are in domain.py; this mixin applies them to the store.

Delivery is at least once, in any order, possibly by two replicas at once. Every write is
conditional on what was read (status, mirror order, reminder state), and where two events
race on different documents (a Scheduled and its Withdrawn, a visit and its cancel, an event
and a merge) each side writes its own fact first and then looks for the other's, so at
least one of them sees both and applies the outcome.
"""

import logging
from typing import ClassVar

from pymongo.errors import DuplicateKeyError

from services.appointments import domain
from services.appointments.metrics import BOOKINGS, CANCELLATIONS, OUTCOMES
from shared.clock import utcnow

log = logging.getLogger(__name__)

# Conditional writes that lose a race re-read and re-decide; past this many, the message is
# retried later by the reliable consumer.
ATTEMPTS = 5


class Contended(Exception):
    """Another writer kept changing the appointment: retry the message later."""


class InboundMixin:
    """Handlers of intake's events, mixed into AppointmentsService (its store, config and
    message/timing helpers)."""

    HANDLERS: ClassVar[dict[str, str]] = {
        "PatientVisited": "_on_visit",
        "VisitCancelled": "_on_visit_cancelled",
        "AppointmentScheduled": "_on_scheduled",
        "AppointmentWithdrawn": "_on_withdrawn",
        "AppointmentMissed": "_on_missed",
        "PatientsMerged": "_on_merged",
    }

    def apply_intake_event(self, event):
        now = utcnow()
        patient_id = self._current_patient(event.get("patient_id"))
        event = {**event, "patient_id": patient_id}  # a retired id means its survivor
        self.store.record_event(event)  # every event may restate phone or consent
        name = self.HANDLERS.get(event["event_type"])
        if name is None:
            return
        handler = getattr(self, name)
        handler(event, now)
        if patient_id and event["event_type"] != "PatientsMerged":
            # A merge landed while this ran: what was written under the old id follows it.
            latest = self._current_patient(patient_id)
            if latest != patient_id:
                self.store.repoint(patient_id, latest)
                handler({**event, "patient_id": latest}, now)

    def _current_patient(self, patient_id):
        return domain.resolve_alias(patient_id, self.store.alias_of) if patient_id else patient_id

    # -- attendance -----------------------------------------------------------------------
    def _on_visit(self, event, now):
        data = event["data"]
        if not event.get("patient_id") or self.store.visit_is_void(data.get("visit_id")):
            return  # a cancelled visit never takes effect, whenever it comes
        day = domain.local_day(data["visited_at"], self._tz)
        attended = [
            a
            for a in self.store.same_day(event["patient_id"], data.get("department"), day)
            if self._attend(a, data, now)
        ]
        if attended and self.store.visit_is_void(data.get("visit_id")):
            self._undo_attendance(data["visit_id"], now)  # its cancel came meanwhile

    def _attend(self, appointment, visit, now):
        if appointment["status"] not in domain.TRANSITIONS["attend"][0]:
            return False
        visit_id = visit.get("visit_id")
        fields = {
            "status": domain.ATTENDED,
            "attended_at": visit["visited_at"],
            "attended_visit_id": visit_id,
            "status_before_attended": appointment["status"],
        }
        done = self.store.change(
            appointment,
            fields,
            [
                self._message(
                    "AppointmentAttended",
                    {**appointment, **fields},
                    now,
                    {"visit_id": visit_id},
                    discriminator=f"attend:{visit_id or ''}",
                )
            ],
            now,
        )
        if done is None:
            return False
        OUTCOMES.labels(domain.ATTENDED).inc()
        self.store.outbox.publish_or_leave(done)
        return True

    def _on_visit_cancelled(self, event, now):
        visit_id = event["data"]["visit_id"]
        self.store.void_visit(visit_id, event["event_id"])
        self._undo_attendance(visit_id, now)

    def _undo_attendance(self, visit_id, now):
        """The appointments this visit marked attended go back to their previous status
        (nothing is published: no outbound type says "not attended"; a booked one whose time
        has passed is then declared a no-show by the timer, as any other)."""
        for appointment in self.store.attended_by(visit_id):
            fields = {
                "status": domain.status_before_attendance(appointment),
                "attended_at": None,
                "attended_visit_id": None,
                "attendance_voided_by": visit_id,
            }
            done = self.store.change(appointment, fields, [], now, {"attended_visit_id": visit_id})
            if done is not None:
                log.info(
                    "attendance undone: its visit was cancelled",
                    extra={"appointment_id": appointment["_id"], "status": fields["status"]},
                )
                self._attend_from_recorded_visits(done, now)  # another visit that day counts

    def _attend_from_recorded_visits(self, appointment, now):
        """Apply a visit received before this appointment existed or changed (any order)."""
        for event in self.store.events_of(appointment["patient_id"]):
            data = event.get("data") or {}
            if (
                event["event_type"] == "PatientVisited"
                and data.get("department") == appointment["department"]
                and domain.local_day(data["visited_at"], self._tz) == appointment["local_date"]
                and not self.store.visit_is_void(data.get("visit_id"))
                and self._attend(appointment, data, now)
            ):
                return

    # -- the mirror of the hospital's scheduling system -------------------------------------
    def _on_scheduled(self, event, now):
        data = event["data"]
        appointment_id = domain.mirror_appointment_id(event.get("source"), data["appointment_id"])
        order = domain.order_of(event)
        values = domain.scheduled_values(data, self.config["default_duration_minutes"])
        for _ in range(ATTEMPTS):
            current = self.store.find_one(appointment_id)
            withdrawn = self.store.marks_of(appointment_id).get("withdrawn")
            action, changed = domain.plan_scheduled(current, withdrawn, order, values)
            if action == "create":
                done = self._create_mirrored(appointment_id, event, order, values, now)
            elif action in ("update", "same"):
                done = self._update_mirrored(current, changed, event, order, values, now)
            else:  # withdrawn, stale or closed: nothing to write
                log.info(
                    "appointment scheduling not applied",
                    extra={"appointment_id": appointment_id, "why": action},
                )
                if action == "withdrawn" and current is not None:
                    self._apply_marks(appointment_id, now)
                return
            if done is not None:
                break
        else:
            raise Contended(f"appointment {appointment_id} kept changing")
        if action == "create" or changed:
            self._attend_from_recorded_visits(done, now)
        self._apply_marks(appointment_id, now)  # a Withdrawn / Missed may have come meanwhile

    def _create_mirrored(self, appointment_id, event, order, values, now):
        """The first AppointmentScheduled: booked as sent, without working-hours or slot
        checks and without claiming slot units (domain.py says why). None if it exists."""
        source = event.get("source")
        doc = {
            "_id": appointment_id,
            "patient_id": event.get("patient_id"),
            "department": values["department"],
            "doctor_id": values["doctor_id"],
            "channel": domain.MIRROR_CHANNEL,
            "status": domain.BOOKED,
            "booked_by": source,
            "language": self.config["default_language"],
            "created_at": now.isoformat(),
            "source": source,
            "external_id": event["data"]["appointment_id"],
            "mirror_ts": order[0],
            "mirror_event_id": order[1],
            **self._timing(values["starts_at"], values["duration_minutes"]),
        }
        try:
            saved = self.store.insert(doc, self._message("AppointmentBooked", doc, now), now)
        except DuplicateKeyError:
            return None  # created meanwhile: decide again
        BOOKINGS.labels(values["department"]).inc()
        self.store.outbox.publish_or_leave(saved)
        return saved

    def _update_mirrored(self, current, changed, event, order, values, now):
        """A newer AppointmentScheduled: record its order; if it states other values, update
        the appointment, reset its reminder (reminded again for the new time) and publish
        what reschedule publishes. None if another writer changed it first."""
        fields = {"mirror_ts": order[0], "mirror_event_id": order[1]}
        messages = []
        if changed:
            key = f"mirror:{event['event_id']}"  # one reschedule (and its reminder) per event
            fields.update(
                {
                    "department": values["department"],
                    "doctor_id": values["doctor_id"],
                    "rescheduled_by": event.get("source"),
                    **self._timing(values["starts_at"], values["duration_minutes"], key),
                }
            )
            messages.append(
                self._message(
                    "AppointmentBooked",
                    {**current, **fields},
                    now,
                    {"rescheduled": True},
                    discriminator=key,
                )
            )
        done = self.store.change(
            current,
            fields,
            messages,
            now,
            {"mirror_ts": current["mirror_ts"], "mirror_event_id": current["mirror_event_id"]},
        )
        if done is not None and messages:
            self.store.outbox.publish_or_leave(done)
        return done

    def _on_withdrawn(self, event, now):
        data = event["data"]
        appointment_id = domain.mirror_appointment_id(event.get("source"), data["appointment_id"])
        self.store.mark(
            appointment_id,
            "withdrawn",
            {
                "event_id": event["event_id"],
                "occurred_at": event["occurred_at"],
                "reason": data.get("reason"),
            },
        )
        self._apply_marks(appointment_id, now)

    def _on_missed(self, event, now):
        appointment_id = domain.mirror_appointment_id(
            event.get("source"), event["data"]["appointment_id"]
        )
        self.store.mark(
            appointment_id,
            "missed",
            {"event_id": event["event_id"], "occurred_at": event["occurred_at"]},
        )
        self._apply_marks(appointment_id, now)

    def _apply_marks(self, appointment_id, now):
        """Withdrawn -> cancelled (AppointmentCancelled; the reminder timer skips it), missed ->
        the service's own no-show (AppointmentNoShow, same event id as the timer's: once)."""
        for _ in range(ATTEMPTS):
            current = self.store.find_one(appointment_id)
            if current is None:
                return  # kept as a mark until (if ever) it is scheduled
            marks = self.store.marks_of(appointment_id)
            action = domain.mark_action(current["status"], marks)
            if action is None:
                return
            if action == "cancel":
                details = marks.get("withdrawn_details") or {}
                fields = {
                    "status": domain.CANCELLED,
                    "cancelled_at": now.isoformat(),
                    "cancel_by": current.get("source"),
                }
                message = self._message(
                    "AppointmentCancelled",
                    {**current, **fields},
                    now,
                    {"actor": current.get("source"), "reason": details.get("reason")},
                    discriminator="cancel",
                )
            else:
                fields = {
                    "status": domain.NO_SHOW,
                    "no_show_at": now.isoformat(),
                    "no_show_by": current.get("source"),
                }
                message = self._message(
                    "AppointmentNoShow", {**current, **fields}, now, discriminator="no_show"
                )
            done = self.store.change(current, fields, [message], now)
            if done is not None:
                if action == "cancel":
                    CANCELLATIONS.labels(done["department"]).inc()
                else:
                    OUTCOMES.labels(domain.NO_SHOW).inc()
                self.store.outbox.publish_or_leave(done)
                return
        raise Contended(f"appointment {appointment_id} kept changing")

    # -- merged patients ------------------------------------------------------------------
    def _on_merged(self, event, now):
        """PatientsMerged(patient_id = survivor, data.merged_patient_id = retired): record the
        alias (idempotent), and what the retired id holds is the survivor's from now on."""
        survivor, retired = (
            event.get("patient_id"),
            (event.get("data") or {}).get("merged_patient_id"),
        )
        if not domain.merge_is_usable(retired, survivor, self.store.alias_of):
            log.warning("merge not applied", extra={"retired": retired, "survivor": survivor})
            return
        self.store.add_alias(retired, survivor)
        target = self._current_patient(retired)
        moved = self.store.repoint(retired, target)
        log.info(
            "patients merged", extra={"retired": retired, "survivor": target, "appointments": moved}
        )
