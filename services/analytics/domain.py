"""The figures of docs/RULES.md (§ Figures) as pure functions over normalised facts.

Every figure is computed from the recorded facts (one per event, deduplicated by event_id),
never accumulated message by message, so it is the same whatever order the events came in
and however often: a visit before its consultation, or an event days late, changes nothing.

Version 1.1 (docs/EVENTS.md): a correction leaves the facts it voids out of every figure, and
a merge makes two patient ids one person (the `people` documents below), whatever the order.
"""

import datetime
import hashlib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from shared.corrections import CORRECTION_TYPES, Voids
from shared.phones import phone_digits

WORD_OF_MOUTH = ("friend_referral", "nearby", "passing_by")
CONVERSION_DAYS = 30
MAX_RANGE_DAYS = 3 * 366  # the longest range a figure is asked for (to - from, in days)
# No figure counts these: corrections and merges change other facts, and intake's inbound
# scheduling types are the appointments service's business, whose own events (Booked,
# Cancelled, NoShow) are the one record of an appointment (docs/EVENTS.md, v1.1).
SCHEDULING_TYPES = ("AppointmentScheduled", "AppointmentWithdrawn", "AppointmentMissed")
NOT_FACTS = frozenset(CORRECTION_TYPES + ("PatientsMerged",) + SCHEDULING_TYPES)


def local_date(value: datetime.datetime | str, tz: datetime.tzinfo) -> str:
    moment = (
        value if isinstance(value, datetime.datetime) else datetime.datetime.fromisoformat(value)
    )
    return moment.astimezone(tz).date().isoformat()


# Each day field has a number twin (20250601 for "2025-06-01") that queries use: NX-27017
# ignores an index when the value compared looks like a date, so a range over the text
# scans the collection (bench/README.md), while numbers use the index, in MongoDB as well.
DAY_FIELDS = {
    "date": "day",
    "due_date": "due_day",
    "received_date": "received_day",
    "resolved_date": "resolved_day",
}


def day_number(iso_day: str) -> int:
    return int(iso_day[:4] + iso_day[5:7] + iso_day[8:10])


def with_day_numbers(doc: dict[str, Any]) -> dict[str, Any]:
    for text, number in DAY_FIELDS.items():
        if doc.get(text):
            doc[number] = day_number(doc[text])
    return doc


def fact_of(event: Mapping[str, Any], tz: datetime.tzinfo) -> dict[str, Any] | None:
    """The normalised fact of a canonical event, or None for types no figure uses."""
    fact = _fact_of(event, tz)
    return with_day_numbers(fact) if fact else None


def _fact_of(event: Mapping[str, Any], tz: datetime.tzinfo) -> dict[str, Any] | None:
    data, kind = event.get("data") or {}, event["event_type"]
    if kind in NOT_FACTS:
        return None
    person = data.get("patient") or {}
    base = {"_id": event["event_id"], "type": kind, "patient_id": event.get("patient_id")}
    if kind == "PatientVisited":
        moment = datetime.datetime.fromisoformat(data["visited_at"])
        return {
            **base,
            "date": local_date(moment, tz),
            "ts": moment.timestamp(),
            "department": data.get("department"),
            "visit_type": data.get("visit_type"),
            "source_channel": data.get("source_channel"),
            "mrn": person.get("mrn"),
            "phone_key": phone_digits(person.get("phone")) or None,
            "region": person.get("region"),
            "age_band": age_band(person.get("birth_date"), moment.astimezone(tz).date()),
            "ref": _ref("visit", data.get("visit_id")),
        }
    if kind in ("PatientAdmitted", "PatientDischarged"):
        field = "admitted_at" if kind == "PatientAdmitted" else "discharged_at"
        fact = {
            **base,
            "date": local_date(data[field], tz),
            "department": data.get("department"),
            "ref": _ref("admission", data.get("admission_id")),
        }
        if (
            kind == "PatientDischarged"
        ):  # a DischargeCancelled voids the discharges that occurred before it
            fact["occurred_ts"] = datetime.datetime.fromisoformat(event["occurred_at"]).timestamp()
        return fact
    if kind == "ConsultationLogged":
        moment = datetime.datetime.fromisoformat(event["occurred_at"])
        return {
            **base,
            "date": local_date(moment, tz),
            "ts": moment.timestamp(),
            "department": data.get("department"),
            "channel": data.get("channel"),
            "agent_id": data.get("agent_id"),
            "mrn": person.get("mrn"),
            "phone_key": phone_digits(person.get("phone")) or None,
        }
    if kind == "SatisfactionRecorded":
        return {
            **base,
            "date": local_date(event["occurred_at"], tz),
            "department": data.get("department"),
            "satisfaction": data.get("satisfaction"),
        }
    return None


# -- corrections (docs/EVENTS.md, v1.1) -------------------------------------------------------
# A fact a correction may void carries `ref` ("visit|V1", "admission|A1": one indexed field);
# a correction is kept in `voids` under the key of what it voids, so the order they arrive in
# does not matter: a fact checks the voids of its keys when written, a correction the facts of
# its ref. Whether a fact is void is shared.corrections' rule, the one every service applies.
def _ref(kind: str, ident: str | None) -> str | None:
    return f"{kind}|{ident}" if ident else None


def void_of(event: Mapping[str, Any]) -> tuple[str, float | None] | None:
    """(key, until_ts) a correction event records in `voids`, or None for other events.
    until_ts: the DischargeCancelled's time (the store keeps the latest)."""
    data, kind = event.get("data") or {}, event["event_type"]
    if kind == "VisitCancelled" and data.get("visit_id"):
        return f"visit|{data['visit_id']}", None
    if kind == "AdmissionCancelled" and data.get("admission_id"):
        return f"admission|{data['admission_id']}", None
    if kind == "DischargeCancelled" and data.get("admission_id"):
        return f"discharge|{data['admission_id']}", datetime.datetime.fromisoformat(
            event["occurred_at"]
        ).timestamp()
    return None


def ref_of_void(key: str) -> str:
    """The `ref` of the facts a void key may void: a discharge's is its admission's."""
    kind, ident = key.split("|", 1)
    return f"admission|{ident}" if kind == "discharge" else key


def void_keys(fact: Mapping[str, Any]) -> list[str]:
    """The `voids` keys that may void this fact (none for old facts without `ref`)."""
    ref = fact.get("ref")
    if not ref:
        return []
    if fact["type"] == "PatientDischarged":
        return [ref, "discharge|" + ref.split("|", 1)[1]]
    return [ref]


def void_rule(voids: Mapping[str, Mapping[str, Any]]) -> Voids:
    """shared.corrections.Voids from the stored voids {key: doc}."""
    rule = Voids()
    names = {
        "visit": ("VisitCancelled", "visit_id"),
        "admission": ("AdmissionCancelled", "admission_id"),
        "discharge": ("DischargeCancelled", "admission_id"),
    }
    for key, doc in voids.items():
        kind, ident = key.split("|", 1)
        event_type, field = names[kind]
        rule.add(
            {
                "event_type": event_type,
                "occurred_at": _moment(doc.get("until_ts")),
                "data": {field: ident},
            }
        )
    return rule


def is_void(fact: Mapping[str, Any], rule: Voids) -> bool:
    """True when a correction voids this fact. A discharge recorded before v1.1 has no time:
    any DischargeCancelled of its admission voids it."""
    if not fact.get("ref") or not rule:
        return False
    field = "visit_id" if fact["type"] == "PatientVisited" else "admission_id"
    return rule.voids(
        {
            "event_type": fact["type"],
            "occurred_at": _moment(fact.get("occurred_ts")),
            "data": {field: fact["ref"].split("|", 1)[1]},
        }
    )


def _moment(ts: float | None) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(ts or 0, datetime.UTC)


# -- people: the person behind each patient id (merges) ----------------------------------------
# One document per patient id: `alias_of` once it was merged into another id, and the
# entries of its facts (`v` visits, `c` consultations, `o` the rest) keyed by fact id. It is
# read by _id for a whole batch at once, and it answers what a per-fact query would: who an
# id is now, a person's earlier visit (unique patients), their consultations (conversions)
# and the other days a visit changes.
def merge_of(event: Mapping[str, Any]) -> tuple[str, str] | None:
    """(retired, survivor) patient ids of a PatientsMerged, or None."""
    if event["event_type"] != "PatientsMerged":
        return None
    retired, survivor = (event.get("data") or {}).get("merged_patient_id"), event.get("patient_id")
    return (retired, survivor) if retired and survivor and retired != survivor else None


SAFE_KEY = re.compile(r"[A-Za-z0-9_-]{1,128}")


def entry_key(fact_id: object) -> str:
    """The fact's key in a people document: a field name must not hold '.' or start with '$'."""
    fact_id = str(fact_id)
    return (
        fact_id if SAFE_KEY.fullmatch(fact_id) else "~" + hashlib.sha1(fact_id.encode()).hexdigest()
    )


def person_entry(fact: Mapping[str, Any]) -> tuple[str, str, dict[str, Any]] | None:
    """(section, key, entry) of a fact in its person's document, or None without a patient id."""
    if not fact.get("patient_id"):
        return None
    entry = {"id": fact["_id"], "day": fact.get("day")}
    if fact["type"] == "PatientVisited":
        section = "v"
        entry.update(
            ts=fact["ts"], department=fact.get("department"), void=1 if fact.get("void") else 0
        )
    elif fact["type"] == "ConsultationLogged":
        section = "c"
        entry["ts"] = fact["ts"]
    else:
        section = "o"
    return section, entry_key(fact["_id"]), entry


def day_text(number: int) -> str:
    return f"{number // 10000:04d}-{number // 100 % 100:02d}-{number % 100:02d}"


class People:
    """The people documents of some patient ids, and of the ids they were merged into."""

    def __init__(self, docs: Iterable[dict[str, Any]] = ()) -> None:
        self.docs = {doc["_id"]: doc for doc in docs}
        self._visits: dict[str | None, list[dict[str, Any]]] = {}

    def person(self, patient_id: str | None) -> str | None:
        """The id a patient id stands for now: alias_of followed (R -> S -> T gives T)."""
        seen = set()
        while (
            patient_id in self.docs
            and self.docs[patient_id].get("alias_of")
            and patient_id not in seen
        ):
            seen.add(patient_id)
            patient_id = self.docs[patient_id]["alias_of"]
        return patient_id

    def aliases(self) -> set[str]:
        return {pid for pid, doc in self.docs.items() if doc.get("alias_of")}

    def entries(self, patient_id: str | None, section: str) -> list[dict[str, Any]]:
        return list(((self.docs.get(self.person(patient_id)) or {}).get(section) or {}).values())

    def visits(self, patient_id: str | None) -> list[dict[str, Any]]:
        """The person's visits that count, in time order."""
        person = self.person(patient_id)
        if person not in self._visits:
            self._visits[person] = sorted(
                (e for e in self.entries(person, "v") if not e.get("void")),
                key=lambda e: (e["ts"], e["id"]),
            )
        return self._visits[person]

    def previous_visit_day(self, visit: Mapping[str, Any], same_department: bool = False) -> str:
        """The day of the person's visit just before this one (in its department, if asked),
        or "" when there is none within MAX_RANGE_DAYS: a visit counts its person in a range
        exactly when that day is before the range's first day ("" always is)."""
        me, previous = (visit["ts"], visit["_id"]), None
        for entry in self.visits(visit.get("patient_id")):
            if (entry["ts"], entry["id"]) >= me:
                break
            if not same_department or entry.get("department") == visit.get("department"):
                previous = entry
        if previous is None:
            return ""
        day = day_text(previous["day"])
        gap = datetime.date.fromisoformat(visit["date"]) - datetime.date.fromisoformat(day)
        return "" if gap.days > MAX_RANGE_DAYS else day

    def following_visit_days(self, visit: Mapping[str, Any]) -> set[str]:
        """The days of the person's next visit and next visit in the same department: their
        previous visit is this one's, before or after it counts (or after it is voided)."""
        me = (visit["ts"], visit["_id"])
        days: set[str] = set()
        departments: set[str] = set()
        for entry in self.visits(visit.get("patient_id")):
            if (entry["ts"], entry["id"]) <= me or entry["id"] == visit["_id"]:
                continue
            if not days:
                days.add(day_text(entry["day"]))
            if entry.get("department") == visit.get("department") and not departments:
                departments.add(day_text(entry["day"]))
            if days and departments:
                break
        return days | departments

    def consultation_days(self, visit: Mapping[str, Any], window_s: float) -> set[str]:
        """The days of the person's consultations this visit may convert (within the window)."""
        return {
            day_text(e["day"])
            for e in self.entries(visit.get("patient_id"), "c")
            if visit["ts"] - window_s <= e["ts"] <= visit["ts"]
        }

    def visit_times(self, patient_id: str | None) -> list[float]:
        return [entry["ts"] for entry in self.visits(patient_id)]

    def days(self, patient_id: str | None) -> set[str]:
        """Every day the person's visits and consultations are on (what a merge may change)."""
        return {
            day_text(e["day"])
            for section in ("v", "c")
            for e in self.entries(patient_id, section)
            if e.get("day")
        }


def entity_update(
    event: Mapping[str, Any], tz: datetime.tzinfo
) -> tuple[str, str, dict[str, Any]] | None:
    """(collection, id, fields) for follow-up and complaint events: each type sets its own
    fields, so the entity ends the same in any order."""
    update = _entity_update(event, tz)
    if update:
        with_day_numbers(update[2])
    return update


def _entity_update(
    event: Mapping[str, Any], tz: datetime.tzinfo
) -> tuple[str, str, dict[str, Any]] | None:
    data, kind = event.get("data") or {}, event["event_type"]
    # FollowUpAttempted (v1.1) is an agent's call, not a change of the task's due day: its
    # due_at is the attempt's (agents.py counts it); the task keeps the due day of the others.
    if kind.startswith("FollowUp") and kind != "FollowUpAttempted" and data.get("followup_id"):
        fields: dict[str, Any] = (
            {"due_date": local_date(data["due_at"], tz)} if data.get("due_at") else {}
        )
        if kind == "FollowUpCompleted":
            fields["completed"] = 1
        elif kind == "FollowUpCancelled" and data.get("reason") != "erased":
            # An erasure closes the person's pending calls, but figures stay as they were
            # (README.md § Data protection): the call was due and was not made.
            fields["cancelled"] = 1
        fields["department"] = data.get("department")
        return "followups", data["followup_id"], fields
    if kind.startswith("Complaint") and data.get("complaint_id"):
        fields = {
            "received_date": local_date(data["received_at"], tz),
            "department": data.get("department"),
            "category": data.get("category"),
            "ack_due_ts": datetime.datetime.fromisoformat(data["ack_due_at"]).timestamp(),
            "resolve_due_ts": datetime.datetime.fromisoformat(data["resolve_due_at"]).timestamp(),
        }
        moment = datetime.datetime.fromisoformat(event["occurred_at"]).timestamp()
        if kind == "ComplaintAcknowledged":
            fields["acknowledged_ts"] = moment
        elif kind == "ComplaintResolved":
            fields["resolved_ts"] = moment
            fields["resolved_date"] = local_date(event["occurred_at"], tz)
        return "complaints", data["complaint_id"], fields
    return None


def entity_days(
    collection: str, before: Mapping[str, Any] | None, fields: Mapping[str, Any]
) -> set[str]:
    """The days whose partials an entity change touches: its dates before and after."""
    names = ("due_date",) if collection == "followups" else ("received_date", "resolved_date")
    return {
        doc[name] for doc in (before or {}, fields) for name in names if doc.get(name) is not None
    }


# The patient's age band on the day of the visit (docs/DOMAIN.md: age and region analysis):
# one rule for the figures and the analytics stream's minimal copies.
from shared.minimise import AGE_BANDS, age_band  # noqa: E402,F401


def _count_by(items: Iterable[Mapping[str, Any]], key: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        value = item.get(key) or "unknown"
        counts[value] = counts.get(value, 0) + 1
    return counts


def rate(numerator: float, denominator: float) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


class VisitIndex:
    """docs/RULES.md: a consultation converts when its person (same phone digits or same MRN)
    has a PatientVisited within 30 days after it. Visit times by phone key and by MRN make
    that two lookups, not a scan of every visit (a year holds a million). With `people`, the
    person's own visits count too: after a merge, records with other phones and MRNs are one
    person (v1.1)."""

    def __init__(self, visits: Iterable[Mapping[str, Any]], people: People | None = None) -> None:
        self.by_key: dict[tuple[str, Any], list[float]] = {}
        self.people = people
        for visit in visits:
            if visit.get("void"):
                continue
            for key in ("phone_key", "mrn"):
                if visit.get(key):
                    self.by_key.setdefault((key, visit[key]), []).append(visit["ts"])

    def converted(self, consultation: Mapping[str, Any]) -> bool:
        start, end = consultation["ts"], consultation["ts"] + CONVERSION_DAYS * 86400
        own = self.people.visit_times(consultation.get("patient_id")) if self.people else ()
        return any(start <= ts <= end for ts in own) or any(
            start <= ts <= end
            for key in ("phone_key", "mrn")
            if consultation.get(key)
            for ts in self.by_key.get((key, consultation[key]), ())
        )


def summary(**facts: Any) -> dict[str, Any]:
    """The figures over one range, from the facts as partial() takes them: every list holds
    the facts already filtered to the range (and department); `candidate_visits` are the
    visits a conversion may use."""
    return finish(partial(**facts))


# -- additive partials -------------------------------------------------------------------------
# Every figure is a ratio of sums over facts, and each fact belongs to one day (a consultation's
# conversion to the consultation's day), so the numerators of a range are the sums of its days'.
# The service keeps one partial per day and merges them: a year's summary reads 365 small
# documents instead of millions of facts (bench/analytics_scale.py).
# `unique_patients` is no sum of days: each day keeps its visits counted by the day of the
# person's previous visit ("" for none), and a range counts the visits whose previous visit is
# before its first day - each person once, a few hundred numbers a day instead of the ids.
COUNTS = (
    "visits",
    "first_visits",
    "return_visits",
    "admissions",
    "discharges",
    "consultations",
    "conversions",
    "followups_due",
    "followups_completed",
    "sat_sum",
    "sat_n",
    "complaints_opened",
    "complaints_resolved",
    "ack_ok",
    "resolve_ok",
    "sourced",
    "word_of_mouth",
)
DEPARTMENT_COUNTS = (
    "visits",
    "first_visits",
    "discharges",
    "complaints_opened",
    "sat_sum",
    "sat_n",
)


def partial(
    *,
    visits: Sequence[Mapping[str, Any]],
    admissions: Sequence[Mapping[str, Any]],
    discharges: Sequence[Mapping[str, Any]],
    consultations: Sequence[Mapping[str, Any]],
    candidate_visits: VisitIndex | Iterable[Mapping[str, Any]],
    followups: Iterable[Mapping[str, Any]],
    satisfactions: Iterable[Mapping[str, Any]],
    complaints: Sequence[Mapping[str, Any]],
    complaints_resolved_in_range: int,
    previous_days: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The additive numerators of the figures over the given facts (JSON-safe).
    `previous_days`: {visit id: the day of its person's previous visit, or ""}
    (People.previous_visit_day); without it, the first visit of each patient id in `visits`
    counts as the person's first."""
    first = [v for v in visits if v["visit_type"] == "first"]
    index = (
        candidate_visits
        if isinstance(candidate_visits, VisitIndex)
        else VisitIndex(candidate_visits)
    )
    outcome = [(c, index.converted(c)) for c in consultations]
    due = [f for f in followups if not f.get("cancelled")]
    scores = [s for s in satisfactions if s.get("satisfaction") is not None]
    with_source = [v for v in first if v.get("source_channel")]
    part = {
        "visits": len(visits),
        "first_visits": len(first),
        "return_visits": sum(v["visit_type"] == "return" for v in visits),
        "admissions": len(admissions),
        "discharges": len(discharges),
        "consultations": len(consultations),
        "conversions": sum(hit for _, hit in outcome),
        "followups_due": len(due),
        "followups_completed": sum(1 for f in due if f.get("completed")),
        "sat_sum": sum(s["satisfaction"] for s in scores),
        "sat_n": len(scores),
        "complaints_opened": len(complaints),
        "complaints_resolved": complaints_resolved_in_range,
        "ack_ok": sum(
            1
            for c in complaints
            if c.get("acknowledged_ts") and c["acknowledged_ts"] <= c["ack_due_ts"]
        ),
        "resolve_ok": sum(
            1
            for c in complaints
            if c.get("resolved_ts") and c["resolved_ts"] <= c["resolve_due_ts"]
        ),
        "sourced": len(with_source),
        "word_of_mouth": sum(v["source_channel"] in WORD_OF_MOUTH for v in with_source),
    }
    departments: dict[str, dict[str, int]] = {}

    def add(name: str | None, field: str, amount: int = 1) -> None:
        if name:
            counts = departments.setdefault(name, dict.fromkeys(DEPARTMENT_COUNTS, 0))
            counts[field] += amount

    for v in visits:
        add(v.get("department"), "visits")
    for v in first:
        add(v.get("department"), "first_visits")
    for d in discharges:
        add(d.get("department"), "discharges")
    for c in complaints:
        add(c.get("department"), "complaints_opened")
    for s in satisfactions:
        add(s.get("department"), "sat_n", 0)  # a department with ratings but no score is listed
        if s.get("satisfaction") is not None:
            add(s.get("department"), "sat_sum", s["satisfaction"])
            add(s.get("department"), "sat_n")
    part["by_department"] = departments
    since = part["patients_since"] = {}
    for day in _previous_days(visits, previous_days):
        since[day] = since.get(day, 0) + 1
    part["by_source"] = _count_by(with_source, "source_channel")
    part["conversion_by_channel"] = _pairs_by(outcome, "channel")
    part["conversion_by_agent_id"] = _pairs_by(outcome, "agent_id")
    regions: dict[str, list[int]] = {}
    for v in visits:
        regions.setdefault(v.get("region") or "unknown", [0, 0])[0] += 1
    for v in first:
        regions.setdefault(v.get("region") or "unknown", [0, 0])[1] += 1
    part["by_region"] = regions
    part["by_age_band"] = _count_by(visits, "age_band")
    part["categories"] = _count_by(complaints, "category")
    return part


def _previous_days(
    visits: Sequence[Mapping[str, Any]], previous_days: Mapping[str, str] | None
) -> list[str]:
    if previous_days is not None:
        return [previous_days.get(v["_id"], "") for v in visits]
    seen, days = set(), []
    for visit in sorted(visits, key=lambda v: (v.get("ts", 0), v["_id"])):
        person = visit.get("patient_id") or visit["_id"]
        days.append(visit["date"] if person in seen else "")
        seen.add(person)
    return days


def _pairs_by(outcome: Iterable[tuple[Mapping[str, Any], bool]], key: str) -> dict[str, list[int]]:
    groups: dict[str, list[int]] = {}
    for consultation, hit in outcome:
        group = groups.setdefault(consultation.get(key) or "unknown", [0, 0])
        group[0] += 1
        group[1] += int(hit)
    return groups


def merge(parts: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """The sum of partials: the partial of the union of their facts."""
    total: dict[str, Any] = dict.fromkeys(COUNTS, 0)
    maps: dict[str, dict[str, Any]] = {
        "by_department": {},
        "by_source": {},
        "conversion_by_channel": {},
        "conversion_by_agent_id": {},
        "by_region": {},
        "by_age_band": {},
        "categories": {},
        "patients_since": {},
    }
    for part in parts:
        for name in COUNTS:
            total[name] += part.get(name, 0)
        for name, merged in maps.items():
            for key, value in (part.get(name) or {}).items():
                if isinstance(value, dict):
                    into = merged.setdefault(key, dict.fromkeys(value, 0))
                    for field, amount in value.items():
                        into[field] = into.get(field, 0) + amount
                elif isinstance(value, list):
                    into = merged.setdefault(key, [0] * len(value))
                    for index, amount in enumerate(value):
                        into[index] += amount
                else:
                    merged[key] = merged.get(key, 0) + value
    total.update(maps)
    return total


def finish(total: Mapping[str, Any], first_day: str | None = None) -> dict[str, Any]:
    """The figures of docs/RULES.md (§ Figures) from merged numerators; `first_day` (ISO) is
    the range's first day, which says which visits' persons came before it."""

    def mean(amount: float, n: float) -> float | None:
        return round(amount / n, 4) if n else None

    departments = total.get("by_department") or {}
    return {
        "visits": total["visits"],
        "first_visits": total["first_visits"],
        "unique_patients": sum(
            n
            for day, n in (total.get("patients_since") or {}).items()
            if day == "" or (first_day and day < first_day)
        ),
        "return_visits": total["return_visits"],
        "admissions": total["admissions"],
        "discharges": total["discharges"],
        "consultations": total["consultations"],
        "conversions": total["conversions"],
        "conversion_rate": rate(total["conversions"], total["consultations"]),
        "followups_due": total["followups_due"],
        "followups_completed": total["followups_completed"],
        "followup_completion_rate": rate(total["followups_completed"], total["followups_due"]),
        "avg_satisfaction": mean(total["sat_sum"], total["sat_n"]),
        "complaints_opened": total["complaints_opened"],
        "complaints_resolved": total["complaints_resolved"],
        "ack_sla_rate": rate(total["ack_ok"], total["complaints_opened"]),
        "resolve_sla_rate": rate(total["resolve_ok"], total["complaints_opened"]),
        "word_of_mouth_share": rate(total["word_of_mouth"], total["sourced"]),
        "by_department": [
            {
                "department": name,
                "visits": d["visits"],
                "first_visits": d["first_visits"],
                "discharges": d["discharges"],
                "complaints_opened": d["complaints_opened"],
                "avg_satisfaction": mean(d["sat_sum"], d["sat_n"]),
            }
            for name, d in sorted(departments.items())
        ],
        "by_source": [
            {"source_channel": k, "first_visits": n}
            for k, n in sorted((total.get("by_source") or {}).items())
        ],
        # Seed 002: conversion by channel and by agent, patients by region and age.
        "conversion_by_channel": _conversions(total.get("conversion_by_channel"), "channel"),
        "conversion_by_agent": _conversions(total.get("conversion_by_agent_id"), "agent_id"),
        "by_region": [
            {"region": k, "visits": v[0], "first_visits": v[1]}
            for k, v in sorted((total.get("by_region") or {}).items())
        ],
        "by_age_band": [
            {"age_band": k, "visits": n}
            for k, n in sorted((total.get("by_age_band") or {}).items())
        ],
        "top_complaint_categories": [
            {"category": k, "complaints": n}
            for k, n in sorted(
                (total.get("categories") or {}).items(), key=lambda item: (-item[1], item[0])
            )
        ],
    }


def _conversions(groups: Mapping[str, Sequence[int]] | None, key: str) -> list[dict[str, Any]]:
    return [
        {key: name, "consultations": n, "conversions": c, "conversion_rate": rate(c, n)}
        for name, (n, c) in sorted((groups or {}).items())
    ]
