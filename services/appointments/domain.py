"""Appointment rules (docs/RULES.md § Appointments, docs/EVENTS.md v1.1) as pure functions;
"now" is a parameter everywhere.

A doctor has one appointment per slot: the time is cut into SLOT_MINUTES units and each
booking claims the units it covers (a unique key per doctor and unit in the store), in
ascending order, so of two overlapping bookings exactly one wins, whatever the concurrency.

Mirrored appointments (channel "his": AppointmentScheduled / Withdrawn / Missed from the
hospital's scheduling system) are that system's: they skip working hours and double-booking
and claim NO slot units, so they never make a staff booking fail with a 409 about an
appointment staff cannot move. Staff cannot reschedule or cancel them here either (the
change is made in the hospital's system and comes back as an event).
"""

import datetime
import string
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from shared import aliases

NAMESPACE = uuid.UUID("8d2c4e6f-1a3b-4c5d-9e7f-0a1b2c3d4e5f")
SLOT_MINUTES = 5
# An appointment's statuses.
BOOKED, CONFIRMED, CHECKED_IN, ATTENDED = "booked", "confirmed", "checked_in", "attended"
CANCELLED, NO_SHOW = "cancelled", "no_show"
STATUSES = (BOOKED, CONFIRMED, CHECKED_IN, ATTENDED, CANCELLED, NO_SHOW)
ACTIVE = (BOOKED, CONFIRMED)
# action -> statuses it may start from -> status it leads to
TRANSITIONS = {
    "confirm": ({BOOKED}, CONFIRMED),
    "cancel": ({BOOKED, CONFIRMED}, CANCELLED),
    "check_in": ({BOOKED, CONFIRMED}, CHECKED_IN),
    "no_show": ({BOOKED, CONFIRMED}, NO_SHOW),
    # A visit that day proves attendance, also after a no-show was declared too early.
    "attend": ({BOOKED, CONFIRMED, CHECKED_IN, NO_SHOW}, ATTENDED),
    "reschedule": ({BOOKED, CONFIRMED}, None),
}
MIRROR_CHANNEL = "his"
# What only the hospital's scheduling system may do to the appointments it sent.
OWNED_BY_SOURCE = ("reschedule", "cancel")


class Refused(Exception):
    """A booking the rules refuse (outside working hours...): the gateway answers 400."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class IllegalTransition(Exception):
    pass


def next_status(action: str, status: str) -> str:
    allowed, target = TRANSITIONS[action]
    if status not in allowed:
        raise IllegalTransition(
            f"cannot {action.replace('_', '-')} an appointment that is {status}"
        )
    return target or status


def staff_may(action: str, appointment: Mapping[str, Any]) -> None:
    """IllegalTransition when staff try what only the appointment's source system may do."""
    if action in OWNED_BY_SOURCE and appointment.get("external_id"):
        raise IllegalTransition(
            f"cannot {action} an appointment of the hospital's scheduling system "
            f"({appointment.get('source')}): change it there"
        )


def slot_units(starts_at: datetime.datetime, minutes: int) -> list[int]:
    """The SLOT_MINUTES units [start, end) covers, as epoch minutes, ascending."""
    start = int(starts_at.timestamp() // 60)
    end = start + minutes
    first = start - start % SLOT_MINUTES
    return list(range(first, end, SLOT_MINUTES))


def parse_hours(text: str) -> datetime.time:
    hours, minutes = text.split(":")
    return datetime.time(int(hours), int(minutes))


def within_hours(
    starts_at: datetime.datetime,
    minutes: int,
    tz: datetime.tzinfo,
    periods: Iterable[Mapping[str, Any]],
) -> bool:
    """periods: [{"days": [0..6], "start": "08:00", "end": "12:00"}, ...] (Monday = 0)."""
    local = starts_at.astimezone(tz)
    end = local + datetime.timedelta(minutes=minutes)
    if end.date() != local.date() and end.time() != datetime.time(0, 0):
        return False
    for period in periods:
        if (
            local.weekday() in period["days"]
            and parse_hours(period["start"]) <= local.time()
            and (end.time() if end.date() == local.date() else datetime.time(23, 59, 59))
            <= parse_hours(period["end"])
        ):
            return True
    return False


def hours_for(
    working_hours: Mapping[str, Any], department: str | None, doctor_id: str | None
) -> list[dict[str, Any]]:
    doctors = working_hours.get("doctors") or {}
    departments = working_hours.get("departments") or {}
    if doctor_id and doctor_id in doctors:
        return doctors[doctor_id]
    if department in departments:
        return departments[department]
    return working_hours["default"]


def check_booking(
    starts_at: datetime.datetime,
    minutes: int,
    now: datetime.datetime,
    tz: datetime.tzinfo,
    working_hours: Mapping[str, Any],
    department: str | None,
    doctor_id: str | None,
) -> None:
    if starts_at <= now:
        raise Refused("starts_at", "An appointment must start in the future.")
    if not within_hours(starts_at, minutes, tz, hours_for(working_hours, department, doctor_id)):
        raise Refused("starts_at", f"Outside the working hours of {doctor_id or department}.")


def local_day(moment: str, tz: datetime.tzinfo) -> str:
    """The hospital's calendar day (ISO text) of an ISO date-time."""
    return datetime.datetime.fromisoformat(moment).astimezone(tz).date().isoformat()


def reminder_due(starts_at: datetime.datetime, hours_before: float) -> datetime.datetime:
    return starts_at - datetime.timedelta(hours=hours_before)


def no_show_due(starts_at: datetime.datetime, grace_minutes: float = 30) -> datetime.datetime:
    return starts_at + datetime.timedelta(minutes=grace_minutes)


def event_id(appointment_id: str, event_type: str, discriminator: str = "") -> str:
    return str(uuid.uuid5(NAMESPACE, f"{appointment_id}\x1f{event_type}\x1f{discriminator}"))


DEFAULT_TEMPLATES = {
    "sms": {
        "zh": "$name您好，提醒您于$time在$department就诊。如需改约请致电客服中心。回复T退订。",
        "en": "Dear $name, a reminder of your appointment at $time in $department. "
        "Call us to reschedule.",
    },
    "call": {
        "zh": "您好，这里是医院客服中心，提醒您明天$time在$department的预约，请问能按时到院吗？",
        "en": "Hello, this is the hospital's service center: your appointment is tomorrow "
        "at $time in $department. Will you be able to come?",
    },
}


def render(
    templates: Mapping[str, Mapping[str, str]], kind: str, language: str, **values: Any
) -> str:
    text = (
        templates.get(kind, DEFAULT_TEMPLATES[kind]).get(language) or DEFAULT_TEMPLATES[kind]["zh"]
    )
    return string.Template(text).safe_substitute(**values)


# -- the mirror of the hospital's scheduling system ---------------------------------------
# One appointment per (source, appointment_id); its order is that of the last applied
# AppointmentScheduled: (occurred_at as epoch seconds, canonical event_id). The event_id
# breaks ties between two different events of the same instant, so every arrival order
# ends in the same appointment.
MIRRORED_FIELDS = ("starts_ts", "department", "doctor_id", "duration_minutes")


def mirror_appointment_id(source: str, external_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"mirror\x1f{source}\x1f{external_id}"))


def order_of(event: Mapping[str, Any]) -> tuple[float, str]:
    occurred = datetime.datetime.fromisoformat(event["occurred_at"])
    return (occurred.timestamp(), str(event["event_id"]))


def scheduled_values(data: Mapping[str, Any], default_minutes: int = 15) -> dict[str, Any]:
    """The appointment as an AppointmentScheduled states it."""
    starts = datetime.datetime.fromisoformat(data["starts_at"])
    return {
        "starts_at": starts,
        "starts_ts": starts.timestamp(),
        "department": data["department"],
        "doctor_id": data.get("doctor_id") or None,
        "duration_minutes": int(data.get("duration_minutes") or default_minutes),
    }


def plan_scheduled(
    current: Mapping[str, Any] | None,
    withdrawn: bool,
    order: tuple[float, str],
    values: Mapping[str, Any],
) -> tuple[str, tuple[str, ...]]:
    """What an AppointmentScheduled of `order` stating `values` does to the mirrored
    appointment `current` (None: not created yet). Returns (action, changed field names):

      ("withdrawn", ())  the key was withdrawn (in any order): never a live appointment
      ("create", ())     the first Scheduled: a booked appointment
      ("stale", ())      not newer than the last applied one (or a duplicate): nothing
      ("closed", ())     newer, but the appointment is over (cancelled, checked in,
                         attended, no-show): nothing changes
      ("same", ())       newer with the same values: only its order is recorded (so an
                         older change arriving later stays stale)
      ("update", names)  newer with other values: updated, reminded again
    """
    if withdrawn:
        return "withdrawn", ()
    if current is None:
        return "create", ()
    if order <= (current.get("mirror_ts", 0.0), current.get("mirror_event_id", "")):
        return "stale", ()
    if current["status"] not in TRANSITIONS["reschedule"][0]:
        return "closed", ()
    changed = tuple(f for f in MIRRORED_FIELDS if current.get(f) != values[f])
    return ("update", changed) if changed else ("same", ())


def mark_action(status: str, marks: Mapping[str, Any] | None) -> str | None:
    """The transition the hospital's Withdrawn / Missed marks call for now, or None. A
    withdrawal wins over a missed mark; an appointment already attended or checked in keeps
    its status (the visit is the stronger fact)."""
    if (marks or {}).get("withdrawn") and status in TRANSITIONS["cancel"][0]:
        return "cancel"
    if (marks or {}).get("missed") and status in TRANSITIONS["no_show"][0]:
        return "no_show"
    return None


# -- corrections ---------------------------------------------------------------------------
def status_before_attendance(appointment: Mapping[str, Any]) -> str:
    """The status an attended appointment returns to when the visit that marked it is
    cancelled: the one it had (booked / confirmed / checked_in / no_show). A booked or
    confirmed one whose time has passed is then the no-show timer's to decide, as usual."""
    previous = appointment.get("status_before_attended")
    return previous if previous in TRANSITIONS["attend"][0] else BOOKED


# -- merged patients -----------------------------------------------------------------------
# The alias rules are shared by every service (shared/aliases.py).
resolve_alias = aliases.resolve
merge_is_usable = aliases.merge_is_usable
