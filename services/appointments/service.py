"""AppointmentsService: booking without double-booking, reminders the day before,
confirmations, check-in, attendance and no-shows (docs/RULES.md § Appointments); the mirror
of the hospital's scheduling system, visit corrections and patient merges (inbound.py)."""

import datetime
import functools
import logging
import uuid
import zoneinfo

from services.appointments import domain
from services.appointments.config import AppointmentsConfig
from services.appointments.inbound import InboundMixin
from services.appointments.metrics import (
    BOOKINGS,
    CANCELLATIONS,
    NO_SHOW_RATE,
    OUTCOMES,
    REMINDER_LAG,
    ended_counts,
)
from services.appointments.notifier import notifier_for
from services.appointments.privacy import AppointmentsPrivacyMixin
from services.appointments.store import AppointmentsStore
from shared import outbound
from shared.clock import utcnow
from shared.contact import contact_of
from shared.errors import BadRequest, Conflict, InvalidMessage
from shared.listing import set_filters
from shared.messaging import reliable_consumer, rpc
from shared.metrics import MetricsServer
from shared.paging import page
from shared.privacy import ERASED_EVENT
from shared.service import HealthMixin
from shared.timers import configured_timer
from shared.times import aware_time

log = logging.getLogger(__name__)

PUBLIC = (
    "patient_id",
    "department",
    "doctor_id",
    "starts_at",
    "duration_minutes",
    "channel",
    "status",
    "language",
    "reminder_state",
    "reminded_at",
    "checked_in_at",
    "cancelled_at",
    "booked_by",
    "local_date",
    "source",
    "external_id",
    "attended_visit_id",
)


class AppointmentsService(AppointmentsPrivacyMixin, InboundMixin, HealthMixin):
    name = "appointments"
    config_schema = AppointmentsConfig

    store = AppointmentsStore()
    metrics = MetricsServer()

    # -- booking --------------------------------------------------------------------------
    @rpc
    def book(
        self,
        patient_id,
        department,
        starts_at,
        channel,
        doctor_id=None,
        duration_minutes=None,
        language=None,
        booked_by=None,
    ):
        now = utcnow()
        starts = aware_time(starts_at, "starts_at")
        minutes = int(duration_minutes or self.config["default_duration_minutes"])
        self._check(starts, minutes, now, department, doctor_id)
        patient_id = self._current_patient(patient_id)  # a merged-away id books for its survivor
        appointment_id = str(uuid.uuid4())
        if doctor_id:
            self.store.claim_slots(doctor_id, domain.slot_units(starts, minutes), appointment_id)
        doc = {
            "_id": appointment_id,
            "patient_id": patient_id,
            "department": department,
            "doctor_id": doctor_id,
            "channel": channel,
            "status": domain.BOOKED,
            "booked_by": booked_by,
            "language": language or self.config["default_language"],
            "created_at": now.isoformat(),
            **self._timing(starts, minutes),
        }
        try:
            saved = self.store.insert(doc, self._message("AppointmentBooked", doc, now), now)
        except Exception:
            self.store.release_slots(appointment_id)
            raise
        BOOKINGS.labels(department).inc()
        self.store.outbox.publish_or_leave(saved)
        return self._public(saved)

    @rpc
    def reschedule(self, appointment_id, starts_at, duration_minutes=None, actor=None):
        now = utcnow()
        current = self.store.get(appointment_id)
        self._transition_check("reschedule", current)
        starts = aware_time(starts_at, "starts_at")
        minutes = int(duration_minutes or current["duration_minutes"])
        self._check(starts, minutes, now, current["department"], current["doctor_id"])
        units = domain.slot_units(starts, minutes)
        if current["doctor_id"]:
            self.store.claim_slots(current["doctor_id"], units, appointment_id)
        # A new reminder key per reschedule: reminded again for the new time, whatever the history.
        fields = {
            **self._timing(starts, minutes, f"reschedule:{uuid.uuid4().hex}"),
            "rescheduled_by": actor,
        }
        done = self.store.change(
            current,
            fields,
            [
                self._message(
                    "AppointmentBooked",
                    {**current, **fields},
                    now,
                    {"rescheduled": True},
                    discriminator=starts.isoformat(),
                )
            ],
            now,
        )
        if done is None:
            raise Conflict("the appointment changed meanwhile; reload it")
        if current["doctor_id"]:
            self.store.release_slots(
                appointment_id, keep=[f"{current['doctor_id']}|{u}" for u in units]
            )
        self.store.outbox.publish_or_leave(done)
        return self._public(done)

    @rpc
    def confirm(self, appointment_id, actor=None):
        return self._move(appointment_id, "confirm", "AppointmentConfirmed", actor, "confirmed_at")

    @rpc
    def cancel(self, appointment_id, actor=None, reason=None):
        done = self._move(
            appointment_id,
            "cancel",
            "AppointmentCancelled",
            actor,
            "cancelled_at",
            {"reason": reason},
        )
        self.store.release_slots(appointment_id)
        CANCELLATIONS.labels(done["department"]).inc()
        return done

    @rpc
    def check_in(self, appointment_id, actor=None):
        done = self._move(
            appointment_id, "check_in", "AppointmentCheckedIn", actor, "checked_in_at"
        )
        OUTCOMES.labels(domain.CHECKED_IN).inc()
        return done

    def _move(self, appointment_id, action, event_type, actor, stamp, extra=None):
        now = utcnow()
        current = self.store.get(appointment_id)
        target = self._transition_check(action, current)
        fields = {"status": target, stamp: now.isoformat(), f"{action}_by": actor}
        done = self.store.change(
            current,
            fields,
            [
                self._message(
                    event_type,
                    {**current, **fields},
                    now,
                    {"actor": actor, **(extra or {})},
                    discriminator=action,
                )
            ],
            now,
        )
        if done is None:
            raise Conflict("the appointment changed meanwhile; reload it")
        self.store.outbox.publish_or_leave(done)
        return self._public(done)

    # -- intake's events (inbound.py) -------------------------------------------------------
    @reliable_consumer("appointments.inbound")
    def handle_intake_event(self, message):
        event = message.body
        if (
            not isinstance(event, dict)
            or not event.get("event_id")
            or not event.get("occurred_at")
            or not event.get("event_type")
        ):
            raise InvalidMessage(
                {"_schema": ["A canonical event with event_id, event_type and occurred_at."]}
            )
        if event["event_type"] == ERASED_EVENT:
            return self.erase_patient(event)  # the person's data goes (privacy.py)
        self.apply_intake_event(event)

    # -- timers ---------------------------------------------------------------------------
    @configured_timer("timer_interval_s")
    def run_timers(self):
        self.send_reminders(utcnow())
        self.declare_no_shows(utcnow())

    @configured_timer("outbox_relay_interval_s")
    def relay_outbox(self):
        self.store.relay()

    def send_reminders(self, now):
        """Claim each due reminder atomically (its state is in the filter) before sending: two
        replicas or a restart never send one twice."""
        sent = 0
        for appointment in self.store.due_reminders(now.timestamp()):
            if (
                appointment["status"] not in domain.ACTIVE
                or appointment["starts_ts"] <= now.timestamp()
            ):
                self.store.change(
                    appointment,
                    {"reminder_state": "skipped"},
                    [],
                    now,
                    {"reminder_state": "pending"},
                )
                continue
            contact = contact_of(self.store.events_of(appointment["patient_id"]))
            state = "sent" if contact.callable else f"skipped_{contact.why_not}"
            fields = {"reminder_state": state, "reminded_at": now.isoformat()}
            # The claim names the reminder as read: one moved meanwhile (rescheduled) is
            # reminded for its new time, never with the old one's text.
            key = appointment.get("reminder_key") or "reminder"
            claim = {
                "reminder_state": "pending",
                "reminder_due_ts": appointment["reminder_due_ts"],
                **({"reminder_key": key} if "reminder_key" in appointment else {}),
            }
            done = self.store.change(
                appointment,
                fields,
                [
                    self._message(
                        "AppointmentReminderDue",
                        {**appointment, **fields},
                        now,
                        {"delivery": state},
                        discriminator=key,
                    )
                ],
                now,
                claim,
            )
            if done is None:
                continue  # another replica claimed it
            if contact.callable:  # consent is respected: no consent, no message
                self._notify(done, contact)
                sent += 1
                REMINDER_LAG.observe(max(0.0, now.timestamp() - appointment["reminder_due_ts"]))
            self.store.outbox.publish_or_leave(done)
        return sent

    def declare_no_shows(self, now):
        declared = 0
        for appointment in self.store.due_no_shows(now.timestamp()):
            fields = {"status": domain.NO_SHOW, "no_show_at": now.isoformat()}
            done = self.store.change(
                appointment,
                fields,
                [
                    self._message(
                        "AppointmentNoShow", {**appointment, **fields}, now, discriminator="no_show"
                    )
                ],
                now,
            )
            if done:
                declared += 1
                OUTCOMES.labels(domain.NO_SHOW).inc()
                self.store.outbox.publish_or_leave(done)
        self._rate()
        return declared

    def _rate(self):
        counts = ended_counts()
        total = sum(counts.values())
        NO_SHOW_RATE.set(counts[domain.NO_SHOW] / total if total else 0)

    def _notify(self, appointment, contact):
        local = datetime.datetime.fromisoformat(appointment["starts_at"]).astimezone(self._tz)
        kind, language = self.config["reminder_kind"], appointment.get("language") or "zh"
        text = domain.render(
            self.config["templates"],
            kind,
            language,
            name=contact.name or "",
            time=local.strftime("%m-%d %H:%M"),
            department=appointment["department"],
        )
        key = appointment.get("reminder_key") or "reminder"
        notification = {
            "_id": f"reminder:{appointment['_id']}" + ("" if key == "reminder" else f":{key}"),
            "appointment_id": appointment["_id"],
            "patient_id": appointment["patient_id"],
            "kind": kind,
            "language": language,
            "phone": contact.phone,
            "text": text,
            "created_at": utcnow().isoformat(),
        }
        try:
            notifier_for(self.config, self.store.db).send(notification)
        except Exception as exc:
            log.error(
                "reminder could not be delivered",
                extra={"appointment_id": appointment["_id"], "reason": f"{exc.__class__.__name__}"},
            )

    # -- reading --------------------------------------------------------------------------
    @rpc
    def list_appointments(
        self,
        date=None,
        department=None,
        doctor_id=None,
        status=None,
        patient_id=None,
        limit=50,
        offset=0,
    ):
        query = set_filters(
            {
                "local_date": date,
                "department": department,
                "doctor_id": doctor_id,
                "status": status,
                "patient_id": self._current_patient(patient_id),
            }
        )
        items, total = self.store.find(query, *page(limit, offset))
        return {"items": [self._public(a) for a in items], "total": total}

    @rpc
    def get_appointment(self, appointment_id):
        return self._public(self.store.get(appointment_id))

    # -- helpers --------------------------------------------------------------------------
    @functools.cached_property
    def _tz(self):
        return zoneinfo.ZoneInfo(self.config["timezone"])

    def _check(self, starts, minutes, now, department, doctor_id):
        try:
            domain.check_booking(
                starts, minutes, now, self._tz, self.config["working_hours"], department, doctor_id
            )
        except domain.Refused as exc:
            raise BadRequest(str(exc), {exc.field: [str(exc)]}) from None

    @staticmethod
    def _transition_check(action, current):
        try:
            domain.staff_may(action, current)
            return domain.next_status(action, current["status"])
        except domain.IllegalTransition as exc:
            raise Conflict(str(exc)) from None

    def _timing(self, starts, minutes, reminder_key="reminder"):
        """The time fields; a new time resets the reminder under a new key (its event id and
        notification id), so a rescheduled appointment is reminded again, once."""
        return {
            "starts_at": starts.isoformat(),
            "starts_ts": starts.timestamp(),
            "duration_minutes": minutes,
            "local_date": starts.astimezone(self._tz).date().isoformat(),
            "reminder_state": "pending",
            "reminder_key": reminder_key,
            "reminder_due_ts": domain.reminder_due(
                starts, self.config["reminder_hours_before"]
            ).timestamp(),
            "no_show_due_ts": domain.no_show_due(
                starts, self.config["no_show_grace_minutes"]
            ).timestamp(),
        }

    def _message(self, event_type, appointment, now, extra=None, discriminator=""):
        return outbound.build(
            event_type,
            {
                "appointment_id": appointment["_id"],
                "department": appointment["department"],
                "doctor_id": appointment.get("doctor_id"),
                "starts_at": appointment["starts_at"],
                "duration_minutes": appointment["duration_minutes"],
                "status": appointment["status"],
                "channel": appointment.get("channel"),
                **(extra or {}),
            },
            event_id=domain.event_id(appointment["_id"], event_type, discriminator or event_type),
            patient_id=appointment["patient_id"],
            now=now,
        )

    def _public(self, appointment):
        return {"appointment_id": appointment["_id"], **{f: appointment.get(f) for f in PUBLIC}}
