"""The quarterly assessment of the agents (考核): each agent's figures and the team's over one
quarter, the previous quarter beside them, and every figure with a target against it, as
data, CSV or a self-contained HTML page with SVG charts (no script, no external asset, like
the monthly report in report.py).

Pure functions: the service gathers the figures (agents.figures with the assessment, the
definitions of docs/RULES.md § Agents) and these only arrange them.
"""

import csv
import datetime
import html
import io
import re

from services.analytics import agents
from services.analytics.domain import rate
from services.analytics.report import _plain, _shown, definitions_html, svg_open

# (key, Chinese, English, kind), in the order the assessment reads them.
FIGURES = (
    ("calls", "通话量", "Calls", "count"),
    ("reached", "接通", "Reached", "count"),
    ("unreachable", "未接通", "Unreachable", "count"),
    ("declined", "拒访", "Declined", "count"),
    ("reach_rate", "接通率", "Reach rate", "rate"),
    ("on_time_rate", "按时完成率", "On-time rate", "rate"),
    ("avg_satisfaction", "患者满意度", "Avg. satisfaction", "score"),
    ("complaints_resolved", "处理投诉", "Complaints resolved", "count"),
    ("complaints_resolved_in_sla_rate", "投诉按时解决率", "Resolved within SLA", "rate"),
    ("consultations", "咨询接待", "Consultations", "count"),
    ("conversions", "咨询转化", "Conversions", "count"),
    ("conversion_rate", "咨询转化率", "Conversion rate", "rate"),
)
TEAM_FIGURES = FIGURES + (
    ("followup_completion_rate", "回访完成率", "Follow-up completion", "rate"),
)
# How each figure is counted, printed in the report so that its reader needs no other
# document (the project's docs/RULES.md § Agents says the same at length).
DEFINITIONS = {
    "calls": ("该客服记录的回访结果（含未接通后再拨）", "follow-up outcomes the agent recorded"),
    "reached": ("其中接通", "of those, reached"),
    "unreachable": ("其中未接通", "of those, not reached"),
    "declined": ("其中拒访", "of those, declined"),
    "reach_rate": ("接通 / 通话量", "reached / calls"),
    "on_time_rate": (
        "在任务到期前记录的通话 / 通话量",
        "calls recorded by the task's due time / calls",
    ),
    "avg_satisfaction": (
        "其完成回访的满意度评分（1–5）平均值",
        "mean 1–5 score of its finished calls",
    ),
    "complaints_resolved": ("该客服解决的投诉", "complaints the agent resolved"),
    "complaints_resolved_in_sla_rate": (
        "其中在解决时限内的比例",
        "of those, the share resolved by their deadline",
    ),
    "consultations": ("该客服接待的咨询", "consultations the agent took"),
    "conversions": ("其中30天内就诊的", "of those, the person visited within 30 days"),
    "conversion_rate": ("咨询转化 / 咨询接待", "conversions / consultations"),
    "followup_completion_rate": (
        "全中心到期回访的完成比例",
        "the center's follow-up calls due that were completed",
    ),
}
CHARTED = ("reach_rate", "on_time_rate", "avg_satisfaction", "complaints_resolved_in_sla_rate")
QUARTER = re.compile(r"^([0-9]{4})-Q([1-4])$")


def parse_quarter(text):
    """'2026-Q4' -> (first day, last day); ValueError for anything else."""
    match = QUARTER.match(str(text or ""))
    if not match:
        raise ValueError("A quarter YYYY-Qn, such as 2026-Q4.")
    year, number = int(match.group(1)), int(match.group(2))
    try:
        first = datetime.date(year, 3 * number - 2, 1)
        following = datetime.date(year + (number == 4), 1 if number == 4 else 3 * number + 1, 1)
    except ValueError:  # year 0, or a quarter ending after 9999
        raise ValueError("A quarter YYYY-Qn from 0001-Q1 to 9999-Q3.") from None
    return first, following - datetime.timedelta(days=1)


def previous_quarter(text):
    year, number = (int(part) for part in QUARTER.match(text).groups())
    return f"{year - 1:04d}-Q4" if number == 1 else f"{year:04d}-Q{number - 1}"


def _value(line, key):
    if key == "conversion_rate":
        return rate(line.get("conversions", 0), line.get("consultations", 0))
    return line.get(key)


def _change(now, before):
    return None if now is None or before is None else round(now - before, 4)


def _rows(line, before, targets, figures):
    verdicts = line.get("assessment") or {}
    return [
        {
            "figure": key,
            "label_zh": zh,
            "label_en": en,
            "kind": kind,
            "value": _value(line, key),
            "previous": _value(before, key),
            "change": _change(_value(line, key), _value(before, key)),
            "target": targets.get(key) if key in verdicts else None,
            "assessment": verdicts.get(key),
        }
        for key, zh, en, kind in figures
    ]


def build(quarter, current, previous, targets):
    """`current`, `previous`: agents.with_assessment results of the quarter and the one before."""
    first, last = parse_quarter(quarter)
    before = previous_quarter(quarter)
    before_first, before_last = parse_quarter(before)
    earlier = {item["agent"]: item for item in previous["items"]}
    people = []
    for item in current["items"]:
        was = earlier.get(item["agent"]) or agents.figures([], only=item["agent"])["items"][0]
        verdicts = list((item.get("assessment") or {}).values())
        people.append(
            {
                "agent": item["agent"],
                "figures": _rows(item, was, targets, FIGURES),
                "met": verdicts.count("met"),
                "missed": verdicts.count("missed"),
            }
        )
    team_verdicts = list((current["team"].get("assessment") or {}).values())
    return {
        "quarter": quarter,
        "from": first.isoformat(),
        "to": last.isoformat(),
        "previous": {
            "quarter": before,
            "from": before_first.isoformat(),
            "to": before_last.isoformat(),
        },
        "targets": targets,
        "team": {
            "figures": _rows(current["team"], previous["team"], targets, TEAM_FIGURES),
            "met": team_verdicts.count("met"),
            "missed": team_verdicts.count("missed"),
        },
        "agents": people,
    }


def to_csv(report):
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "section",
            "agent",
            "figure",
            "label",
            "quarter",
            "value",
            "previous_quarter",
            "change",
            "target",
            "assessment",
        ]
    )
    lines = [("team", "", report["team"])] + [("agent", p["agent"], p) for p in report["agents"]]
    for section, name, line in lines:
        for row in line["figures"]:
            writer.writerow(
                [
                    section,
                    name,
                    row["figure"],
                    row["label_zh"],
                    report["quarter"],
                    _plain(row["value"]),
                    _plain(row["previous"]),
                    _plain(row["change"]),
                    _plain(row["target"]),
                    _plain(row["assessment"]),
                ]
            )
    return out.getvalue()


VERDICT_TEXT = {"met": "达标 met", "missed": "未达标 missed", None: "—"}


def comparison_chart(title, bars, target, kind, width=420, bar_h=22):
    """Horizontal SVG bars, one pair per agent: this quarter (blue) over the previous one
    (grey), with the target as a dashed line."""
    height = 30 + bar_h * max(len(bars), 1) + 6
    values = [v for _, now, before in bars for v in (now, before) if v is not None]
    top = max(values + [target or 0, 5 if kind == "score" else 1]) or 1
    left, span = 110, width - 110 - 48

    def x(value):
        return left + span * value / top

    parts = svg_open(title, width, height)
    for i, (label, now, before) in enumerate(bars):
        y = 24 + i * bar_h
        parts.append(
            f'<text x="4" y="{y + 12}" font-size="10">{html.escape(str(label))[:16]}</text>'
        )
        if now is not None:
            parts += [
                f'<rect x="{left}" y="{y + 2}" width="{x(now) - left:.1f}" '
                'height="9" fill="#1f6feb"/>',
                f'<text x="{x(now) + 3:.1f}" y="{y + 10}" font-size="9">'
                f"{html.escape(_shown(now, kind))}</text>",
            ]
        if before is not None:
            parts.append(
                f'<rect x="{left}" y="{y + 12}" width="{x(before) - left:.1f}" '
                'height="5" fill="#8c959f"/>'
            )
    if target is not None:
        parts += [
            f'<line x1="{x(target):.1f}" y1="20" x2="{x(target):.1f}" y2="{height - 4}" '
            'stroke="#cf222e" stroke-dasharray="4 3"/>',
            f'<text x="{x(target) + 2:.1f}" y="{height - 4}" font-size="9" fill="#cf222e">'
            f"{html.escape(_shown(target, kind))}</text>",
        ]
    parts.append("</svg>")
    return "".join(parts)


def _table(line):
    rows = "".join(
        f"<tr><td>{html.escape(r['label_zh'])}<br><small>{html.escape(r['label_en'])}</small></td>"
        f"<td class=n>{_shown(r['value'], r['kind'])}</td>"
        f"<td class=n>{_shown(r['previous'], r['kind'])}</td>"
        f"<td class=n>{_shown(r['target'], r['kind'])}</td>"
        f'<td class="v {r["assessment"] or "none"}">{VERDICT_TEXT[r["assessment"]]}</td></tr>'
        for r in line["figures"]
    )
    return (
        "<table><tr><th>指标 Figure</th><th>本季度 This quarter</th>"
        "<th>上季度 Previous quarter</th>"
        f"<th>目标 Target</th><th>考核 Assessment</th></tr>{rows}</table>"
    )


def to_html(report):
    kinds = {key: kind for key, _, _, kind in TEAM_FIGURES}
    labels = {key: f"{zh} {en}" for key, zh, en, _ in TEAM_FIGURES}
    charts = ""
    for key in CHARTED:
        bars = []
        for person in report["agents"]:
            row = next(r for r in person["figures"] if r["figure"] == key)
            bars.append((person["agent"], row["value"], row["previous"]))
        charts += comparison_chart(labels[key], bars, report["targets"].get(key), kinds[key])
    people = "".join(
        f"<h3>{html.escape(p['agent'])} <small>达标 {p['met']} · 未达标 {p['missed']} "
        f"(met {p['met']}, missed {p['missed']})</small></h3>{_table(p)}"
        for p in report["agents"]
    )
    team = report["team"]
    previous = report["previous"]
    period = (
        f"{report['quarter']} ({report['from']} – {report['to']}) · 对比上季度 compared with "
        f"{previous['quarter']}\n({previous['from']} – {previous['to']})"
    )
    definitions = definitions_html((labels[key], DEFINITIONS[key]) for key, _, _, _ in TEAM_FIGURES)
    footnote = (
        definitions
        + "<p><small>按记录工作的用户统计，时间为医院时区；团队行为各客服之和，比率由总数计算。"
        "Counted for the user who recorded the work, by the hospital's day; the team line sums "
        "the agents' counts and computes its rates from those sums.</small></p>"
    )
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>客服中心季度考核 {report["quarter"]}</title>
<style>
body{{font-family:"Noto Sans CJK SC","PingFang SC",sans-serif;margin:24px;color:#1f2328}}
table{{border-collapse:collapse;margin:12px 0}}td,th{{border:1px solid #d0d7de;padding:4px 8px}}
th{{background:#f6f8fa}}td.n{{text-align:right;font-variant-numeric:tabular-nums}}
td.met{{color:#1a7f37;font-weight:bold}}td.missed{{color:#cf222e;font-weight:bold}}
.charts svg{{margin:6px;border:1px solid #eee}}small{{color:#57606a}}
</style></head><body>
<h1>客服中心季度考核 <small>Quarterly assessment of the agents</small></h1>
<p>{period}</p>
<h2>团队 Team <small>达标 {team["met"]} · 未达标 {team["missed"]}</small></h2>
{_table(team)}
<h2>对比图 Charts <small>蓝：本季度 · 灰：上季度 · 红线：目标
(blue: this quarter, grey: previous, red: target)</small></h2>
<div class=charts>{charts}</div>
<h2>客服专员 Agents</h2>
{people or "<p>本季度无记录。No work recorded this quarter.</p>"}
{footnote}
</body></html>
"""
