"""The monthly leadership report's arithmetic and rendering, on hand-made figures."""

import datetime
import html

import pytest

from services.analytics import report


def test_months_are_parsed_and_shifted_across_years():
    assert report.parse_month("2026-02") == (datetime.date(2026, 2, 1), datetime.date(2026, 2, 28))
    assert report.parse_month("2024-02")[1] == datetime.date(2024, 2, 29)
    for bad in ("2026-13", "2026", "26-1x", None):
        with pytest.raises(ValueError):
            report.parse_month(bad)
    assert report.shift_month(datetime.date(2026, 1, 1), -1) == datetime.date(2025, 12, 1)
    assert report.shift_month(datetime.date(2026, 3, 1), -12) == datetime.date(2025, 3, 1)
    months = report.trend_months(datetime.date(2026, 3, 1))
    assert (
        len(months) == 12
        and months[0] == datetime.date(2025, 4, 1)
        and months[-1] == datetime.date(2026, 3, 1)
    )


def test_change_is_absolute_and_relative_and_none_without_a_figure():
    assert report.change(120, 100) == {"delta": 20, "relative": 0.2}
    assert report.change(5, 0) == {"delta": 5, "relative": None}
    assert report.change(None, 3) == {"delta": None, "relative": None}
    assert report.change(0.5, 0.75) == {"delta": -0.25, "relative": -0.3333}


def _summary(visits, rate):
    return {
        "visits": visits,
        "conversion_rate": rate,
        "avg_satisfaction": None,
        "by_department": [
            {
                "department": "骨科",
                "visits": visits,
                "first_visits": 1,
                "discharges": 0,
                "complaints_opened": 0,
                "avg_satisfaction": None,
            }
        ],
        "by_source": [{"source_channel": "friend_referral", "first_visits": 1}],
        "top_complaint_categories": [{"category": "billing", "complaints": 2}],
    }


def _built():
    march = datetime.date(2026, 3, 1)
    trend = [(m, _summary(10 + i, None)) for i, m in enumerate(report.trend_months(march))]
    return report.build(
        march, None, _summary(21, 0.5), _summary(20, 0.25), _summary(7, None), trend
    )


def test_the_report_compares_month_on_month_and_year_on_year():
    built = _built()
    rows = {row["figure"]: row for row in built["figures"]}
    assert rows["visits"]["value"] == 21
    assert rows["visits"]["month_on_month"] == {"delta": 1, "relative": 0.05}
    assert rows["visits"]["year_on_year"] == {"delta": 14, "relative": 2.0}
    assert rows["conversion_rate"]["month_on_month"]["delta"] == 0.25
    assert rows["conversion_rate"]["year_on_year"]["delta"] is None
    assert [p["visits"] for p in built["trend"]] == list(range(10, 22))
    assert built["month"] == "2026-03" and built["to"] == "2026-03-31"


def test_csv_and_html_carry_the_figures():
    built = _built()
    text = report.to_csv(built)
    assert text.splitlines()[0].startswith("section,figure,label,month,value")
    assert "figures,visits,门诊人次,2026-03,21,20,1,7,14" in text
    assert text.count("\ntrend,visits,") == 12
    page = report.to_html(built)
    assert page.count("<svg") == len(report.CHARTED) + 3
    assert "+1 (+5.0%)" in page and "50.0%" in page and "+25.0 pp" in page
    assert "<script" not in page


def test_html_escapes_names_from_the_data():
    built = _built()
    built["by_department"][0]["department"] = "<script>x</script>"
    assert "<script>x" not in report.to_html(built)


def test_the_report_says_how_each_figure_is_counted_without_another_document():
    assert set(report.DEFINITIONS) == {key for key, _, _, _ in report.KEY_FIGURES}
    page = report.to_html(_built())
    assert "指标口径 How the figures are counted" in page
    for key, zh, english, _ in report.KEY_FIGURES:
        chinese, in_english = report.DEFINITIONS[key]
        expected = f"<td>{zh} {english}</td><td>{chinese}<br><small>{html.escape(in_english)}"
        assert expected in page
    assert "docs/" not in page  # a hospital's reader has the report, not the repository
