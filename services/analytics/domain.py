"""The figures of contract/PROTOCOLS.md § Analytics as pure functions over normalised facts.

Every figure is computed from the recorded facts (one per event, deduplicated by event_id),
never accumulated message by message, so it is the same whatever order the events came in
and however often: a visit before its consultation, or an event days late, changes nothing.
"""
import datetime

from shared.events import phone_digits

WORD_OF_MOUTH = ("friend_referral", "nearby", "passing_by")
CONVERSION_DAYS = 30


def local_date(value, tz):
    moment = value if isinstance(value, datetime.datetime) else datetime.datetime.fromisoformat(value)
    return moment.astimezone(tz).date().isoformat()


# Each day field has a number twin (20250601 for "2025-06-01") that queries use: NX-27017
# ignores an index when the value compared looks like a date, so a range over the text
# scans the collection (bench/README.md), while numbers use the index, in MongoDB as well.
DAY_FIELDS = {"date": "day", "due_date": "due_day", "received_date": "received_day",
              "resolved_date": "resolved_day"}


def day_number(iso_day):
    return int(iso_day[:4] + iso_day[5:7] + iso_day[8:10])


def with_day_numbers(doc):
    for text, number in DAY_FIELDS.items():
        if doc.get(text):
            doc[number] = day_number(doc[text])
    return doc


def fact_of(event, tz):
    """The normalised fact of a canonical event, or None for types no figure uses."""
    fact = _fact_of(event, tz)
    return with_day_numbers(fact) if fact else None


def _fact_of(event, tz):
    data, kind = event.get("data") or {}, event["event_type"]
    person = data.get("patient") or {}
    base = {"_id": event["event_id"], "type": kind, "patient_id": event.get("patient_id")}
    if kind == "PatientVisited":
        moment = datetime.datetime.fromisoformat(data["visited_at"])
        return {**base, "date": local_date(moment, tz), "ts": moment.timestamp(),
                "department": data.get("department"), "visit_type": data.get("visit_type"),
                "source_channel": data.get("source_channel"), "mrn": person.get("mrn"),
                "phone_key": phone_digits(person.get("phone")) or None, "region": person.get("region"),
                "age_band": age_band(person.get("birth_date"), moment.astimezone(tz).date())}
    if kind in ("PatientAdmitted", "PatientDischarged"):
        field = "admitted_at" if kind == "PatientAdmitted" else "discharged_at"
        return {**base, "date": local_date(data[field], tz), "department": data.get("department")}
    if kind == "ConsultationLogged":
        moment = datetime.datetime.fromisoformat(event["occurred_at"])
        return {**base, "date": local_date(moment, tz), "ts": moment.timestamp(),
                "department": data.get("department"), "channel": data.get("channel"),
                "agent_id": data.get("agent_id"), "mrn": person.get("mrn"),
                "phone_key": phone_digits(person.get("phone")) or None}
    if kind == "SatisfactionRecorded":
        return {**base, "date": local_date(event["occurred_at"], tz), "department": data.get("department"),
                "satisfaction": data.get("satisfaction")}
    return None


def entity_update(event, tz):
    """(collection, id, fields) for follow-up and complaint events: each type sets its own
    fields, so the entity ends the same in any order."""
    update = _entity_update(event, tz)
    if update:
        with_day_numbers(update[2])
    return update


def _entity_update(event, tz):
    data, kind = event.get("data") or {}, event["event_type"]
    if kind.startswith("FollowUp") and data.get("followup_id"):
        fields = {"due_date": local_date(data["due_at"], tz)} if data.get("due_at") else {}
        if kind == "FollowUpCompleted":
            fields["completed"] = 1
        elif kind == "FollowUpCancelled":
            fields["cancelled"] = 1
        fields["department"] = data.get("department")
        return "followups", data["followup_id"], fields
    if kind.startswith("Complaint") and data.get("complaint_id"):
        fields = {"received_date": local_date(data["received_at"], tz), "department": data.get("department"),
                  "category": data.get("category"),
                  "ack_due_ts": datetime.datetime.fromisoformat(data["ack_due_at"]).timestamp(),
                  "resolve_due_ts": datetime.datetime.fromisoformat(data["resolve_due_at"]).timestamp()}
        moment = datetime.datetime.fromisoformat(event["occurred_at"]).timestamp()
        if kind == "ComplaintAcknowledged":
            fields["acknowledged_ts"] = moment
        elif kind == "ComplaintResolved":
            fields["resolved_ts"] = moment
            fields["resolved_date"] = local_date(event["occurred_at"], tz)
        return "complaints", data["complaint_id"], fields
    return None


def entity_days(collection, before, fields):
    """The days whose partials an entity change touches: its dates before and after."""
    names = ("due_date",) if collection == "followups" else ("received_date", "resolved_date")
    return {doc.get(name) for doc in (before or {}, fields) for name in names} - {None}


AGE_BANDS = ((0, 17, "0-17"), (18, 39, "18-39"), (40, 59, "40-59"), (60, 79, "60-79"), (80, 200, "80+"))


def age_band(birth_date, on_day):
    """The patient's age band on the day of the visit (seed 002: age and region analysis)."""
    if not birth_date:
        return "unknown"
    born = datetime.date.fromisoformat(birth_date)
    age = on_day.year - born.year - ((on_day.month, on_day.day) < (born.month, born.day))
    return next((label for low, high, label in AGE_BANDS if low <= age <= high), "unknown")


def _count_by(items, key):
    counts = {}
    for item in items:
        value = item.get(key) or "unknown"
        counts[value] = counts.get(value, 0) + 1
    return counts


def rate(numerator, denominator):
    return round(numerator / denominator, 4) if denominator else None


class VisitIndex:
    """PROTOCOLS.md: a consultation converts when its person (same phone digits or same MRN)
    has a PatientVisited within 30 days after it. Visit times by phone key and by MRN make
    that two lookups, not a scan of every visit (a year holds a million)."""

    def __init__(self, visits):
        self.by_key = {}
        for visit in visits:
            for key in ("phone_key", "mrn"):
                if visit.get(key):
                    self.by_key.setdefault((key, visit[key]), []).append(visit["ts"])

    def converted(self, consultation):
        end = consultation["ts"] + CONVERSION_DAYS * 86400
        return any(consultation["ts"] <= ts <= end
                   for key in ("phone_key", "mrn") if consultation.get(key)
                   for ts in self.by_key.get((key, consultation[key]), ()))


def summary(visits, admissions, discharges, consultations, candidate_visits, followups,
            satisfactions, complaints, complaints_resolved_in_range):
    """The figures over one range. Every list holds the facts already filtered to the range
    (and department); `candidate_visits` are the visits a conversion may use."""
    return finish(partial(visits, admissions, discharges, consultations, candidate_visits, followups,
                          satisfactions, complaints, complaints_resolved_in_range))


# -- additive partials -------------------------------------------------------------------------
# Every figure is a ratio of sums over facts, and each fact belongs to one day (a consultation's
# conversion to the consultation's day), so the numerators of a range are the sums of its days'.
# The service keeps one partial per day and merges them: a year's summary reads 365 small
# documents instead of millions of facts (bench/analytics_scale.py).
COUNTS = ("visits", "first_visits", "return_visits", "admissions", "discharges", "consultations",
          "conversions", "followups_due", "followups_completed", "sat_sum", "sat_n",
          "complaints_opened", "complaints_resolved", "ack_ok", "resolve_ok", "sourced", "word_of_mouth")
DEPARTMENT_COUNTS = ("visits", "first_visits", "discharges", "complaints_opened", "sat_sum", "sat_n")


def partial(visits, admissions, discharges, consultations, candidate_visits, followups,
            satisfactions, complaints, complaints_resolved_in_range):
    """The additive numerators of the figures over the given facts (JSON-safe)."""
    first = [v for v in visits if v["visit_type"] == "first"]
    index = candidate_visits if isinstance(candidate_visits, VisitIndex) else VisitIndex(candidate_visits)
    outcome = [(c, index.converted(c)) for c in consultations]
    due = [f for f in followups if not f.get("cancelled")]
    scores = [s for s in satisfactions if s.get("satisfaction") is not None]
    with_source = [v for v in first if v.get("source_channel")]
    part = {
        "visits": len(visits), "first_visits": len(first),
        "return_visits": sum(v["visit_type"] == "return" for v in visits),
        "admissions": len(admissions), "discharges": len(discharges),
        "consultations": len(consultations), "conversions": sum(hit for _, hit in outcome),
        "followups_due": len(due), "followups_completed": sum(1 for f in due if f.get("completed")),
        "sat_sum": sum(s["satisfaction"] for s in scores), "sat_n": len(scores),
        "complaints_opened": len(complaints), "complaints_resolved": complaints_resolved_in_range,
        "ack_ok": sum(1 for c in complaints if c.get("acknowledged_ts") and c["acknowledged_ts"] <= c["ack_due_ts"]),
        "resolve_ok": sum(1 for c in complaints if c.get("resolved_ts") and c["resolved_ts"] <= c["resolve_due_ts"]),
        "sourced": len(with_source),
        "word_of_mouth": sum(v["source_channel"] in WORD_OF_MOUTH for v in with_source),
    }
    departments = {}

    def add(name, field, amount=1):
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
    part["by_source"] = _count_by(with_source, "source_channel")
    part["conversion_by_channel"] = _pairs_by(outcome, "channel")
    part["conversion_by_agent_id"] = _pairs_by(outcome, "agent_id")
    regions = {}
    for v in visits:
        regions.setdefault(v.get("region") or "unknown", [0, 0])[0] += 1
    for v in first:
        regions.setdefault(v.get("region") or "unknown", [0, 0])[1] += 1
    part["by_region"] = regions
    part["by_age_band"] = _count_by(visits, "age_band")
    part["categories"] = _count_by(complaints, "category")
    return part


def _pairs_by(outcome, key):
    groups = {}
    for consultation, hit in outcome:
        group = groups.setdefault(consultation.get(key) or "unknown", [0, 0])
        group[0] += 1
        group[1] += int(hit)
    return groups


def merge(parts):
    """The sum of partials: the partial of the union of their facts."""
    total = {name: 0 for name in COUNTS}
    maps = {"by_department": {}, "by_source": {}, "conversion_by_channel": {}, "conversion_by_agent_id": {},
            "by_region": {}, "by_age_band": {}, "categories": {}}
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


def finish(total):
    """The figures of PROTOCOLS.md § Analytics from merged numerators."""
    def mean(amount, n):
        return round(amount / n, 4) if n else None
    departments = total.get("by_department") or {}
    return {
        "visits": total["visits"], "first_visits": total["first_visits"],
        "return_visits": total["return_visits"],
        "admissions": total["admissions"], "discharges": total["discharges"],
        "consultations": total["consultations"], "conversions": total["conversions"],
        "conversion_rate": rate(total["conversions"], total["consultations"]),
        "followups_due": total["followups_due"], "followups_completed": total["followups_completed"],
        "followup_completion_rate": rate(total["followups_completed"], total["followups_due"]),
        "avg_satisfaction": mean(total["sat_sum"], total["sat_n"]),
        "complaints_opened": total["complaints_opened"], "complaints_resolved": total["complaints_resolved"],
        "ack_sla_rate": rate(total["ack_ok"], total["complaints_opened"]),
        "resolve_sla_rate": rate(total["resolve_ok"], total["complaints_opened"]),
        "word_of_mouth_share": rate(total["word_of_mouth"], total["sourced"]),
        "by_department": [{"department": name, "visits": d["visits"], "first_visits": d["first_visits"],
                           "discharges": d["discharges"], "complaints_opened": d["complaints_opened"],
                           "avg_satisfaction": mean(d["sat_sum"], d["sat_n"])}
                          for name, d in sorted(departments.items())],
        "by_source": [{"source_channel": k, "first_visits": n} for k, n in sorted((total.get("by_source") or {}).items())],
        # Seed 002: conversion by channel and by agent, patients by region and age.
        "conversion_by_channel": _conversions(total.get("conversion_by_channel"), "channel"),
        "conversion_by_agent": _conversions(total.get("conversion_by_agent_id"), "agent_id"),
        "by_region": [{"region": k, "visits": v[0], "first_visits": v[1]}
                      for k, v in sorted((total.get("by_region") or {}).items())],
        "by_age_band": [{"age_band": k, "visits": n} for k, n in sorted((total.get("by_age_band") or {}).items())],
        "top_complaint_categories": [{"category": k, "complaints": n} for k, n in sorted(
            (total.get("categories") or {}).items(), key=lambda item: (-item[1], item[0]))],
    }


def _conversions(groups, key):
    return [{key: name, "consultations": n, "conversions": c, "conversion_rate": rate(c, n)}
            for name, (n, c) in sorted((groups or {}).items())]
