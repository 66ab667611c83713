"""Follow-up rules (docs/RULES.md § Follow-ups) as pure functions; "now" and the
holiday calendar are parameters, so no test waits for a clock.

Tasks are *derived from the patient's events*, like intake's record: each event triggers a
re-plan over every event of the patient, and the store inserts what is missing (by a
deterministic id) and cancels what may no longer be called. Arrival order and duplicates
therefore do not change which tasks are pending.

Corrections and merges (docs/EVENTS.md v1.1). Events a correction voids (shared.corrections)
plan nothing. Each task fills a *slot*, (kind, anchor key): the visit's local day, the
admission, the consultation, the appointment; a person has one live task per slot.
`reconcile` compares the plan with the tasks the person already has:
- a pending task whose cause event is void is cancelled (reason "visit_cancelled",
  "admission_cancelled" or "discharge_cancelled"), unless the events that still count plan
  its slot due at the same time (another visit the same day): then nothing changes;
- a slot whose tasks were all cancelled that way (or as "merged") may be filled again by an
  event that counts, under a new id `<key>#<n>` (n = the tasks the slot held): a discharge
  after a DischargeCancelled gets new tasks, while a duplicate of a cancelled visit, which is
  void too, plans nothing. A task cancelled for another reason (consent, deceased) or done
  keeps its slot;
- after a merge, two live tasks in one slot (planned under both records) become one: a done
  task wins, else the earliest anchored; the other pending ones are cancelled as "merged".
"""
import dataclasses
import datetime
import uuid

from shared.contact import Contact, contact_of, parse_time  # noqa: F401 (re-exported)
from shared.corrections import Voids

KINDS = ("post_visit_call", "post_discharge_call", "recovery_check", "return_visit_reminder",
         "prospect_call", "no_show_call", "campaign_call")
PER_DEPARTMENT = ("post_visit_call", "post_discharge_call", "recovery_check", "return_visit_reminder")
OUTCOMES = ("reached", "unreachable", "declined")
OPEN = "pending"
# Cancelled for these reasons, a task no longer holds its slot (see `reconcile`).
VOID_REASONS = ("visit_cancelled", "admission_cancelled", "discharge_cancelled")
REPLANNABLE = (*VOID_REASONS, "merged")
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
    # docs/DOMAIN.md: call every outpatient the next day.
    "post_visit_call": Rule(1),
    # US CMS TCM: interactive contact within 2 business days of discharge.
    "post_discharge_call": Rule(2, business_days=True),
    "recovery_check": Rule(7, end_of_day=False),
    "return_visit_reminder": Rule(30, end_of_day=False),
    "prospect_call": Rule(1),
    "no_show_call": Rule(1),
    # A call campaign's task (services/campaigns, CampaignCallRequested): by the next day's end.
    "campaign_call": Rule(1),
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
    key: str = ""  # the anchor key: with `kind`, the task's slot
    doctor_id: str = None  # of the visit or discharge: service quality is figured per doctor
    script: dict = None  # {zh, en}: a campaign call's own script (the campaign's template)


def rule_for(rules, department_rules, kind, department):
    if kind in PER_DEPARTMENT and department in department_rules:
        return department_rules[department].get(kind, rules[kind])
    return rules[kind]


def plan(patient_id, events, tz, is_holiday, rules=None, department_rules=None, void=None):
    """Every task the patient's events call for, keyed by followup_id (empty when the
    patient may not be called). Events a correction voids call for nothing (`void`:
    `void_reasons(events)`, computed when not given)."""
    rules = rules or DEFAULT_RULES
    department_rules = department_rules or {}
    if not contact_of(events).callable:
        return {}
    void = void_reasons(events) if void is None else void
    planned = {}

    def add(kind, key, anchor, department, reason, cause, doctor_id=None, script=None):
        rule = rule_for(rules, department_rules, kind, department)
        if not rule.enabled:
            return
        followup_id = task_id(patient_id, kind, key)
        candidate = PlannedTask(followup_id, kind, due_at(rule, anchor, tz, is_holiday), anchor,
                                department, reason, cause, key, doctor_id, script)
        current = planned.get(followup_id)
        # Two visits the same day give one call: keep the earliest visit as its cause.
        if current is None or (candidate.anchor_at, cause) < (current.anchor_at, current.cause_event_id):
            planned[followup_id] = candidate

    # A campaign call requested before the person's latest opt-out is not made (campaigns).
    withdrawn = max((parse_time(e["occurred_at"]) for e in events
                     if e["event_type"] == "MarketingConsentWithdrawn"), default=None)
    for event in events:
        if event["event_id"] in void:
            continue
        data, kind = event["data"], event["event_type"]
        if kind == "PatientVisited":
            visited = parse_time(data["visited_at"])
            add("post_visit_call", visited.astimezone(tz).date().isoformat(), visited,
                data.get("department"), f"visit {data['visit_id']}", event["event_id"], data.get("doctor_id"))
        elif kind == "PatientDischarged" and data.get("disposition") != "deceased":
            discharged = parse_time(data["discharged_at"])
            for follow in ("post_discharge_call", "recovery_check", "return_visit_reminder"):
                add(follow, data["admission_id"], discharged, data.get("department"),
                    f"discharge {data['admission_id']}", event["event_id"], data.get("doctor_id"))
        elif kind == "ConsultationLogged":
            add("prospect_call", data["consultation_id"], parse_time(event["occurred_at"]),
                data.get("department"), f"consultation {data['consultation_id']}", event["event_id"])
        elif kind == "AppointmentNoShow":
            anchor = parse_time(data.get("starts_at") or event["occurred_at"])
            add("no_show_call", data["appointment_id"], anchor, data.get("department"),
                f"no-show {data['appointment_id']}", event["event_id"])
        elif kind == "CampaignCallRequested":  # one task per person and campaign
            requested = parse_time(data.get("requested_at") or event["occurred_at"])
            if withdrawn is None or requested > withdrawn:
                add("campaign_call", data["campaign_id"], requested, data.get("department"),
                    f"campaign {data['campaign_id']}", event["event_id"], script=data.get("script"))
    return planned


def void_reasons(events):
    """{event_id: why it no longer counts} for the events a correction voids."""
    events = list(events)
    voids = Voids(events)
    if not voids:
        return {}
    reasons = {}
    for event in events:
        if voids.voids(event):
            if event["event_type"] == "PatientVisited":
                reasons[event["event_id"]] = "visit_cancelled"
            elif event["data"].get("admission_id") in voids.admissions:
                reasons[event["event_id"]] = "admission_cancelled"
            else:
                reasons[event["event_id"]] = "discharge_cancelled"
    return reasons


@dataclasses.dataclass
class Reconciliation:
    cancel: list  # [(task, reason)]: pending tasks to cancel
    insert: list  # [PlannedTask]: new tasks, followup_id final


def history_matters(events, void):
    """Whether `reconcile` needs the person's stored tasks. Without a voided event and without
    a merge, no task can have lost its slot and no slot can hold two: every planned task is
    inserted under its first id, and the store skips those that exist (one read saved)."""
    return bool(void) or any(event["event_type"] == "PatientsMerged" for event in events)


def reconcile(patient_id, planned, tasks, void):
    """What to cancel and what to insert so the person's tasks match `planned` (the module's
    docstring gives the rules). `tasks` are every task of the person as stored (any status);
    `void` is `void_reasons` of the person's events. Pure: the store applies the answer."""
    planned = list(planned.values() if isinstance(planned, dict) else planned)
    by_slot = {(p.kind, p.key): p for p in planned}
    first_ids = {p.followup_id: p.key for p in planned}
    cancel = {}
    for task in tasks:
        cause = task.get("cause_event_id")
        if task["status"] == OPEN and cause in void:
            still = by_slot.get((task["kind"], _key_of(task, first_ids)))
            if still is None or still.due_at.timestamp() != task.get("planned_due_ts", task["due_ts"]):
                cancel[task["_id"]] = (task, void[cause])

    def status(task):
        return "cancelled" if task["_id"] in cancel else task["status"]

    def holds(task):
        reason = cancel[task["_id"]][1] if task["_id"] in cancel else task.get("cancel_reason")
        return status(task) != "cancelled" or reason not in REPLANNABLE

    slots = {}
    for task in tasks:
        key = _key_of(task, first_ids)
        if key is not None:
            slots.setdefault((task["kind"], key), []).append(task)
    for members in slots.values():  # two live tasks in a slot: a merge brought them together
        done = [task for task in members if status(task) == "done"]
        live = sorted((task for task in members if status(task) == OPEN),
                      key=lambda task: (task["anchor_ts"], task["_id"]))
        for task in live[0 if done else 1:]:
            cancel[task["_id"]] = (task, "merged")
    insert = []
    for task in planned:
        members = slots.get((task.kind, task.key), [])
        if any(holds(member) for member in members):
            continue
        if members:  # every earlier task of the slot was voided: a new one, under a new id
            task = dataclasses.replace(task, followup_id=task_id(patient_id, task.kind,
                                                                 f"{task.key}#{len(members)}"))
        insert.append(task)
    return Reconciliation(list(cancel.values()), insert)


def _key_of(task, first_ids):
    # Tasks stored before v1.1 have no anchor_key: their id is the first id of their slot.
    return task.get("anchor_key") or first_ids.get(task["_id"])


def is_overdue(status, due_ts, now_ts):
    return status == "pending" and due_ts < now_ts


def needs_recovery(satisfaction, complaint, low_survey_items=None):
    """Seed 003: a low score must open a complaint (service recovery), not vanish; so does a
    survey item scored low (survey.low_items)."""
    return ((satisfaction is not None and satisfaction <= 2) or bool((complaint or "").strip())
            or bool(low_survey_items))


def completion(task, outcome, now, max_attempts, tz):
    """What completing `task` with `outcome` does: ("retry", new due_at) while an unreachable
    patient has attempts left (tried again the next day), else ("done", None)."""
    attempts = task.get("attempts", 0) + 1
    if outcome == "unreachable" and attempts < max_attempts:
        return "retry", end_of_day(now.astimezone(tz).date() + datetime.timedelta(days=1), tz)
    return "done", None
