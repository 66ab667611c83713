"""Follow-up rules (contract/PROTOCOLS.md § Follow-ups) as pure functions; "now" and the
holiday calendar are parameters, so no test waits for a clock.

Tasks are *derived from the patient's events*, like intake's record: each event triggers a
re-plan over every event of the patient, and the store inserts what is missing (by a
deterministic id) and cancels what may no longer be called. Arrival order and duplicates
therefore do not change which tasks exist.
"""
import dataclasses
import datetime
import uuid

from shared.contact import Contact, contact_of, parse_time  # noqa: F401 (re-exported)

KINDS = ("post_visit_call", "post_discharge_call", "recovery_check", "return_visit_reminder",
         "prospect_call", "no_show_call")
PER_DEPARTMENT = ("post_visit_call", "post_discharge_call", "recovery_check", "return_visit_reminder")
OUTCOMES = ("reached", "unreachable", "declined")
NAMESPACE = uuid.UUID("0c9a1f3e-5d7b-4b8e-a1c2-7f6e5d4c3b2a")


@dataclasses.dataclass(frozen=True)
class Rule:
    """When a task of one kind is due: `days` after its anchor, counted in calendar or
    business days, at the end of that local day or at the exact time."""

    days: int
    business_days: bool = False
    end_of_day: bool = True
    enabled: bool = True


DEFAULT_RULES = {
    # seed 004 / DOMAIN.md: call every outpatient the next day.
    "post_visit_call": Rule(1),
    # US CMS TCM: interactive contact within 2 business days of discharge.
    "post_discharge_call": Rule(2, business_days=True),
    "recovery_check": Rule(7, end_of_day=False),
    "return_visit_reminder": Rule(30, end_of_day=False),
    "prospect_call": Rule(1),
    "no_show_call": Rule(1),
}


def end_of_day(day, tz):
    return datetime.datetime.combine(day, datetime.time(23, 59, 59), tz)


def add_business_days(day, count, is_holiday):
    """`count` business days after `day`: weekends and public holidays do not count."""
    while count > 0:
        day += datetime.timedelta(days=1)
        if day.weekday() < 5 and not is_holiday(day):
            count -= 1
    return day


def due_at(rule, anchor, tz, is_holiday):
    """The due time of a task whose rule is `rule`, anchored at the aware datetime `anchor`."""
    if not rule.end_of_day:
        return anchor + datetime.timedelta(days=rule.days)
    day = anchor.astimezone(tz).date()
    if rule.business_days:
        day = add_business_days(day, rule.days, is_holiday)
    else:
        day += datetime.timedelta(days=rule.days)
    return end_of_day(day, tz)


def task_id(patient_id, kind, key):
    return str(uuid.uuid5(NAMESPACE, f"{patient_id}\x1f{kind}\x1f{key}"))


def event_id(followup_id, event_type, discriminator=""):
    return str(uuid.uuid5(NAMESPACE, f"{followup_id}\x1f{event_type}\x1f{discriminator}"))


@dataclasses.dataclass(frozen=True)
class PlannedTask:
    followup_id: str
    kind: str
    due_at: datetime.datetime
    anchor_at: datetime.datetime
    department: str
    reason: str
    cause_event_id: str


def rule_for(rules, department_rules, kind, department):
    if kind in PER_DEPARTMENT and department in department_rules:
        return department_rules[department].get(kind, rules[kind])
    return rules[kind]


def plan(patient_id, events, tz, is_holiday, rules=None, department_rules=None):
    """Every task the patient's events call for, keyed by followup_id (empty when the
    patient may not be called)."""
    rules = rules or DEFAULT_RULES
    department_rules = department_rules or {}
    if not contact_of(events).callable:
        return {}
    planned = {}

    def add(kind, key, anchor, department, reason, cause):
        rule = rule_for(rules, department_rules, kind, department)
        if not rule.enabled:
            return
        followup_id = task_id(patient_id, kind, key)
        candidate = PlannedTask(followup_id, kind, due_at(rule, anchor, tz, is_holiday), anchor,
                                department, reason, cause)
        current = planned.get(followup_id)
        # Two visits the same day give one call: keep the earliest visit as its cause.
        if current is None or (candidate.anchor_at, cause) < (current.anchor_at, current.cause_event_id):
            planned[followup_id] = candidate

    for event in events:
        data, kind = event["data"], event["event_type"]
        if kind == "PatientVisited":
            visited = parse_time(data["visited_at"])
            add("post_visit_call", visited.astimezone(tz).date().isoformat(), visited,
                data.get("department"), f"visit {data['visit_id']}", event["event_id"])
        elif kind == "PatientDischarged" and data.get("disposition") != "deceased":
            discharged = parse_time(data["discharged_at"])
            for follow in ("post_discharge_call", "recovery_check", "return_visit_reminder"):
                add(follow, data["admission_id"], discharged, data.get("department"),
                    f"discharge {data['admission_id']}", event["event_id"])
        elif kind == "ConsultationLogged":
            add("prospect_call", data["consultation_id"], parse_time(event["occurred_at"]),
                data.get("department"), f"consultation {data['consultation_id']}", event["event_id"])
        elif kind == "AppointmentNoShow":
            anchor = parse_time(data.get("starts_at") or event["occurred_at"])
            add("no_show_call", data["appointment_id"], anchor, data.get("department"),
                f"no-show {data['appointment_id']}", event["event_id"])
    return planned


def is_overdue(status, due_ts, now_ts):
    return status == "pending" and due_ts < now_ts


def needs_recovery(satisfaction, complaint):
    """Seed 003: a low score must open a complaint (service recovery), not vanish."""
    return (satisfaction is not None and satisfaction <= 2) or bool((complaint or "").strip())


def completion(task, outcome, now, max_attempts, tz):
    """What completing `task` with `outcome` does: ("retry", new due_at) while an unreachable
    patient has attempts left (tried again the next day), else ("done", None)."""
    attempts = task.get("attempts", 0) + 1
    if outcome == "unreachable" and attempts < max_attempts:
        return "retry", end_of_day(now.astimezone(tz).date() + datetime.timedelta(days=1), tz)
    return "done", None
