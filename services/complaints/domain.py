"""Complaint rules (docs/RULES.md § Complaints) as pure functions.

Seeds 001/003/004: reply within 24 h, resolve within 48 h; a weekly service-opinion report.
States: open -> acknowledged -> resolved; any unresolved -> escalated (by a manager, or by
itself when a deadline passes, which also records one SLA breach per deadline).
"""

import csv
import datetime
import io
import statistics
import uuid
from collections.abc import Iterable, Mapping
from typing import Any

from shared import aliases

NAMESPACE = uuid.UUID("5b0e7c2d-9a41-4f1e-8c3d-2e6f7a8b9c0d")
SEVERITIES = ("low", "medium", "high")
CHANNELS = ("phone", "letter", "visit", "web", "wechat", "email", "follow_up", "other")
DEFAULT_CATEGORIES = (
    "attitude",
    "waiting_time",
    "billing",
    "medical_quality",
    "environment",
    "other",
)
DEFAULT_DEADLINES = {"low": (24, 48), "medium": (24, 48), "high": (2, 24)}  # hours: (ack, resolve)

# A complaint's statuses; CANCELLED only by an erasure of the person (privacy.py).
OPEN, ACKNOWLEDGED, ESCALATED, RESOLVED = "open", "acknowledged", "escalated", "resolved"
CANCELLED = "cancelled"
STATUSES = (OPEN, ACKNOWLEDGED, RESOLVED, ESCALATED)  # what staff list and filter by
UNRESOLVED = (OPEN, ACKNOWLEDGED, ESCALATED)
# Statuses no deadline applies to any more.
CLOSED = (RESOLVED, CANCELLED)

# action -> {from status: to status}. Escalation keeps its status until the complaint is
# resolved; acknowledging an escalated complaint records the reply but keeps it escalated.
TRANSITIONS = {
    "acknowledge": {OPEN: ACKNOWLEDGED, ESCALATED: ESCALATED},
    "resolve": {ACKNOWLEDGED: RESOLVED, ESCALATED: RESOLVED},
    "escalate": {OPEN: ESCALATED, ACKNOWLEDGED: ESCALATED},
}


class IllegalTransition(Exception):
    pass


def deadlines(
    received_at: datetime.datetime,
    severity: str,
    table: Mapping[str, tuple[float, float]] | None = None,
) -> tuple[datetime.datetime, datetime.datetime]:
    ack_hours, resolve_hours = (table or DEFAULT_DEADLINES)[severity]
    return (
        received_at + datetime.timedelta(hours=ack_hours),
        received_at + datetime.timedelta(hours=resolve_hours),
    )


def next_status(action: str, complaint: dict[str, Any]) -> str:
    """The status after `action`, or IllegalTransition (the gateway answers 409)."""
    status = complaint["status"]
    target = TRANSITIONS[action].get(status)
    if target is None or (action == "acknowledge" and complaint.get("acknowledged_ts")):
        raise IllegalTransition(
            f"cannot {action} a complaint that is {status}"
            + (" and already acknowledged" if complaint.get("acknowledged_ts") else "")
        )
    return target


def breached_deadlines(complaint: dict[str, Any], now_ts: float) -> list[str]:
    """The deadlines that have passed unmet and are not yet recorded as breached."""
    due: list[str] = []
    if complaint["status"] in CLOSED:
        return due
    if (
        not complaint.get("acknowledged_ts")
        and complaint["ack_due_ts"] < now_ts
        and complaint.get("ack_breach") != "breached"
    ):
        due.append("acknowledge")
    if complaint["resolve_due_ts"] < now_ts and complaint.get("resolve_breach") != "breached":
        due.append("resolve")
    return due


def severity_for_recovery(satisfaction: int | None) -> str:
    """Service recovery (docs/DOMAIN.md): the worst score is urgent, the rest are ordinary."""
    return "high" if satisfaction == 1 else "medium"


def recovery_score(data: dict[str, Any]) -> int | None:
    """The lowest score behind a ServiceRecoveryRequested: the call's satisfaction or a survey
    item scored low (`low_items`, v1.1); None when a complaint text alone asked for it."""
    scores = [data.get("satisfaction"), *((data.get("low_items") or {}).values())]
    return min((s for s in scores if isinstance(s, int) and not isinstance(s, bool)), default=None)


def recovery_description(data: dict[str, Any]) -> str:
    """The complaint's text: the patient's complaint, else what scored low."""
    if data.get("complaint"):
        return data["complaint"]
    parts = []
    if data.get("satisfaction") is not None:
        parts.append(f"满意度 {data['satisfaction']} 分")
    if data.get("low_items"):
        parts.append(
            "满意度调查低分："
            + "，".join(f"{item} {score} 分" for item, score in data["low_items"].items())
        )
    text = "；".join(parts) + f"（随访 {data.get('kind')}）"
    return text + (f"：{data['notes']}" if data.get("notes") else "")


# -- merged patients (PatientsMerged) ------------------------------------------------------------
# The alias rules are shared by every service (shared/aliases.py).
resolve_alias = aliases.resolve
merge_is_usable = aliases.merge_is_usable


def complaint_id_for_followup(followup_id: str) -> str:
    return str(uuid.uuid5(NAMESPACE, f"followup\x1f{followup_id}"))


def event_id(complaint_id: str, event_type: str, discriminator: str = "") -> str:
    return str(uuid.uuid5(NAMESPACE, f"{complaint_id}\x1f{event_type}\x1f{discriminator}"))


def week_bounds(
    week_start: datetime.date, tz: datetime.tzinfo
) -> tuple[datetime.datetime, datetime.datetime]:
    start = datetime.datetime.combine(week_start, datetime.time(0, 0), tz)
    return start, start + datetime.timedelta(days=7)


def weekly_report(
    complaints: Iterable[dict[str, Any]],
    week_start: datetime.date,
    tz: datetime.tzinfo,
    now: datetime.datetime,
) -> dict[str, Any]:
    """The weekly service-opinion report over the complaints received in the week starting
    `week_start` (a date, hospital zone): per category and department, counts, reply and
    resolution times (hours), SLA results, and the items still open."""
    start, end = week_bounds(week_start, tz)
    rows: dict[tuple[str, str], dict[str, Any]] = {}
    for c in complaints:
        if not start.timestamp() <= c["received_ts"] < end.timestamp():
            continue
        key = (c["category"], c.get("department") or "")
        row = rows.setdefault(
            key,
            {
                "category": key[0],
                "department": key[1],
                "received": 0,
                "acknowledged": 0,
                "resolved": 0,
                "escalated": 0,
                "ack_hours": [],
                "resolve_hours": [],
                "ack_sla_met": 0,
                "resolve_sla_met": 0,
                "open_items": [],
            },
        )
        row["received"] += 1
        if c.get("acknowledged_ts"):
            row["acknowledged"] += 1
            row["ack_hours"].append((c["acknowledged_ts"] - c["received_ts"]) / 3600)
            row["ack_sla_met"] += c["acknowledged_ts"] <= c["ack_due_ts"]
        if c.get("resolved_ts"):
            row["resolved"] += 1
            row["resolve_hours"].append((c["resolved_ts"] - c["received_ts"]) / 3600)
            row["resolve_sla_met"] += c["resolved_ts"] <= c["resolve_due_ts"]
        if c.get("escalated_ts"):
            row["escalated"] += 1
        if c["status"] not in CLOSED:
            row["open_items"].append(
                {
                    "complaint_id": c["_id"],
                    "status": c["status"],
                    "severity": c["severity"],
                    "resolve_due_at": c["resolve_due_at"],
                    "overdue": c["resolve_due_ts"] < now.timestamp(),
                }
            )
    out = []
    for row in sorted(rows.values(), key=lambda r: (r["category"], r["department"])):
        ack, res = row.pop("ack_hours"), row.pop("resolve_hours")
        row["avg_ack_hours"] = round(statistics.fmean(ack), 2) if ack else None
        row["avg_resolve_hours"] = round(statistics.fmean(res), 2) if res else None
        row["ack_sla_rate"] = round(row["ack_sla_met"] / row["received"], 4)
        row["resolve_sla_rate"] = round(row["resolve_sla_met"] / row["received"], 4)
        out.append(row)
    return {
        "week_start": week_start.isoformat(),
        "week_end": (week_start + datetime.timedelta(days=6)).isoformat(),
        "rows": out,
        "total_received": sum(r["received"] for r in out),
        "total_open": sum(len(r["open_items"]) for r in out),
    }


CSV_COLUMNS = (
    "category",
    "department",
    "received",
    "acknowledged",
    "resolved",
    "escalated",
    "avg_ack_hours",
    "avg_resolve_hours",
    "ack_sla_met",
    "ack_sla_rate",
    "resolve_sla_met",
    "resolve_sla_rate",
    "open_items",
)


def report_csv(report: dict[str, Any]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(CSV_COLUMNS)
    for row in report["rows"]:
        writer.writerow(
            [
                " ".join(i["complaint_id"] for i in row[c])
                if c == "open_items"
                else ("" if row[c] is None else row[c])
                for c in CSV_COLUMNS
            ]
        )
    return buffer.getvalue()
