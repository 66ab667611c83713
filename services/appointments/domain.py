"""Appointment rules (contract/PROTOCOLS.md § Appointments) as pure functions; "now" is a
parameter everywhere.

A doctor has one appointment per slot: the time is cut into SLOT_MINUTES units and each
booking claims the units it covers (a unique key per doctor and unit in the store), in
ascending order, so of two overlapping bookings exactly one wins, whatever the concurrency.
"""
import datetime
import string
import uuid

NAMESPACE = uuid.UUID("8d2c4e6f-1a3b-4c5d-9e7f-0a1b2c3d4e5f")
SLOT_MINUTES = 5
ACTIVE = ("booked", "confirmed")
# action -> statuses it may start from -> status it leads to
TRANSITIONS = {
    "confirm": ({"booked"}, "confirmed"),
    "cancel": ({"booked", "confirmed"}, "cancelled"),
    "check_in": ({"booked", "confirmed"}, "checked_in"),
    "no_show": ({"booked", "confirmed"}, "no_show"),
    # A visit that day proves attendance, also after a no-show was declared too early.
    "attend": ({"booked", "confirmed", "checked_in", "no_show"}, "attended"),
    "reschedule": ({"booked", "confirmed"}, None),
}


class Refused(Exception):
    """A booking the rules refuse (outside working hours...): the gateway answers 400."""

    def __init__(self, field, message):
        super().__init__(message)
        self.field = field


class IllegalTransition(Exception):
    pass


def next_status(action, status):
    allowed, target = TRANSITIONS[action]
    if status not in allowed:
        raise IllegalTransition(f"cannot {action.replace('_', '-')} an appointment that is {status}")
    return target or status


def slot_units(starts_at, minutes):
    """The SLOT_MINUTES units [start, end) covers, as epoch minutes, ascending."""
    start = int(starts_at.timestamp() // 60)
    end = start + minutes
    first = start - start % SLOT_MINUTES
    return list(range(first, end, SLOT_MINUTES))


def parse_hours(text):
    hours, minutes = text.split(":")
    return datetime.time(int(hours), int(minutes))


def within_hours(starts_at, minutes, tz, periods):
    """periods: [{"days": [0..6], "start": "08:00", "end": "12:00"}, ...] (Monday = 0)."""
    local = starts_at.astimezone(tz)
    end = local + datetime.timedelta(minutes=minutes)
    if end.date() != local.date() and end.time() != datetime.time(0, 0):
        return False
    for period in periods:
        if local.weekday() in period["days"] and parse_hours(period["start"]) <= local.time() \
                and (end.time() if end.date() == local.date() else datetime.time(23, 59, 59)) <= parse_hours(period["end"]):
            return True
    return False


def hours_for(working_hours, department, doctor_id):
    doctors = working_hours.get("doctors") or {}
    departments = working_hours.get("departments") or {}
    if doctor_id and doctor_id in doctors:
        return doctors[doctor_id]
    if department in departments:
        return departments[department]
    return working_hours["default"]


def check_booking(starts_at, minutes, now, tz, working_hours, department, doctor_id):
    if starts_at <= now:
        raise Refused("starts_at", "An appointment must start in the future.")
    if not within_hours(starts_at, minutes, tz, hours_for(working_hours, department, doctor_id)):
        raise Refused("starts_at", f"Outside the working hours of {doctor_id or department}.")


def reminder_due(starts_at, hours_before):
    return starts_at - datetime.timedelta(hours=hours_before)


def no_show_due(starts_at, grace_minutes=30):
    return starts_at + datetime.timedelta(minutes=grace_minutes)


def event_id(appointment_id, event_type, discriminator=""):
    return str(uuid.uuid5(NAMESPACE, f"{appointment_id}\x1f{event_type}\x1f{discriminator}"))


DEFAULT_TEMPLATES = {
    "sms": {"zh": "$name您好，提醒您于$time在$department就诊。如需改约请致电客服中心。回复T退订。",
            "en": "Dear $name, a reminder of your appointment at $time in $department. Call us to reschedule."},
    "call": {"zh": "您好，这里是医院客服中心，提醒您明天$time在$department的预约，请问能按时到院吗？",
             "en": "Hello, this is the hospital's service center: your appointment is tomorrow at $time in $department. Will you be able to come?"},
}


def render(templates, kind, language, **values):
    text = templates.get(kind, DEFAULT_TEMPLATES[kind]).get(language) or DEFAULT_TEMPLATES[kind]["zh"]
    return string.Template(text).safe_substitute(**values)
