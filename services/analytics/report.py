"""The monthly leadership report: the key figures of one month, their trend over the twelve
months up to it, and the month-on-month and year-on-year comparisons, as data, CSV or a
self-contained HTML page with SVG charts (no script, no external asset: it is mailed and
printed as it is).

Pure functions: the service gathers the figures (the same `summary` definitions as every
other figure, docs/RULES.md § Figures) and these only arrange them.
"""

import csv
import datetime
import html
import io

# The figures leadership reads, in the order they read them: (key, Chinese, English, kind).
KEY_FIGURES = (
    ("visits", "门诊人次", "Visits", "count"),
    ("first_visits", "初诊人次", "First visits", "count"),
    ("admissions", "入院人次", "Admissions", "count"),
    ("discharges", "出院人次", "Discharges", "count"),
    ("consultations", "咨询量", "Consultations", "count"),
    ("conversion_rate", "咨询转化率", "Consultation conversion", "rate"),
    ("followup_completion_rate", "回访完成率", "Follow-up completion", "rate"),
    ("avg_satisfaction", "平均满意度", "Average satisfaction", "score"),
    ("complaints_opened", "投诉量", "Complaints opened", "count"),
    ("ack_sla_rate", "24小时响应达标率", "Acknowledged within SLA", "rate"),
    ("resolve_sla_rate", "48小时解决达标率", "Resolved within SLA", "rate"),
    ("word_of_mouth_share", "口碑来源占比", "Word-of-mouth share", "rate"),
)
# How each key figure is counted, printed in the report itself so that its reader needs no
# other document (the project's docs/RULES.md § Figures says the same at length).
DEFINITIONS = {
    "visits": ("就诊日期在本月内的门诊就诊", "outpatient visits dated in the month"),
    "first_visits": ("其中初诊", "of those, first visits"),
    "admissions": ("本月入院", "admissions in the month"),
    "discharges": ("本月出院", "discharges in the month"),
    "consultations": ("本月咨询（电话、网络、在线）", "consultations logged (phone, web, chat)"),
    "conversion_rate": (
        "咨询后30天内同一人（同一电话或病历号）就诊的比例",
        "share of consultations whose person (same phone or MRN) visited within 30 days",
    ),
    "followup_completion_rate": (
        "本月到期且未取消的回访中已完成的比例",
        "share of the follow-up calls due in the month (not cancelled) that were completed",
    ),
    "avg_satisfaction": ("本月记录的满意度评分（1–5）平均值", "mean of the 1–5 scores recorded"),
    "complaints_opened": ("本月受理的投诉", "complaints received in the month"),
    "ack_sla_rate": (
        "本月投诉中在时限内响应的比例",
        "share of the month's complaints acknowledged by their deadline",
    ),
    "resolve_sla_rate": (
        "本月投诉中在时限内解决的比例",
        "share of the month's complaints resolved by their deadline",
    ),
    "word_of_mouth_share": (
        "初诊中经亲友介绍、就近或路过而来的比例",
        "share of first visits that came by a friend's referral, living nearby or passing by",
    ),
}
TREND_MONTHS = 12
# The trend charts drawn in the HTML page: one per figure, twelve months each.
CHARTED = (
    "visits",
    "conversion_rate",
    "followup_completion_rate",
    "avg_satisfaction",
    "complaints_opened",
    "resolve_sla_rate",
)


def parse_month(text):
    """'2026-10' -> (first day, last day); ValueError for anything else."""
    try:
        year, month = (int(part) for part in str(text).split("-"))
        first = datetime.date(year, month, 1)
    except (TypeError, ValueError):
        raise ValueError("A month YYYY-MM.") from None
    return first, month_end(first)


def month_end(first):
    following = (first.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
    return following - datetime.timedelta(days=1)


def shift_month(first, months):
    index = first.year * 12 + first.month - 1 + months
    return datetime.date(index // 12, index % 12 + 1, 1)


def trend_months(first):
    """The first days of the twelve months ending with `first`, oldest first."""
    return [shift_month(first, -n) for n in range(TREND_MONTHS - 1, -1, -1)]


def change(now, before):
    """Absolute and relative change; None where either side has no figure."""
    if now is None or before is None:
        return {"delta": None, "relative": None}
    delta = round(now - before, 4)
    return {"delta": delta, "relative": round(delta / before, 4) if before else None}


def build(month_first, department, figures, previous_month, previous_year, trend, quality=None):
    """`figures`, `previous_month`, `previous_year`: summaries of the month, the month before and
    the same month a year before; `trend`: [(first day, summary)] oldest first; `quality`: the
    month's service-quality figures (quality.figures), if any."""
    rows = []
    for key, zh, en, kind in KEY_FIGURES:
        rows.append(
            {
                "figure": key,
                "label_zh": zh,
                "label_en": en,
                "kind": kind,
                "value": figures.get(key),
                "previous_month": previous_month.get(key),
                "previous_year": previous_year.get(key),
                "month_on_month": change(figures.get(key), previous_month.get(key)),
                "year_on_year": change(figures.get(key), previous_year.get(key)),
            }
        )
    return {
        "month": month_first.strftime("%Y-%m"),
        "department": department,
        "from": month_first.isoformat(),
        "to": month_end(month_first).isoformat(),
        "figures": rows,
        "trend": [
            {"month": first.strftime("%Y-%m"), **{k: s.get(k) for k, *_ in KEY_FIGURES}}
            for first, s in trend
        ],
        "by_department": figures.get("by_department", []),
        "by_source": figures.get("by_source", []),
        "top_complaint_categories": figures.get("top_complaint_categories", []),
        "quality": quality,
    }


def to_csv(report):
    """One table a spreadsheet opens: the key figures with both comparisons, then the trend."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(
        [
            "section",
            "figure",
            "label",
            "month",
            "value",
            "previous_month",
            "month_on_month",
            "previous_year",
            "year_on_year",
        ]
    )
    for row in report["figures"]:
        writer.writerow(
            [
                "figures",
                row["figure"],
                row["label_zh"],
                report["month"],
                _plain(row["value"]),
                _plain(row["previous_month"]),
                _plain(row["month_on_month"]["delta"]),
                _plain(row["previous_year"]),
                _plain(row["year_on_year"]["delta"]),
            ]
        )
    for point in report["trend"]:
        for key, zh, *_ in KEY_FIGURES:
            writer.writerow(["trend", key, zh, point["month"], _plain(point[key]), "", "", "", ""])
    for dept in report["by_department"]:
        for key in (
            "visits",
            "first_visits",
            "discharges",
            "complaints_opened",
            "avg_satisfaction",
        ):
            writer.writerow(
                [
                    f"department:{dept['department']}",
                    key,
                    "",
                    report["month"],
                    _plain(dept.get(key)),
                    "",
                    "",
                    "",
                    "",
                ]
            )
    quality = report.get("quality") or {}
    for scope, name, line in _quality_lines(quality):
        for row in [{"item": "overall", **line["overall"]}] + line["items"]:
            writer.writerow(
                [
                    f"quality:{scope}{name}",
                    row["item"],
                    "count",
                    report["month"],
                    row["count"],
                    "",
                    "",
                    "",
                    "",
                ]
            )
            writer.writerow(
                [
                    f"quality:{scope}{name}",
                    row["item"],
                    "average",
                    report["month"],
                    _plain(row["average"]),
                    "",
                    "",
                    "",
                    "",
                ]
            )
    return out.getvalue()


def _quality_lines(quality):
    """("", "", totals), ("department:", name, line), ("doctor:", id, line) of the quality
    figures."""
    if not quality:
        return []
    return (
        [("all", "", quality)]
        + [("department:", d["department"], d) for d in quality["by_department"]]
        + [("doctor:", d["doctor_id"], d) for d in quality["by_doctor"]]
    )


def _plain(value):
    return "" if value is None else value


def _shown(value, kind):
    if value is None:
        return "—"
    if kind == "rate":
        return f"{value * 100:.1f}%"
    if kind == "score":
        return f"{value:.2f}"
    return f"{value:,}"


def _shown_change(ch, kind):
    delta = ch["delta"]
    if delta is None:
        return "—"
    sign = "+" if delta > 0 else ""
    if kind == "rate":
        return f"{sign}{delta * 100:.1f} pp"
    text = f"{sign}{delta:.2f}" if kind == "score" else f"{sign}{delta:,}"
    if ch["relative"] is not None and kind == "count":
        text += f" ({sign}{ch['relative'] * 100:.1f}%)"
    return text


def definitions_html(rows):
    """The closing table of a report, "how the figures are counted": (label, (zh, en)) rows.
    The report carries its definitions because its reader has the report, not the project."""
    body = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{html.escape(zh)}<br>"
        f"<small>{html.escape(en)}</small></td></tr>"
        for label, (zh, en) in rows
    )
    return (
        "<h2>指标口径 How the figures are counted</h2>"
        f"<table><tr><th>指标 Figure</th><th>口径 Definition</th></tr>{body}</table>"
    )


def svg_open(title, width, height):
    """A chart's opening tag, named for screen readers, and its title drawn at the top left."""
    return [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
        f'aria-label="{html.escape(title)}">',
        f'<text x="4" y="14" font-size="12" font-weight="bold">{html.escape(title)}</text>',
    ]


def line_chart(title, points, kind, width=320, height=140):
    """An SVG line chart of (label, value) points; gaps where a month has no figure."""
    pad_l, pad_b, pad_t = 36, 22, 22
    values = [v for _, v in points if v is not None]
    top = max(values) if values else 1
    top = top or 1
    step = (width - pad_l - 8) / max(len(points) - 1, 1)
    parts = svg_open(title, width, height) + [
        f'<line x1="{pad_l}" y1="{height - pad_b}" x2="{width - 4}" y2="{height - pad_b}" '
        'stroke="#999"/>',
        f'<text x="2" y="{pad_t + 8}" font-size="9">{html.escape(_shown(top, kind))}</text>',
    ]
    path, coords = [], []
    for i, (label, value) in enumerate(points):
        x = pad_l + i * step
        if i in (0, len(points) - 1):
            parts.append(
                f'<text x="{x - 14:.1f}" y="{height - 6}" font-size="9">{html.escape(label)}</text>'
            )
        if value is None:
            path.append(None)
            continue
        y = height - pad_b - (value / top) * (height - pad_b - pad_t)
        coords.append((x, y))
        path.append(f"{x:.1f},{y:.1f}")
    segment = []
    for point in path + [None]:
        if point is None:
            if len(segment) > 1:
                parts.append(
                    '<polyline fill="none" stroke="#1f6feb" stroke-width="2" '
                    f'points="{" ".join(segment)}"/>'
                )
            segment = []
        else:
            segment.append(point)
    parts += [f'<circle cx="{x:.1f}" cy="{y:.1f}" r="2.5" fill="#1f6feb"/>' for x, y in coords]
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(title, items, width=320, bar_h=16):
    """A horizontal SVG bar chart of (label, count)."""
    height = 24 + bar_h * max(len(items), 1) + 4
    top = max((n for _, n in items), default=1) or 1
    parts = svg_open(title, width, height)
    for i, (label, n) in enumerate(items):
        y = 22 + i * bar_h
        length = (width - 140) * n / top
        parts += [
            f'<text x="4" y="{y + 11}" font-size="10">{html.escape(str(label))[:14]}</text>',
            f'<rect x="96" y="{y + 2}" width="{length:.1f}" height="{bar_h - 5}" fill="#2da44e"/>',
            f'<text x="{100 + length:.1f}" y="{y + 11}" font-size="10">{n:,}</text>',
        ]
    parts.append("</svg>")
    return "".join(parts)


QUALITY_ITEMS = {
    "doctor": "医生 Doctor",
    "nurse": "护士 Nurse",
    "environment": "就诊环境 Environment",
    "waiting": "候诊时间 Waiting",
    "process": "就诊流程 Process",
}


def _quality_html(quality):
    """The month's service-quality section: every item's answers and mean, and the mean by
    department and by doctor (docs/RULES.md § Service quality)."""
    if quality is None:
        return ""
    if not quality["answers"]:
        return (
            "<h2>服务质量 Service quality</h2>"
            "<p>本月无满意度调查答卷。No survey answers this month.</p>"
        )
    rows = "".join(
        f"<tr><td>{html.escape(QUALITY_ITEMS.get(row['item'], row['item']))}</td>"
        f"<td class=n>{row['count']:,}</td>"
        f"<td class=n>{_shown(row['average'], 'score')}</td></tr>"
        for row in [{"item": "总体 Overall", **quality["overall"]}] + quality["items"]
    )
    charts = "".join(
        [
            bar_chart(
                "科室平均分 Mean by department",
                [(d["department"], d["overall"]["average"]) for d in quality["by_department"]][:12],
            ),
            bar_chart(
                "医生平均分 Mean by doctor",
                [(d["doctor_id"], d["overall"]["average"]) for d in quality["by_doctor"]][:12],
            ),
        ]
    )
    return (
        f"<h2>服务质量 Service quality</h2><p>答卷 {quality['answers']:,} 份 answers · "
        f"低分 {quality['low_answers']:,} (≤ 2, service recovery)</p>"
        "<table><tr><th>项目 Item</th><th>评分数 Scores</th><th>平均分 Mean (1–5)</th></tr>"
        f"{rows}</table>"
        f"<div class=charts>{charts}</div>"
    )


def to_html(report):
    kinds = {key: kind for key, _, _, kind in KEY_FIGURES}
    labels = {key: zh for key, zh, _, _ in KEY_FIGURES}
    scope = html.escape(report["department"] or "全院 / whole hospital")
    rows = "".join(
        f"<tr><td>{html.escape(r['label_zh'])}<br><small>{html.escape(r['label_en'])}</small></td>"
        f"<td class=n>{_shown(r['value'], r['kind'])}</td>"
        f"<td class=n>{_shown(r['previous_month'], r['kind'])}</td>"
        f"<td class=n>{_shown_change(r['month_on_month'], r['kind'])}</td>"
        f"<td class=n>{_shown(r['previous_year'], r['kind'])}</td>"
        f"<td class=n>{_shown_change(r['year_on_year'], r['kind'])}</td></tr>"
        for r in report["figures"]
    )
    charts = "".join(
        line_chart(labels[key], [(p["month"][2:], p[key]) for p in report["trend"]], kinds[key])
        for key in CHARTED
    )
    breakdowns = "".join(
        [
            bar_chart(
                "科室门诊人次 Visits by department",
                [(d["department"], d["visits"]) for d in report["by_department"]][:12],
            ),
            bar_chart(
                "初诊来源 First visits by source",
                [(s["source_channel"], s["first_visits"]) for s in report["by_source"]][:12],
            ),
            bar_chart(
                "投诉类别 Complaints by category",
                [(c["category"], c["complaints"]) for c in report["top_complaint_categories"]][:12],
            ),
        ]
    )
    quality = _quality_html(report.get("quality"))
    definitions = definitions_html(
        (f"{labels[key]} {english}", DEFINITIONS[key]) for key, _, english, _ in KEY_FIGURES
    )
    footnote = (
        definitions + "<p><small>重复事件只计一次；已撤销的就诊、入院、出院不计入任何指标；"
        "合并的病人记录按一人计。"
        "数据直接来自事件流。A duplicated event counts once; a cancelled visit, admission or "
        "discharge counts nowhere; merged records are one person.\nComputed from the events."
        "</small></p>"
    )
    return f"""<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8">
<title>客户服务中心月度报告 {report["month"]}</title>
<style>
body{{font-family:"Noto Sans CJK SC","PingFang SC",sans-serif;margin:24px;color:#1f2328}}
table{{border-collapse:collapse;margin:12px 0}}td,th{{border:1px solid #d0d7de;padding:4px 8px}}
th{{background:#f6f8fa}}td.n{{text-align:right;font-variant-numeric:tabular-nums}}
.charts svg{{margin:6px;border:1px solid #eee}}small{{color:#57606a}}
</style></head><body>
<h1>客户服务中心月度报告 <small>Customer-service monthly report</small></h1>
<p>{report["month"]} ({report["from"]} – {report["to"]}) · {scope}</p>
<h2>关键指标 Key figures</h2>
<table><tr><th>指标 Figure</th><th>本月 This month</th><th>上月 Previous month</th><th>环比 MoM</th>
<th>去年同月 Same month last year</th><th>同比 YoY</th></tr>{rows}</table>
<h2>近十二个月趋势 Twelve-month trend</h2><div class=charts>{charts}</div>
<h2>构成 Breakdown</h2><div class=charts>{breakdowns}</div>
{quality}{footnote}
</body></html>
"""
