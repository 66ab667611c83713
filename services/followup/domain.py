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
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from shared.contact import Contact, contact_of, parse_time  # noqa: F401 (re-exported)
from shared.corrections import Voids

# A task's kind: what the call is for.
POST_VISIT_CALL, POST_DISCHARGE_CALL = "post_visit_call", "post_discharge_call"
RECOVERY_CHECK, RETURN_VISIT_REMINDER = "recovery_check", "return_visit_reminder"
PROSPECT_CALL, NO_SHOW_CALL, CAMPAIGN_CALL = "prospect_call", "no_show_call", "campaign_call"
KINDS = (
    POST_VISIT_CALL,
    POST_DISCHARGE_CALL,
    RECOVERY_CHECK,
    RETURN_VISIT_REMINDER,
    PROSPECT_CALL,
    NO_SHOW_CALL,
    CAMPAIGN_CALL,
)
PER_DEPARTMENT = (POST_VISIT_CALL, POST_DISCHARGE_CALL, RECOVERY_CHECK, RETURN_VISIT_REMINDER)
# A call's outcome.
REACHED, UNREACHABLE, DECLINED = "reached", "unreachable", "declined"
OUTCOMES = (REACHED, UNREACHABLE, DECLINED)
# A task's status: pending until done or cancelled.
PENDING, DONE, CANCELLED = "pending", "done", "cancelled"
STATUSES = (PENDING, DONE, CANCELLED)
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
    POST_VISIT_CALL: Rule(1),
    # US CMS TCM: interactive contact within 2 business days of discharge.
    POST_DISCHARGE_CALL: Rule(2, business_days=True),
    RECOVERY_CHECK: Rule(7, end_of_day=False),
    RETURN_VISIT_REMINDER: Rule(30, end_of_day=False),
    PROSPECT_CALL: Rule(1),
    NO_SHOW_CALL: Rule(1),
    # A call campaign's task (services/campaigns, CampaignCallRequested): by the next day's end.
    CAMPAIGN_CALL: Rule(1),
}


def end_of_day(day: datetime.date, tz: datetime.tzinfo) -> datetime.datetime:
    return datetime.datetime.combine(day, datetime.time(23, 59, 59), tz)


def add_business_days(
    day: datetime.date, count: int, is_holiday: Callable[[datetime.date], bool]
) -> datetime.date:
    """`count` business days after `day`: weekends and public holidays do not count."""
    while count > 0:
        day += datetime.timedelta(days=1)
        if day.weekday() < 5 and not is_holiday(day):
            count -= 1
    return day


def due_at(
    rule: Rule,
    anchor: datetime.datetime,
    tz: datetime.tzinfo,
    is_holiday: Callable[[datetime.date], bool],
) -> datetime.datetime:
    """The due time of a task whose rule is `rule`, anchored at the aware datetime `anchor`."""
    if not rule.end_of_day:
        return anchor + datetime.timedelta(days=rule.days)
    day = anchor.astimezone(tz).date()
    if rule.business_days:
        day = add_business_days(day, rule.days, is_holiday)
    else:
        day += datetime.timedelta(days=rule.days)
    return end_of_day(day, tz)


def task_id(patient_id: str, kind: str, key: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"{patient_id}\x1f{kind}\x1f{key}"))


def event_id(followup_id: str, event_type: str, discriminator: str = "") -> str:
    return str(uuid.uuid5(NAMESPACE, f"{followup_id}\x1f{event_type}\x1f{discriminator}"))


@dataclasses.dataclass(frozen=True)
class PlannedTask:
    followup_id: str
    kind: str
    due_at: datetime.datetime
    anchor_at: datetime.datetime
    department: str | None
    reason: str
    cause_event_id: str
    key: str = ""  # the anchor key: with `kind`, the task's slot
    doctor_id: str | None = None  # of the visit or discharge: service quality is figured per doctor
    script: dict[str, str] | None = (
        None  # {zh, en}: a campaign call's own script (the campaign's template)
    )


def rule_for(
    rules: Mapping[str, Rule],
    department_rules: Mapping[str, Mapping[str, Rule]],
    kind: str,
    department: str | None,
) -> Rule:
    if kind in PER_DEPARTMENT and department is not None and department in department_rules:
        return department_rules[department].get(kind, rules[kind])
    return rules[kind]


def plan(
    patient_id: str,
    events: list[dict[str, Any]],
    tz: datetime.tzinfo,
    is_holiday: Callable[[datetime.date], bool],
    rules: Mapping[str, Rule] | None = None,
    department_rules: Mapping[str, Mapping[str, Rule]] | None = None,
    void: Mapping[str, str] | None = None,
) -> dict[str, PlannedTask]:
    """Every task the patient's events call for, keyed by followup_id (empty when the
    patient may not be called). Events a correction voids call for nothing (`void`:
    `void_reasons(events)`, computed when not given)."""
    rules = rules or DEFAULT_RULES
    department_rules = department_rules or {}
    if not contact_of(events).callable:
        return {}
    void = void_reasons(events) if void is None else void
    planned: dict[str, PlannedTask] = {}

    def add(
        kind: str,
        key: str,
        anchor: datetime.datetime,
        department: str | None,
        reason: str,
        cause: str,
        doctor_id: str | None = None,
        script: dict[str, str] | None = None,
    ) -> None:
        rule = rule_for(rules, department_rules, kind, department)
        if not rule.enabled:
            return
        followup_id = task_id(patient_id, kind, key)
        candidate = PlannedTask(
            followup_id,
            kind,
            due_at(rule, anchor, tz, is_holiday),
            anchor,
            department,
            reason,
            cause,
            key,
            doctor_id,
            script,
        )
        current = planned.get(followup_id)
        # Two visits the same day give one call: keep the earliest visit as its cause.
        if current is None or (candidate.anchor_at, cause) < (
            current.anchor_at,
            current.cause_event_id,
        ):
            planned[followup_id] = candidate

    # A campaign call requested before the person's latest opt-out is not made (campaigns).
    withdrawn = max(
        (
            parse_time(e["occurred_at"])
            for e in events
            if e["event_type"] == "MarketingConsentWithdrawn"
        ),
        default=None,
    )
    for event in events:
        if event["event_id"] in void:
            continue
        data, kind = event["data"], event["event_type"]
        if kind == "PatientVisited":
            visited = parse_time(data["visited_at"])
            add(
                POST_VISIT_CALL,
                visited.astimezone(tz).date().isoformat(),
                visited,
                data.get("department"),
                f"visit {data['visit_id']}",
                event["event_id"],
                data.get("doctor_id"),
            )
        elif kind == "PatientDischarged" and data.get("disposition") != "deceased":
            discharged = parse_time(data["discharged_at"])
            for follow in (POST_DISCHARGE_CALL, RECOVERY_CHECK, RETURN_VISIT_REMINDER):
                add(
                    follow,
                    data["admission_id"],
                    discharged,
                    data.get("department"),
                    f"discharge {data['admission_id']}",
                    event["event_id"],
                    data.get("doctor_id"),
                )
        elif kind == "ConsultationLogged":
            add(
                PROSPECT_CALL,
                data["consultation_id"],
                parse_time(event["occurred_at"]),
                data.get("department"),
                f"consultation {data['consultation_id']}",
                event["event_id"],
            )
        elif kind == "AppointmentNoShow":
            anchor = parse_time(data.get("starts_at") or event["occurred_at"])
            add(
                NO_SHOW_CALL,
                data["appointment_id"],
                anchor,
                data.get("department"),
                f"no-show {data['appointment_id']}",
                event["event_id"],
            )
        elif kind == "CampaignCallRequested":  # one task per person and campaign
            requested = parse_time(data.get("requested_at") or event["occurred_at"])
            if withdrawn is None or requested > withdrawn:
                add(
                    CAMPAIGN_CALL,
                    data["campaign_id"],
                    requested,
                    data.get("department"),
                    f"campaign {data['campaign_id']}",
                    event["event_id"],
                    script=data.get("script"),
                )
    return planned


def void_reasons(events: Iterable[dict[str, Any]]) -> dict[str, str]:
    """{event_id: why it no longer counts} for the events a correction voids."""
    events = list(events)
    voids = Voids(events)
    if not voids:
        return {}
    reasons: dict[str, str] = {}
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
    cancel: list[tuple[dict[str, Any], str]]  # pending tasks to cancel, each with its reason
    insert: list[PlannedTask]  # new tasks, followup_id final


def history_matters(events: Iterable[Mapping[str, Any]], void: Mapping[str, str]) -> bool:
    """Whether `reconcile` needs the person's stored tasks. Without a voided event and without
    a merge, no task can have lost its slot and no slot can hold two: every planned task is
    inserted under its first id, and the store skips those that exist (one read saved)."""
    return bool(void) or any(event["event_type"] == "PatientsMerged" for event in events)


def reconcile(
    patient_id: str,
    planned: Mapping[str, PlannedTask] | Iterable[PlannedTask],
    tasks: list[dict[str, Any]],
    void: Mapping[str, str],
) -> Reconciliation:
    """What to cancel and what to insert so the person's tasks match `planned` (the module's
    docstring gives the rules). `tasks` are every task of the person as stored (any status);
    `void` is `void_reasons` of the person's events. Pure: the store applies the answer."""
    planned = list(planned.values() if isinstance(planned, dict) else planned)
    by_slot = {(p.kind, p.key): p for p in planned}
    first_ids = {p.followup_id: p.key for p in planned}
    cancel: dict[str, tuple[dict[str, Any], str]] = {}
    for task in tasks:
        cause = task.get("cause_event_id", "")  # "" is no event's id: in no `void`
        if task["status"] == PENDING and cause in void:
            still = by_slot.get((task["kind"], _key_of(task, first_ids)))
            if still is None or still.due_at.timestamp() != task.get(
                "planned_due_ts", task["due_ts"]
            ):
                cancel[task["_id"]] = (task, void[cause])

    def status(task: Mapping[str, Any]) -> str:
        return CANCELLED if task["_id"] in cancel else task["status"]

    def holds(task: Mapping[str, Any]) -> bool:
        reason = cancel[task["_id"]][1] if task["_id"] in cancel else task.get("cancel_reason")
        return status(task) != CANCELLED or reason not in REPLANNABLE

    slots: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for task in tasks:
        key = _key_of(task, first_ids)
        if key is not None:
            slots.setdefault((task["kind"], key), []).append(task)
    for members in slots.values():  # two live tasks in a slot: a merge brought them together
        done = [task for task in members if status(task) == DONE]
        live = sorted(
            (task for task in members if status(task) == PENDING),
            key=lambda task: (task["anchor_ts"], task["_id"]),
        )
        for task in live[0 if done else 1 :]:
            cancel[task["_id"]] = (task, "merged")
    insert: list[PlannedTask] = []
    for task in planned:
        members = slots.get((task.kind, task.key), [])
        if any(holds(member) for member in members):
            continue
        if members:  # every earlier task of the slot was voided: a new one, under a new id
            task = dataclasses.replace(
                task, followup_id=task_id(patient_id, task.kind, f"{task.key}#{len(members)}")
            )
        insert.append(task)
    return Reconciliation(list(cancel.values()), insert)


def _key_of(task: Mapping[str, Any], first_ids: Mapping[str, str]) -> str | None:
    # Tasks stored before v1.1 have no anchor_key: their id is the first id of their slot.
    return task.get("anchor_key") or first_ids.get(task["_id"])


def is_overdue(status: str, due_ts: float, now_ts: float) -> bool:
    return status == PENDING and due_ts < now_ts


def needs_recovery(
    satisfaction: int | None,
    complaint_text: str | None,
    low_survey_items: Mapping[str, int] | None = None,
) -> bool:
    """Seed 003: a low score must open a complaint (service recovery), not vanish; so does a
    survey item scored low (survey.low_items)."""
    return (
        (satisfaction is not None and satisfaction <= 2)
        or bool((complaint_text or "").strip())
        or bool(low_survey_items)
    )


def completion(
    task: Mapping[str, Any],
    outcome: str,
    now: datetime.datetime,
    max_attempts: int,
    tz: datetime.tzinfo,
) -> tuple[str, datetime.datetime | None]:
    """What completing `task` with `outcome` does: ("retry", new due_at) while an unreachable
    patient has attempts left (tried again the next day), else ("done", None)."""
    attempts = task.get("attempts", 0) + 1
    if outcome == UNREACHABLE and attempts < max_attempts:
        return "retry", end_of_day(now.astimezone(tz).date() + datetime.timedelta(days=1), tz)
    return "done", None
