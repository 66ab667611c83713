"""Follow-up configuration: due rules per kind, per-department overrides, call scripts."""

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from services.followup.domain import DEFAULT_RULES, KINDS, PER_DEPARTMENT, Rule
from services.followup.survey import DEFAULT_ITEMS, ITEM_KEY
from shared.config import BaseConfig, EnvList, KnownHolidayCountry

DEFAULT_SCRIPTS = {
    "post_visit_call": {
        "zh": "您好，我是医院客服中心。您昨天来院就诊，想了解一下您回家后的情况和对就诊的满意度。",
        "en": "Hello, this is the hospital's patient service center. You visited "
        "us yesterday; how are you feeling, and how satisfied were you with "
        "your visit?",
    },
    "post_discharge_call": {
        "zh": "您好，我是医院客服中心。您出院已有两天，请问恢复情况如何？用药和复诊安排清楚吗？",
        "en": "Hello, this is the patient service center. You were discharged "
        "two days ago: how is your recovery, and are your medication and "
        "follow-up visit clear?",
    },
    "recovery_check": {
        "zh": "您好，出院一周了，我们想了解您的康复情况，有任何不适请告诉我们。",
        "en": "Hello, it has been a week since your discharge; we would like to know "
        "how your recovery is going.",
    },
    "return_visit_reminder": {
        "zh": "您好，提醒您按医嘱安排复诊，需要帮您预约吗？",
        "en": "Hello, a reminder to book your follow-up visit as your doctor advised. "
        "Shall we book it for you?",
    },
    "prospect_call": {
        "zh": "您好，您之前咨询过我院，想问问您是否需要帮您预约就诊？",
        "en": "Hello, you contacted us recently; may we help you book a visit?",
    },
    "no_show_call": {
        "zh": "您好，您预约的就诊未能到院，需要帮您重新预约吗？",
        "en": "Hello, we missed you at your appointment; shall we book a new one?",
    },
    # Shown only when a campaign call carries no text of its own (its campaign's template).
    "campaign_call": {
        "zh": "您好，我是医院客服中心，向您转达医院的关怀信息。",
        "en": "Hello, this is the hospital's patient service center with a message "
        "from the hospital.",
    },
}


class RuleSchema(Schema):
    days = fields.Integer(required=True, validate=validate.Range(min=0, max=3650))
    business_days = fields.Boolean(load_default=False)
    end_of_day = fields.Boolean(load_default=True)
    enabled = fields.Boolean(load_default=True)


def _rules_field(kinds):
    return fields.Dict(
        keys=fields.String(validate=validate.OneOf(kinds)), values=fields.Nested(RuleSchema)
    )


class ScriptSchema(Schema):
    zh = fields.String(required=True, validate=validate.Length(min=1, max=2000))
    en = fields.String(required=True, validate=validate.Length(min=1, max=2000))


class SurveyItemSchema(Schema):
    key = fields.String(
        required=True, validate=validate.Regexp(ITEM_KEY, error="a-z, 0-9 and _, such as doctor.")
    )
    zh = fields.String(required=True, validate=validate.Length(min=1, max=40))
    en = fields.String(required=True, validate=validate.Length(min=1, max=40))


class FollowupConfig(KnownHolidayCountry, BaseConfig):
    holiday_country = fields.String(load_default="CN", validate=validate.Length(equal=2))
    max_attempts = fields.Integer(load_default=3, validate=validate.Range(min=1, max=10))
    claim_minutes = fields.Integer(load_default=15, validate=validate.Range(min=1, max=480))
    gauge_interval_s = fields.Float(load_default=30.0, validate=validate.Range(min=0.1))
    # A call's notes and complaint text are removed this long after the task was due (README.md
    # § Data protection): 3 years, China's limitation period for a civil claim (Civil Code
    # art. 188), such as one about the care the call followed up.
    task_notes_retention_days = fields.Float(
        load_default=1096, validate=validate.Range(min=0.00001)
    )
    # Overrides of docs/RULES.md's defaults,
    # e.g. rules: {recovery_check: {days: 10, end_of_day: false}}
    rules = _rules_field(KINDS)
    # Per department, for the per-department kinds,
    # e.g. departments: {骨科: {recovery_check: {days: 14}}}
    departments = fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=100)),
        values=_rules_field(PER_DEPARTMENT),
    )
    scripts = fields.Dict(
        keys=fields.String(validate=validate.OneOf(KINDS)), values=fields.Nested(ScriptSchema)
    )
    # Service-quality surveys (docs/RULES.md § Service quality): the items scored 1-5, and
    # the one-time link offered after a call that recorded none.
    survey_items = fields.List(
        fields.Nested(SurveyItemSchema),
        load_default=lambda: [dict(i) for i in DEFAULT_ITEMS],
        validate=validate.Length(min=1, max=20),
    )
    survey_links = fields.Boolean(load_default=True)
    survey_link_kinds = EnvList(
        fields.String(validate=validate.OneOf(KINDS)),
        load_default=["post_visit_call", "post_discharge_call"],
    )
    survey_link_days = fields.Integer(load_default=7, validate=validate.Range(min=1, max=90))
    # The gateway's public address as patients reach it: links are <base>/survey/<token>.
    survey_link_base = fields.String(
        load_default="http://127.0.0.1:8080",
        validate=validate.Regexp(r"^https?://[^\s]+$", error="An http(s) URL."),
    )
    survey_language = fields.String(load_default="zh", validate=validate.OneOf(["zh", "en"]))
    survey_link_text = fields.Nested(
        ScriptSchema, load_default=None
    )  # {zh, en}: {department} {date} {link} {days}
    # Links whose sending was interrupted (a crash after the completion) are sent by this timer.
    survey_link_interval_s = fields.Float(load_default=30.0, validate=validate.Range(min=0.1))
    # How a link reaches the patient: the pluggable notifier appointments' reminders use.
    notifier = fields.String(load_default="outbox", validate=validate.OneOf(["outbox", "webhook"]))
    webhook_url = fields.String(load_default=None, validate=validate.Regexp(r"^https?://"))
    webhook_token = fields.String(load_default=None, metadata={"secret": True})

    @validates_schema
    def _survey_items_unique(self, data, **kwargs):
        keys = [item["key"] for item in data.get("survey_items") or []]
        if len(keys) != len(set(keys)):
            raise ValidationError("Each survey item once.", "survey_items")
        if data.get("notifier") == "webhook" and not data.get("webhook_url"):
            raise ValidationError("notifier webhook needs webhook_url.", "webhook_url")


def rules_of(config):
    rules = dict(DEFAULT_RULES)
    rules.update({kind: Rule(**rule) for kind, rule in (config.get("rules") or {}).items()})
    departments = {
        dept: {kind: Rule(**rule) for kind, rule in kinds.items()}
        for dept, kinds in (config.get("departments") or {}).items()
    }
    return rules, departments


def scripts_of(config):
    return {**DEFAULT_SCRIPTS, **(config.get("scripts") or {})}
