"""The service-quality figures (docs/RULES.md § Service quality), as pure functions over the
survey answers (followup's SurveyAnswered: one per task, during the call or by the link).

An answer counts on the local day it was given, for the department and the doctor of the
visit or discharge its task came from. Per item: how many answers scored it and their mean;
`overall`: every item score of the answers, and their mean.
"""

from services.analytics.domain import day_number, local_date, rate

DEFAULT_ORDER = ("doctor", "nurse", "environment", "waiting", "process")
LOW_SCORE = 2  # an answer with an item at or below this opened service recovery


def answer_of(event, tz):
    """The answer record of a SurveyAnswered, or None for any other event."""
    if event.get("event_type") != "SurveyAnswered":
        return None
    data = event.get("data") or {}
    scores = {
        key: value
        for key, value in (data.get("scores") or {}).items()
        if isinstance(value, int) and not isinstance(value, bool) and 1 <= value <= 5
    }
    if not scores:
        return None
    date = local_date(event["occurred_at"], tz)
    return {
        "_id": event["event_id"],
        "followup_id": data.get("followup_id"),
        "date": date,
        "day": day_number(date),
        "department": data.get("department"),
        "doctor_id": data.get("doctor_id"),
        "kind": data.get("kind"),
        "channel": data.get("channel"),
        "scores": scores,
    }


def _order(keys):
    known = [key for key in DEFAULT_ORDER if key in keys]
    return known + sorted(set(keys) - set(known))


def _summary(answers):
    per_item = {}
    for answer in answers:
        for key, value in answer["scores"].items():
            total = per_item.setdefault(key, [0, 0])
            total[0] += value
            total[1] += 1
    score_sum = sum(total[0] for total in per_item.values())
    score_n = sum(total[1] for total in per_item.values())
    return {
        "answers": len(answers),
        "overall": {"count": score_n, "average": rate(score_sum, score_n)},
        "items": [
            {"item": key, "count": per_item[key][1], "average": rate(*per_item[key])}
            for key in _order(per_item)
        ],
    }


def figures(answers):
    """The quality figures over the answers of a range (already filtered to a department
    when one is asked): totals, per department and per doctor."""
    answers = list(answers)
    result = _summary(answers)
    result["low_answers"] = sum(
        1 for a in answers if any(v <= LOW_SCORE for v in a["scores"].values())
    )
    result["by_channel"] = {
        channel: sum(1 for a in answers if a.get("channel") == channel)
        for channel in ("call", "link")
    }
    for group, field in (("by_department", "department"), ("by_doctor", "doctor_id")):
        grouped = {}
        for answer in answers:
            if answer.get(
                field
            ):  # a discharge names no doctor: its answers count per department only
                grouped.setdefault(answer[field], []).append(answer)
        result[group] = [
            {field: name, **_summary(members)} for name, members in sorted(grouped.items())
        ]
    return result
