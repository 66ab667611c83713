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


def fact_of(event, tz):
    """The normalised fact of a canonical event, or None for types no figure uses."""
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


def converted(consultation, visits):
    """PROTOCOLS.md: a consultation converts when its person (same phone digits or same MRN)
    has a PatientVisited within 30 days after it."""
    end = consultation["ts"] + CONVERSION_DAYS * 86400
    return any(consultation["ts"] <= v["ts"] <= end and (
        (consultation.get("phone_key") and v.get("phone_key") == consultation["phone_key"])
        or (consultation.get("mrn") and v.get("mrn") == consultation["mrn"])) for v in visits)


def summary(visits, admissions, discharges, consultations, candidate_visits, followups,
            satisfactions, complaints, complaints_resolved_in_range):
    """The figures over one range. Every list holds the facts already filtered to the range
    (and department); `candidate_visits` are the visits a conversion may use."""
    first = [v for v in visits if v["visit_type"] == "first"]
    outcome = [(c, converted(c, candidate_visits)) for c in consultations]
    conversions = sum(hit for _, hit in outcome)
    due = [f for f in followups if not f.get("cancelled")]
    completed = [f for f in due if f.get("completed")]
    scores = [s["satisfaction"] for s in satisfactions if s.get("satisfaction") is not None]
    with_source = [v for v in first if v.get("source_channel")]
    departments = sorted({f["department"] for f in visits + discharges + satisfactions + complaints
                          if f.get("department")} | {v["department"] for v in first if v.get("department")})
    by_department = []
    for name in departments:
        dept_scores = [s["satisfaction"] for s in satisfactions if s.get("department") == name
                       and s.get("satisfaction") is not None]
        by_department.append({
            "department": name,
            "visits": sum(v["department"] == name for v in visits),
            "first_visits": sum(v["department"] == name for v in first),
            "discharges": sum(d["department"] == name for d in discharges),
            "complaints_opened": sum(c.get("department") == name for c in complaints),
            "avg_satisfaction": round(sum(dept_scores) / len(dept_scores), 4) if dept_scores else None})
    sources = {}
    for visit in with_source:
        sources[visit["source_channel"]] = sources.get(visit["source_channel"], 0) + 1
    return {
        "visits": len(visits), "first_visits": len(first),
        "return_visits": sum(v["visit_type"] == "return" for v in visits),
        "admissions": len(admissions), "discharges": len(discharges),
        "consultations": len(consultations), "conversions": conversions,
        "conversion_rate": rate(conversions, len(consultations)),
        "followups_due": len(due), "followups_completed": len(completed),
        "followup_completion_rate": rate(len(completed), len(due)),
        "avg_satisfaction": round(sum(scores) / len(scores), 4) if scores else None,
        "complaints_opened": len(complaints), "complaints_resolved": complaints_resolved_in_range,
        "ack_sla_rate": rate(sum(1 for c in complaints if c.get("acknowledged_ts")
                                 and c["acknowledged_ts"] <= c["ack_due_ts"]), len(complaints)),
        "resolve_sla_rate": rate(sum(1 for c in complaints if c.get("resolved_ts")
                                     and c["resolved_ts"] <= c["resolve_due_ts"]), len(complaints)),
        "word_of_mouth_share": rate(sum(v["source_channel"] in WORD_OF_MOUTH for v in with_source),
                                    len(with_source)),
        "by_department": by_department,
        "by_source": [{"source_channel": k, "first_visits": n} for k, n in sorted(sources.items())],
        # Seed 002: conversion by channel and by agent, patients by region and age.
        "conversion_by_channel": _conversion_by(outcome, "channel"),
        "conversion_by_agent": _conversion_by(outcome, "agent_id"),
        "by_region": [{"region": k, "visits": n, "first_visits": _count_by(first, "region").get(k, 0)}
                      for k, n in sorted(_count_by(visits, "region").items())],
        "by_age_band": [{"age_band": k, "visits": n} for k, n in sorted(_count_by(visits, "age_band").items())],
        "top_complaint_categories": [{"category": k, "complaints": n} for k, n in sorted(
            _count_by(complaints, "category").items(), key=lambda item: (-item[1], item[0]))],
    }


def _conversion_by(outcome, key):
    groups = {}
    for consultation, hit in outcome:
        group = groups.setdefault(consultation.get(key) or "unknown", [0, 0])
        group[0] += 1
        group[1] += hit
    return [{key if key != "agent_id" else "agent_id": name, "consultations": n, "conversions": c,
             "conversion_rate": rate(c, n)} for name, (n, c) in sorted(groups.items())]
