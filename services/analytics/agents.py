"""The agents' figures and their assessment against targets (docs/RULES.md § Agents), as
pure functions over normalised work records.

A work record is kept per event (deduplicated by event_id, like every fact):
- a *call*: each outcome an agent recorded on a follow-up task, from followup's
  FollowUpAttempted (an unreachable attempt; the task is tried again) and FollowUpCompleted
  (the task is done). It counts on the local day it was recorded and is *on time* when it was
  recorded no later than the task's `due_at` at that moment (the event's data.due_at: a
  retry's new due time applies to the next attempt).
- a *resolution*: a ComplaintResolved, for the agent who resolved it (`actor`), on the local
  day of the resolution; *in SLA* when no later than the complaint's `resolve_due_at`.
Consultations and their conversions come from the summary's `conversion_by_agent` (the same
definition as the `conversions` figure), for the agent whose username is the consultation's
`agent_id`.
"""

import datetime

from services.analytics.domain import day_number, local_date, rate

ITEM_FIELDS = (
    "agent",
    "calls",
    "reached",
    "unreachable",
    "declined",
    "reach_rate",
    "on_time_rate",
    "avg_satisfaction",
    "complaints_resolved",
    "complaints_resolved_in_sla_rate",
    "consultations",
    "conversions",
)
OUTCOMES = ("reached", "unreachable", "declined")
CALL_TYPES = ("FollowUpAttempted", "FollowUpCompleted")
# Figures a target may be set for, each "at least". followup_completion_rate is the team's
# only: tasks are due for the center, not for one agent.
TARGET_FIGURES = (
    "reach_rate",
    "on_time_rate",
    "avg_satisfaction",
    "complaints_resolved_in_sla_rate",
    "conversion_rate",
    "followup_completion_rate",
)
DEFAULT_TARGETS = {
    "reach_rate": 0.9,
    "on_time_rate": 0.95,
    "avg_satisfaction": 4.5,
    "complaints_resolved_in_sla_rate": 0.95,
    "followup_completion_rate": 0.95,
}
TEAM_ONLY = ("followup_completion_rate",)


def _ts(value):
    return datetime.datetime.fromisoformat(value).timestamp()


def work_of(event, tz):
    """The work record of a canonical event, or None for events that are nobody's work."""
    data, kind = event.get("data") or {}, event.get("event_type")
    if kind in CALL_TYPES:
        agent = data.get("completed_by") or data.get("agent")
        if not agent or data.get("outcome") not in OUTCOMES:
            return None
        recorded = event["occurred_at"]
        record = {
            "_id": event["event_id"],
            "kind": "call",
            "agent": agent,
            "outcome": data["outcome"],
            "date": local_date(recorded, tz),
            "followup_id": data.get("followup_id"),
            "on_time": bool(data.get("due_at")) and _ts(recorded) <= _ts(data["due_at"]),
            "satisfaction": data.get("satisfaction") if kind == "FollowUpCompleted" else None,
        }
    elif kind == "ComplaintResolved":
        if not data.get("actor") or not data.get("resolve_due_at"):
            return None
        resolved = event["occurred_at"]
        record = {
            "_id": event["event_id"],
            "kind": "resolution",
            "agent": data["actor"],
            "date": local_date(resolved, tz),
            "complaint_id": data.get("complaint_id"),
            "in_sla": _ts(resolved) <= _ts(data["resolve_due_at"]),
        }
    else:
        return None
    record["day"] = day_number(record["date"])
    return record


def _blank(agent):
    return {
        "calls": 0,
        "reached": 0,
        "unreachable": 0,
        "declined": 0,
        "on_time": 0,
        "sat_sum": 0,
        "sat_n": 0,
        "resolved": 0,
        "resolved_in_sla": 0,
        "consultations": 0,
        "conversions": 0,
        "agent": agent,
    }


def _add(into, work):
    if work["kind"] == "call":
        into["calls"] += 1
        into[work["outcome"]] += 1
        into["on_time"] += int(bool(work.get("on_time")))
        if isinstance(work.get("satisfaction"), int):
            into["sat_sum"] += work["satisfaction"]
            into["sat_n"] += 1
    elif work["kind"] == "resolution":
        into["resolved"] += 1
        into["resolved_in_sla"] += int(bool(work.get("in_sla")))


def _finish(sums):
    return {
        "agent": sums["agent"],
        "calls": sums["calls"],
        "reached": sums["reached"],
        "unreachable": sums["unreachable"],
        "declined": sums["declined"],
        "reach_rate": rate(sums["reached"], sums["calls"]),
        "on_time_rate": rate(sums["on_time"], sums["calls"]),
        "avg_satisfaction": rate(sums["sat_sum"], sums["sat_n"]),
        "complaints_resolved": sums["resolved"],
        "complaints_resolved_in_sla_rate": rate(sums["resolved_in_sla"], sums["resolved"]),
        "consultations": sums["consultations"],
        "conversions": sums["conversions"],
    }


def figures(work, conversion_by_agent=(), only=None):
    """{"items": one per agent, by name; "team": the sums of every agent's work}.
    `work`: the range's work records; `conversion_by_agent`: the summary's list of
    {agent_id, consultations, conversions}; `only`: one agent's name (their item alone, zeros
    when they did nothing: an agent sees their own line and nobody else's)."""
    sums = {}
    for record in work:
        if only is None or record["agent"] == only:
            _add(sums.setdefault(record["agent"], _blank(record["agent"])), record)
    for row in conversion_by_agent or ():
        name = row.get("agent_id")
        if name in (None, "unknown") or (only is not None and name != only):
            continue  # a consultation with no agent is nobody's work
        into = sums.setdefault(name, _blank(name))
        into["consultations"] += row.get("consultations", 0)
        into["conversions"] += row.get("conversions", 0)
    if only is not None:
        sums.setdefault(only, _blank(only))
    team = _blank(None)
    for one in sums.values():
        for key, value in one.items():
            if key != "agent":
                team[key] += value
    team_line = _finish(team)
    del team_line["agent"]
    return {"items": [_finish(sums[name]) for name in sorted(sums)], "team": team_line}


def targets_of(configured):
    """The targets in force: the defaults, overridden by the configuration (None: no target)."""
    merged = dict(DEFAULT_TARGETS)
    merged.update(configured or {})
    return {figure: value for figure, value in merged.items() if value is not None}


def assess(line, targets, team=False):
    """{figure: "met" | "missed" | None} for each target: met when the figure is at least its
    target, None when the figure has no value (nothing to divide by)."""
    verdicts = {}
    for figure, target in targets.items():
        if figure in TEAM_ONLY and not team:
            continue
        value = _value(line, figure)
        verdicts[figure] = None if value is None else ("met" if value >= target else "missed")
    return verdicts


def _value(line, figure):
    if figure == "conversion_rate":
        return rate(line.get("conversions", 0), line.get("consultations", 0))
    return line.get(figure)


def with_assessment(result, targets, team_extra=None):
    """`figures`' result with each line's assessment, and the team's extra figures
    (followup_completion_rate from the summary) on the team line."""
    for item in result["items"]:
        item["assessment"] = assess(item, targets)
    if "team" in result:
        result["team"].update(team_extra or {})
        result["team"]["assessment"] = assess(result["team"], targets, team=True)
    result["targets"] = targets
    return result
