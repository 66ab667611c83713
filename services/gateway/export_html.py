"""A patient's data export (GET /api/v1/patients/{id}/export?format=html) as one readable page:
what each service holds, section by section, in tables a person can read and print. Pure: the
JSON export in, an HTML document out; every value is escaped (it is the patients' and staff's
own text)."""

import html
import json

STYLE = """
body{font-family:system-ui,"PingFang SC","Microsoft YaHei",sans-serif;margin:2rem;color:#1f2933;font-size:14px}
h1{font-size:1.5rem;margin-bottom:.25rem}h2{font-size:1.15rem;margin-top:2rem;border-bottom:1px solid #cbd2d9}
h3{font-size:1rem;margin-top:1.25rem}table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{border:1px solid #e4e7eb;padding:.3rem .45rem;text-align:left;vertical-align:top}
th{background:#f5f7fa;font-weight:600}td pre,dd pre{margin:0;white-space:pre-wrap;word-break:break-word;font-size:12px}
td pre{min-width:22rem}.scroll{overflow-x:auto}
dl{display:grid;grid-template-columns:max-content 1fr;gap:.2rem 1rem}dt{font-weight:600}.muted{color:#616e7c}
@media print{body{margin:0}}
"""

# Section title (zh / en) and, per service, the lists it holds and their titles.
SECTIONS = (
    ("intake", "基本信息与事件 · Record and events", (("events", "事件 · Events"),)),
    (
        "followup",
        "随访 · Follow-ups",
        (("tasks", "随访任务 · Tasks"), ("events", "收到的事件 · Events received")),
    ),
    (
        "appointments",
        "预约 · Appointments",
        (
            ("appointments", "预约 · Appointments"),
            ("reminders", "提醒 · Reminders sent"),
            ("scheduling_system_marks", "排班系统标记 · Scheduling system marks"),
            ("events", "收到的事件 · Events received"),
        ),
    ),
    (
        "complaints",
        "投诉 · Complaints",
        (("complaints", "投诉及处理记录 · Complaints and their history"),),
    ),
    ("analytics", "统计 · Analytics", (("facts", "统计事实 · Facts the figures count"),)),
    (
        "hl7",
        "HL7 消息 · HL7 messages",
        (
            ("messages", "原始消息 · Messages as received"),
            ("remembered_visits", "就诊记录 · Visits remembered"),
        ),
    ),
    (
        "campaigns",
        "关怀与营销活动 · Campaigns",
        (
            ("people", "活动所用信息 · What campaigns keep"),
            ("opt_outs", "退订 · Opt-outs"),
            ("deliveries", "活动触达 · Campaign deliveries"),
            ("messages", "已发短信 · Messages sent"),
            ("events", "收到的事件 · Events received"),
        ),
    ),
)


def _text(value):
    if value is None:
        return "—"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, indent=1)
    return str(value)


def _cell(value):
    text = html.escape(_text(value))
    return (
        f"<td><pre>{text}</pre></td>"
        if isinstance(value, (dict, list)) or "\r" in text or "\n" in text
        else f"<td>{text}</td>"
    )


def _table(rows):
    if not rows:
        return '<p class="muted">无 · None</p>'
    columns = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(_cell(row.get(c)) for c in columns) + "</tr>" for row in rows)
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _facts(pairs):
    return (
        "<dl>"
        + "".join(
            f"<dt>{html.escape(str(k))}</dt><dd>{html.escape(_text(v))}</dd>" for k, v in pairs
        )
        + "</dl>"
    )


def render(export):
    record = (export.get("intake") or {}).get("record") or {}
    title = f"病人数据导出 · Patient data export — {record.get('name') or export.get('patient_id')}"
    parts = [
        '<!doctype html><html lang="zh"><head><meta charset="utf-8">'
        f"<title>{html.escape(title)}</title>",
        f"<style>{STYLE}</style></head><body>",
        f"<h1>{html.escape(title)}</h1>",
        _facts(
            [
                ("patient_id", export.get("patient_id")),
                ("patient_ids", ", ".join(export.get("patient_ids") or [])),
                ("MRN", ", ".join(export.get("mrns") or [])),
                ("generated_at", export.get("generated_at")),
                ("generated_by", export.get("generated_by")),
            ]
        ),
        "<h2>档案 · Record</h2>",
        _facts(sorted(record.items())),
    ]
    for service, heading, lists in SECTIONS:
        part = export.get(service)
        if part is None:
            continue
        parts.append(f"<h2>{html.escape(heading)}</h2>")
        for key, subtitle in lists:
            parts.append(f"<h3>{html.escape(subtitle)}</h3>")
            parts.append(_table(part.get(key) or []))
    parts.append("<h2>访问记录 · Who used the record (audit)</h2>")
    parts.append(_table((export.get("gateway") or {}).get("audit") or []))
    parts.append("</body></html>")
    return "".join(parts)
