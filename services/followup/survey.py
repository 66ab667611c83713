"""Service-quality surveys (docs/RULES.md § Service quality) as pure rules.

A survey scores some configured items (default: doctor, nurse, environment, waiting,
process) from 1 to 5. It is answered during the call (`survey` in the completion) or later
by the patient through a one-time link: a random token whose SHA-256 alone is stored on the
task, valid until it expires and for one answer only. The link is offered after a call that
recorded no survey, for the kinds configured (default the post-visit and post-discharge
calls: they have a visit or discharge to score), unless the person declined the call.
An item scored at or below LOW_SCORE opens service recovery like a low satisfaction score.
"""

import datetime
import hashlib
import re
import secrets

from services.followup import domain

DEFAULT_ITEMS = (
    {"key": "doctor", "zh": "医生", "en": "Doctor"},
    {"key": "nurse", "zh": "护士", "en": "Nurse"},
    {"key": "environment", "zh": "就诊环境", "en": "Environment"},
    {"key": "waiting", "zh": "候诊时间", "en": "Waiting time"},
    {"key": "process", "zh": "就诊流程", "en": "Process"},
)
ITEM_KEY = re.compile(r"^[a-z][a-z0-9_]{0,31}$")
LOW_SCORE = 2  # an item at or below this opens service recovery, like satisfaction ≤ 2
# 32 random bytes, URL-safe base64 without padding: 43 characters, 256 bits.
TOKEN_BYTES = 32
TOKEN_PATTERN = re.compile(r"^[A-Za-z0-9_-]{43}$")
# Outcomes after which no link is sent: the person said they do not want the call.
NO_LINK_OUTCOMES = (domain.DECLINED,)

DEFAULT_LINK_TEXT = {
    "zh": "【医院客服中心】您好，感谢您到{department}就诊（{date}）。"
    "请花一分钟评价本次服务：{link} "
    "（{days}天内有效，仅可提交一次）",
    "en": "Hospital patient service center: thank you for your visit to {department} ({date}). "
    "Please rate our service in one minute: {link} (valid {days} days, one answer).",
}


def item_keys(items):
    return [item["key"] for item in items]


def scores_errors(scores, items):
    """{field path: messages} of what is wrong with a survey answer (empty when it is right):
    a non-empty object of configured items, each an integer from 1 to 5."""
    keys = item_keys(items)
    if not isinstance(scores, dict) or not scores:
        return {"survey": [f"An object scoring at least one of: {', '.join(keys)}."]}
    errors = {}
    for key, value in scores.items():
        if key not in keys:
            errors[f"survey.{key}"] = [f"Unknown item: use one of {', '.join(keys)}."]
        elif isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 5:
            errors[f"survey.{key}"] = ["An integer from 1 to 5."]
    return errors


def low_items(scores, threshold=LOW_SCORE):
    """The items scored at or below `threshold` ({item: score}); empty when none."""
    return {key: value for key, value in (scores or {}).items() if value <= threshold}


def ordered(scores, items):
    """The scores in the configured items' order (a stable event and display)."""
    return {key: scores[key] for key in item_keys(items) if key in (scores or {})}


def link_wanted(task, outcome, survey_given, enabled, kinds):
    """Whether finishing `task` with `outcome` offers the patient the survey link."""
    return (
        enabled
        and not survey_given
        and outcome not in NO_LINK_OUTCOMES
        and task["kind"] in kinds
        and not task.get("survey_state")
    )


def new_token():
    """(token, its hash): the token goes into the link only, the hash onto the task."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    return token, token_hash(token)


def token_hash(token):
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def token_is_well_formed(token):
    return isinstance(token, str) and bool(TOKEN_PATTERN.fullmatch(token))


def link_state(task, now_ts):
    """What a link found by its hash allows: "open", "used" or "expired"."""
    if task.get("survey_state") == "answered":
        return "used"
    if task.get("survey_state") != "sent" or task.get("survey_expires_ts", 0) <= now_ts:
        return "expired"
    return "open"


def visit_date(task, tz):
    """The local day of the visit or discharge the task came from (shown on the survey page)."""
    return datetime.datetime.fromtimestamp(task["anchor_ts"], tz).date().isoformat()


def link_url(base, token):
    return f"{base.rstrip('/')}/survey/{token}"


def link_text(templates, language, department, date, link, days):
    template = (templates or {}).get(language) or DEFAULT_LINK_TEXT[language]
    return template.format(department=department or "", date=date, link=link, days=days)
