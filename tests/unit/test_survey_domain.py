"""Service-quality surveys in followup (services/followup/survey.py) and their public page
(services/gateway/survey_page.py)."""

import base64
import hashlib
import re
import zoneinfo

from services.followup import domain, survey
from services.gateway import survey_page

ITEMS = [dict(item) for item in survey.DEFAULT_ITEMS]


def test_scores_are_checked_against_the_configured_items():
    assert survey.scores_errors({"doctor": 5, "waiting": 1}, ITEMS) == {}
    assert survey.scores_errors({}, ITEMS) == {
        "survey": [
            "An object scoring at least one of: doctor, nurse, environment, waiting, process."
        ]
    }
    assert survey.scores_errors([5], ITEMS) == survey.scores_errors({}, ITEMS)
    assert survey.scores_errors(
        {"doctor": 6, "nurse": True, "parking": 3, "waiting": "4"}, ITEMS
    ) == {
        "survey.doctor": ["An integer from 1 to 5."],
        "survey.nurse": ["An integer from 1 to 5."],
        "survey.parking": [
            "Unknown item: use one of doctor, nurse, environment, waiting, process."
        ],
        "survey.waiting": ["An integer from 1 to 5."],
    }


def test_low_items_open_service_recovery():
    assert survey.low_items({"doctor": 5, "waiting": 2, "process": 1}) == {
        "waiting": 2,
        "process": 1,
    }
    assert survey.low_items({"doctor": 3}) == {}
    assert domain.needs_recovery(None, None, {"waiting": 2})
    assert not domain.needs_recovery(4, None, {})
    assert survey.ordered({"process": 1, "doctor": 4}, ITEMS) == {"doctor": 4, "process": 1}
    assert list(survey.ordered({"process": 1, "doctor": 4}, ITEMS)) == ["doctor", "process"]


def test_which_calls_offer_the_link():
    kinds = ["post_visit_call", "post_discharge_call"]
    visit = {"kind": "post_visit_call"}
    assert survey.link_wanted(visit, "reached", False, True, kinds)
    assert survey.link_wanted(visit, "unreachable", False, True, kinds)  # the last attempt failed
    assert not survey.link_wanted(visit, "declined", False, True, kinds)
    assert not survey.link_wanted(visit, "reached", True, True, kinds)  # answered during the call
    assert not survey.link_wanted(visit, "reached", False, False, kinds)  # links switched off
    assert not survey.link_wanted({"kind": "prospect_call"}, "reached", False, True, kinds)
    assert not survey.link_wanted(
        {"kind": "post_visit_call", "survey_state": "sent"}, "reached", False, True, kinds
    )


def test_tokens_are_random_and_only_their_hash_is_kept():
    token, hashed = survey.new_token()
    other, _ = survey.new_token()
    assert token != other and survey.token_is_well_formed(token) and len(token) == 43
    assert hashed == hashlib.sha256(token.encode()).hexdigest() == survey.token_hash(token)
    for bad in ("", "short", token + "x", token[:-1] + "/", None, 42):
        assert not survey.token_is_well_formed(bad)


def test_a_link_opens_once_until_it_expires():
    assert survey.link_state({"survey_state": "sent", "survey_expires_ts": 100.0}, 99.9) == "open"
    assert (
        survey.link_state({"survey_state": "sent", "survey_expires_ts": 100.0}, 100.0) == "expired"
    )
    assert survey.link_state({"survey_state": "answered", "survey_expires_ts": 100.0}, 50) == "used"
    assert survey.link_state({"survey_state": "to_send"}, 50) == "expired"


def test_the_link_message():
    tz = zoneinfo.ZoneInfo("Asia/Shanghai")
    task = {"anchor_ts": 1790784000.0}  # 2026-10-01T00:00:00+08:00
    assert survey.visit_date(task, tz) == "2026-10-01"
    link = survey.link_url("https://crm.example.org/", "T" * 43)
    assert link == "https://crm.example.org/survey/" + "T" * 43
    assert survey.link_text(None, "zh", "心内科", "2026-10-01", link, 7) == (
        "【医院客服中心】您好，感谢您到心内科就诊（2026-10-01）。"
        f"请花一分钟评价本次服务：{link} （7天内有效，仅可提交一次）"
    )
    assert (
        survey.link_text({"zh": "请评价：{link}", "en": "Rate: {link}"}, "en", "", "", "L", 7)
        == "Rate: L"
    )


def test_the_public_page_is_escaped_and_allows_its_own_style_only():
    styles = re.findall(
        r"<style>(.*?)</style>",
        survey_page.form(
            "zh",
            {
                "items": ITEMS,
                "department": "<b>心内科</b>",
                "visit_date": "2026-10-01",
                "expires_at": "2026-10-08T10:00:00+08:00",
            },
        ),
        re.S,
    )
    assert styles == [survey_page.CSS]
    digest = base64.b64encode(hashlib.sha256(survey_page.CSS.encode()).digest()).decode()
    assert (
        f"style-src 'sha256-{digest}'" in survey_page.CSP
        and "default-src 'none'" in survey_page.CSP
    )
    assert "script" not in survey_page.CSP
    page = survey_page.form(
        "en",
        {
            "items": ITEMS,
            "department": "<b>心内科</b>",
            "visit_date": "2026-10-01",
            "expires_at": "2026-10-08T10:00:00+08:00",
        },
        "Please rate",
        {"doctor": 4},
    )
    assert "&lt;b&gt;心内科&lt;/b&gt;" in page and "<b>" not in page
    assert page.count('type="radio"') == 25 and page.count(" checked") == 1
    assert 'href="?lang=zh"' in page and "<script" not in page and 'lang="en"' in page
    assert re.findall(r'href="([^"]*)"', page) == ["?lang=zh"]  # nothing else is reachable
    assert survey_page.language(None, "en-GB,en;q=0.9") == "en"
    assert survey_page.language("zh", "en-GB") == "zh"
    assert survey_page.language("fr", "fr-FR") == "zh"
    used = survey_page.message("zh", "used")
    assert "此链接已使用" in used and survey_page.STATUS["used"] == 410
