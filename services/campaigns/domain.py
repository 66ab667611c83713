"""Campaign rules (docs/RULES.md § Campaigns) as pure functions; "now", the time zone and the
holiday calendar are parameters, so no test waits for a clock.

- `person_view(events)`: what campaigns keeps of a person, derived from all of the person's
  canonical events (any order; corrections applied by shared/corrections.py), like followup's
  contact: the latest stated phone, name, consents, region and birth date, and the visits,
  admissions and discharges that still count.
- `matches(view, segment, day, tz)`: whether the person is in a campaign's segment on the
  campaign's day; `exclusion(view, opted_out)`: why a targeted person is not reached.
- quiet hours and the per-day limit: `in_quiet_hours`, `next_allowed`, `next_day`,
  `daily_slot_ids`.
- holiday greetings: `holiday_date` from the `holidays` calendar.
- the report: `report(deliveries, visits_of, window_days)`.
"""

import datetime
import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from shared.contact import contact_of, parse_time
from shared.corrections import effective
from shared.minimise import AGE_BANDS, age_band
from shared.phones import phone_digits
from shared.segments import SEGMENTS, segment

CHANNELS = ("sms", "call")
LANGUAGES = ("zh", "en")
NAMESPACE = uuid.UUID("5d0c2a4e-8b1f-4f3a-9e6d-2c7b1a0f9e84")
AGE_BAND_LABELS = tuple(label for _, _, label in AGE_BANDS) + ("unknown",)
# A delivery's statuses. Waiting: PENDING (its queue_ts says from when), SENDING (claimed by a
# sender until its queue_ts). Final: the others; a final delivery's queue_ts is DONE_TS.
PENDING, SENDING = "pending", "sending"
SENT, CALL_REQUESTED = "sent", "call_requested"
NO_CONSENT, NO_PHONE = "excluded_no_consent", "excluded_no_phone"
DECEASED, MERGED, ERASED = "skipped_deceased", "merged", "erased"
WAITING = (PENDING, SENDING)
REACHED = (SENT, CALL_REQUESTED)
DONE_TS = 1e12  # the queue_ts of a final delivery: later than any due time (year 33658)
# Campaign statuses, in order.
CAMPAIGN_STATUSES = ("scheduled", "targeting", "sending", "done")

# The holiday greetings a campaign may be scheduled for, by the `holidays` package's English
# name of the holiday in the CN calendar (its first day; "(observed)" days and eves excluded).
HOLIDAYS = {
    "new_year": "New Year's Day",
    "spring_festival": "Chinese New Year (Spring Festival)",
    "qingming": "Tomb-Sweeping Day",
    "labour_day": "Labor Day",
    "dragon_boat": "Dragon Boat Festival",
    "mid_autumn": "Mid-Autumn Festival",
    "national_day": "National Day",
}


def delivery_id(campaign_id: str, patient_id: str) -> str:
    """One delivery per (campaign, person): the unique _id is what sends each once."""
    return f"{campaign_id}|{patient_id}"


def event_id(subject_id: str, event_type: str, discriminator: str = "") -> str:
    return str(uuid.uuid5(NAMESPACE, f"{subject_id}\x1f{event_type}\x1f{discriminator}"))


# -- the person -------------------------------------------------------------------------------
def person_view(events: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """What campaigns needs of a person, from their canonical events (event_id, event_type,
    occurred_at, data): per profile field the latest statement (by occurred_at, then
    event_id: shared/contact.py's order), and the facts that still count."""
    events = list(events)
    contact = contact_of(events)
    latest = {}
    for event in sorted(events, key=lambda e: (parse_time(e["occurred_at"]), e["event_id"])):
        person = (event.get("data") or {}).get("patient") or {}
        for field in ("marketing_consent", "region", "birth_date"):
            if field in person:
                latest[field] = person[field]
    visits, admissions, discharges = {}, {}, []
    registered = False
    for event in effective(events):
        data, kind = event.get("data") or {}, event["event_type"]
        if kind == "PatientRegistered":
            registered = True
        elif kind == "PatientVisited":
            visits[data["visit_id"]] = [
                parse_time(data["visited_at"]).timestamp(),
                data.get("department"),
            ]
        elif kind == "PatientAdmitted":
            admissions[data["admission_id"]] = [
                parse_time(data["admitted_at"]).timestamp(),
                data.get("department"),
            ]
        elif kind == "PatientDischarged":
            admissions.setdefault(
                data["admission_id"],
                [parse_time(data["discharged_at"]).timestamp(), data.get("department")],
            )
            if data.get("disposition") != "deceased":
                discharges.append(
                    [parse_time(data["discharged_at"]).timestamp(), data.get("department")]
                )
    return {
        "phone": contact.phone,
        "name": contact.name,
        "contact_consent": contact.consent is not False,
        "deceased": contact.deceased,
        "marketing_consent": latest.get("marketing_consent") is True,
        "region": latest.get("region"),
        "birth_date": latest.get("birth_date"),
        "visits": sorted(visits.values(), key=lambda v: v[0]),
        "admissions": sorted(admissions.values(), key=lambda a: a[0]),
        "discharges": sorted(discharges, key=lambda d: d[0]),
        "segment": segment(
            {
                "visit_count": len(visits),
                "admission_count": len(admissions),
                "registered": registered,
            }
        ),
    }


def dump_view(view: Mapping[str, Any]) -> str:
    # Kept as JSON text: both stores give back exactly what was written (docs/DEVELOPING.md).
    return json.dumps(view, ensure_ascii=False, sort_keys=True)


def load_view(text: str | None) -> dict[str, Any] | None:
    return json.loads(text) if text else None


# -- the segment ------------------------------------------------------------------------------
def _as_set(value: str | Iterable[str] | None) -> set[str] | None:
    if value is None:
        return None
    return {value} if isinstance(value, str) else set(value)


def _within(value: float | None, bounds: Mapping[str, Any] | None) -> bool:
    if not bounds:
        return True
    if value is None:
        return False
    low, high = bounds.get("min"), bounds.get("max")
    return (low is None or value >= low) and (high is None or value <= high)


def _local_day(ts: float, tz: datetime.tzinfo) -> datetime.date:
    return datetime.datetime.fromtimestamp(ts, tz).date()


def matches(
    view: Mapping[str, Any] | None,
    segment_spec: Mapping[str, Any] | None,
    day: datetime.date,
    tz: datetime.tzinfo,
) -> bool:
    """Whether a person (not deceased) is in the segment on `day` (the campaign's local day).
    Every criterion given must hold. With `department`, only that department's visits,
    admissions and discharges count, for every criterion that reads them."""
    if view is None or view.get("deceased"):
        return False
    spec = segment_spec or {}
    department = spec.get("department")
    visits, discharges = view["visits"], view["discharges"]
    if department:
        visits = [v for v in visits if v[1] == department]
        discharges = [d for d in discharges if d[1] == department]
        admitted = [a for a in view["admissions"] if a[1] == department]
        if not (visits or discharges or admitted):
            return False
    if spec.get("days_since_visit"):
        last = (day - _local_day(visits[-1][0], tz)).days if visits else None
        if not _within(last, spec["days_since_visit"]):
            return False
    if spec.get("days_since_discharge"):
        last = (day - _local_day(discharges[-1][0], tz)).days if discharges else None
        if not _within(last, spec["days_since_discharge"]):
            return False
    if not _within(len(visits), spec.get("visit_count")):
        return False
    for field, value in (
        ("segment", view["segment"]),
        ("region", view.get("region")),
        ("age_band", age_band(view.get("birth_date"), day)),
    ):
        wanted = _as_set(spec.get(field))
        if wanted is not None and value not in wanted:
            return False
    return True


def exclusion(view: Mapping[str, Any], opted_out: bool) -> str | None:
    """Why a person in the segment is not reached, or None: consent first (marketing consent
    not given, an opt-out, or no contact at all), then a phone to reach; a person reported
    deceased since the targeting is skipped."""
    if view.get("deceased"):
        return DECEASED
    if opted_out or not view.get("marketing_consent") or not view.get("contact_consent"):
        return NO_CONSENT
    if not phone_digits(view.get("phone")):
        return NO_PHONE
    return None


def segment_errors(spec: Mapping[str, Any] | None) -> dict[str, list[str]]:
    """Field -> messages for a segment whose ranges are upside down (the gateway checks types)."""
    errors = {}
    for field in ("days_since_visit", "days_since_discharge", "visit_count"):
        bounds = (spec or {}).get(field) or {}
        if (
            bounds.get("min") is not None
            and bounds.get("max") is not None
            and bounds["min"] > bounds["max"]
        ):
            errors[f"segment.{field}"] = ["min must not be greater than max."]
    for field, allowed in (("segment", SEGMENTS), ("age_band", AGE_BAND_LABELS)):
        unknown = (_as_set((spec or {}).get(field)) or set()) - set(allowed)
        if unknown:
            errors[f"segment.{field}"] = [f"One or more of: {', '.join(allowed)}."]
    return errors


# -- when a message may go ---------------------------------------------------------------------
def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


def in_quiet_hours(moment: datetime.datetime, tz: datetime.tzinfo, start: str, end: str) -> bool:
    """Whether `moment` falls in the local quiet window [start, end) (HH:MM; it may wrap
    midnight: 21:00-08:00). start == end: no quiet hours."""
    first, last = _minutes(start), _minutes(end)
    if first == last:
        return False
    local = moment.astimezone(tz)
    now = local.hour * 60 + local.minute
    return first <= now < last if first < last else (now >= first or now < last)


def next_allowed(
    moment: datetime.datetime, tz: datetime.tzinfo, start: str, end: str
) -> datetime.datetime:
    """`moment` when it is outside quiet hours, else the end of its quiet window."""
    if not in_quiet_hours(moment, tz, start, end):
        return moment
    local = moment.astimezone(tz)
    hours, minutes = map(int, end.split(":"))
    opening = datetime.datetime.combine(local.date(), datetime.time(hours, minutes), tz)
    if opening <= local:  # the window started this evening: it ends tomorrow morning
        opening = datetime.datetime.combine(
            local.date() + datetime.timedelta(days=1), datetime.time(hours, minutes), tz
        )
    return opening


def next_day(
    moment: datetime.datetime, tz: datetime.tzinfo, start: str, end: str
) -> datetime.datetime:
    """When a person who reached the per-day limit may get the next message: the first moment
    of the next local day outside quiet hours (08:00 with the default quiet hours)."""
    tomorrow = moment.astimezone(tz).date() + datetime.timedelta(days=1)
    return next_allowed(
        datetime.datetime.combine(tomorrow, datetime.time(0, 0), tz), tz, start, end
    )


def daily_slot_ids(
    patient_id: str, moment: datetime.datetime, tz: datetime.tzinfo, limit: int
) -> list[str]:
    """The per-day limit as `limit` slots per person and local day; a message takes one (its
    unique _id is what holds the limit across replicas). The day goes last in the id
    (docs/DEVELOPING.md: an _id starting with a date is matched wrongly by NX-27017)."""
    day = moment.astimezone(tz).strftime("%Y%m%d")
    return [f"{patient_id}|{day}|{n}" for n in range(1, limit + 1)]


# -- holiday greetings --------------------------------------------------------------------------
def holiday_date(
    calendar_of: Callable[[list[int]], Mapping[datetime.date, str]],
    holiday: str,
    today: datetime.date,
) -> datetime.date | None:
    """The first day of the next `holiday` (a key of HOLIDAYS) on or after `today`, from
    `calendar_of(years)` (a {date: name} mapping, the `holidays` package's), or None."""
    name = HOLIDAYS[holiday]
    days = {
        day
        for day, names in calendar_of([today.year, today.year + 1]).items()
        if name in [part.strip() for part in names.split(";")]
    }
    first_days = sorted(day for day in days if day - datetime.timedelta(days=1) not in days)
    return next((day for day in first_days if day >= today), None)


def send_time(day: datetime.date, hhmm: str, tz: datetime.tzinfo) -> datetime.datetime:
    hours, minutes = map(int, hhmm.split(":"))
    return datetime.datetime.combine(day, datetime.time(hours, minutes), tz)


# -- the message ----------------------------------------------------------------------------------
def render(template: Mapping[str, str], language: str, name: str | None) -> str:
    """The text in `language`; `{name}` becomes the person's name (nothing else is replaced)."""
    return template[language].replace("{name}", name or "")


_NOT_A_WORD = re.compile(r"[\s\W_]+", re.UNICODE)


def is_opt_out(text: str | None, keywords: Iterable[str]) -> bool:
    """A reply that is one of the keywords, ignoring case, spaces and punctuation
    ("td", "退订。")."""
    said = _NOT_A_WORD.sub("", text or "").upper()
    return bool(said) and said in {_NOT_A_WORD.sub("", word).upper() for word in keywords}


# -- the report ------------------------------------------------------------------------------------
def report(
    deliveries: Iterable[Mapping[str, Any]],
    visits_of: Callable[[str], Iterable[float]],
    window_days: float = 30,
) -> dict[str, int]:
    """The campaign's figures from its deliveries ({status, patient_id, reached_ts}) and
    `visits_of(patient_id)` (the visit times, epoch seconds, of the person now holding that
    id): docs/RULES.md § Campaigns defines each."""
    counts = {
        "targeted": 0,
        "excluded_no_consent": 0,
        "excluded_no_phone": 0,
        "sent": 0,
        "calls_created": 0,
        "waiting": 0,
        "not_reached_other": 0,
        "returned_within_30d": 0,
    }
    window = window_days * 86400
    for delivery in deliveries:
        status = delivery["status"]
        if status == MERGED:  # the survivor's own delivery stands for the person
            continue
        counts["targeted"] += 1
        if status == NO_CONSENT:
            counts["excluded_no_consent"] += 1
        elif status == NO_PHONE:
            counts["excluded_no_phone"] += 1
        elif status == SENT:
            counts["sent"] += 1
        elif status == CALL_REQUESTED:
            counts["calls_created"] += 1
        elif status in WAITING:
            counts["waiting"] += 1
        else:
            counts["not_reached_other"] += 1
        if status in REACHED:
            reached = delivery["reached_ts"]
            if any(reached < ts <= reached + window for ts in visits_of(delivery["patient_id"])):
                counts["returned_within_30d"] += 1
    return counts
