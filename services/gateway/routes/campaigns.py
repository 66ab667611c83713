"""Outreach campaigns with consent (campaigns over RPC; docs/RULES.md § Campaigns): a manager
defines and follows them; an agent notes a patient's opt-out; the SMS gateway forwards the
patients' replies ("TD", "退订") to the reply webhook."""

from marshmallow import RAISE, Schema, ValidationError, fields, validate, validates_schema

from services.gateway import schemas
from services.gateway.http import MANAGERS, PUBLISHERS, STAFF, json_response, route
from shared.segments import SEGMENTS

AGE_BANDS = ("0-17", "18-39", "40-59", "60-79", "80+", "unknown")  # shared/minimise.py
HOLIDAYS = (
    "new_year",
    "spring_festival",
    "qingming",
    "labour_day",
    "dragon_boat",
    "mid_autumn",
    "national_day",
)  # services/campaigns/domain.py
STATUSES = ("scheduled", "targeting", "sending", "done")


class Range(Schema):
    class Meta:
        unknown = RAISE

    min = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=0, max=100_000))
    max = fields.Integer(strict=True, allow_none=True, validate=validate.Range(min=0, max=100_000))

    @validates_schema
    def _ordered(self, data, **kwargs):
        if (
            data.get("min") is not None
            and data.get("max") is not None
            and data["min"] > data["max"]
        ):
            raise ValidationError("min must not be greater than max.", "min")


class OneOrMany(fields.Field):
    """A value or a list of values, each one of `choices` (when given): "key" or
    ["key", "regular"]."""

    def __init__(self, choices=None, **kwargs):
        super().__init__(**kwargs)
        self.choices = choices

    def _deserialize(self, value, attr, data, **kwargs):
        values = value if isinstance(value, list) else [value]
        if (
            not values
            or len(values) > 50
            or not all(isinstance(v, str) and 0 < len(v) <= 100 for v in values)
        ):
            raise ValidationError("A text or a list of texts (1 to 50 of them).")
        if self.choices and set(values) - set(self.choices):
            raise ValidationError(f"One or more of: {', '.join(self.choices)}.")
        return value


class Segment(Schema):
    class Meta:
        unknown = RAISE

    department = fields.String(validate=validate.Length(min=1, max=100))
    days_since_visit = fields.Nested(Range)
    days_since_discharge = fields.Nested(Range)
    visit_count = fields.Nested(Range)
    segment = OneOrMany(SEGMENTS)
    age_band = OneOrMany(AGE_BANDS)
    region = OneOrMany()


class Template(Schema):
    class Meta:
        unknown = RAISE

    zh = fields.String(required=True, validate=validate.Length(min=1, max=500))
    en = fields.String(required=True, validate=validate.Length(min=1, max=500))


class CampaignCreate(Schema):
    class Meta:
        unknown = RAISE

    name = fields.String(required=True, validate=validate.Length(min=1, max=100))
    segment = fields.Nested(Segment, load_default=dict)
    channel = fields.String(required=True, validate=validate.OneOf(["sms", "call"]))
    template = fields.Nested(Template, required=True)
    # When: a time, or a holiday of the configured calendar (its first day, at holiday_send_time).
    send_at = fields.AwareDateTime(format="iso")
    holiday = fields.String(validate=validate.OneOf(HOLIDAYS))
    language = fields.String(validate=validate.OneOf(["zh", "en"]))

    @validates_schema
    def _one_time(self, data, **kwargs):
        if ("send_at" in data) == ("holiday" in data):
            raise ValidationError("Give send_at or holiday (one of the two).", "send_at")


class CampaignQuery(schemas.PageQuery):
    status = fields.String(validate=validate.OneOf(STATUSES))


class OptOut(Schema):
    class Meta:
        unknown = RAISE

    note = fields.String(allow_none=True, validate=validate.Length(max=500))


class SmsReply(Schema):
    class Meta:
        unknown = RAISE

    phone = fields.String(required=True, validate=validate.Length(min=3, max=40))
    text = fields.String(required=True, validate=validate.Length(max=1000))
    reply_id = fields.String(validate=validate.Length(min=1, max=128))
    received_at = fields.AwareDateTime(format="iso")


@route("POST", "/api/v1/campaigns", roles=MANAGERS, body=CampaignCreate, status=201)
def create_campaign(gw, ctx):
    """Schedule a campaign: only people with marketing consent are reached (201 with its id)."""
    body = ctx.body(CampaignCreate)
    if "send_at" in body:
        body["send_at"] = body["send_at"].isoformat()
    return json_response(
        gw.rpc.call("campaigns", "create_campaign", created_by=ctx.user, **body), 201
    )


@route("GET", "/api/v1/campaigns", roles=MANAGERS, query=CampaignQuery)
def list_campaigns(gw, ctx):
    return json_response(gw.rpc.call("campaigns", "list_campaigns", **ctx.query(CampaignQuery)))


@route("GET", "/api/v1/campaigns/holidays", roles=MANAGERS)
def upcoming_holidays(gw, ctx):
    """The next date of each holiday a greeting may be scheduled for, and when it would be sent."""
    return json_response(gw.rpc.call("campaigns", "upcoming_holidays"))


@route("GET", "/api/v1/campaigns/<campaign_id>", roles=MANAGERS)
def get_campaign(gw, ctx, campaign_id):
    """The campaign and its report: targeted, excluded_no_consent, sent, calls_created,
    returned_within_30d (docs/RULES.md § Campaigns)."""
    return json_response(gw.rpc.call("campaigns", "get_campaign", campaign_id=campaign_id))


@route("POST", "/api/v1/campaigns/replies", roles=PUBLISHERS, body=SmsReply)
def sms_reply(gw, ctx):
    """The SMS gateway's webhook for patients' replies: "TD" / "退订" withdraws the marketing
    consent of the number's owners. Answers how many, never who."""
    body = ctx.body(SmsReply)
    return json_response(
        gw.rpc.call(
            "campaigns",
            "sms_reply",
            phone=body["phone"],
            text=body["text"],
            reply_id=body.get("reply_id"),
        )
    )


def _known_patient(gw, ctx, patient_id):
    """The person's id as intake knows it (404 for an unknown one; a retired id gives the
    survivor)."""
    patient = gw.rpc.call("intake", "get_patient", patient_id=patient_id)
    ctx.patient_id = patient["patient_id"]
    return patient["patient_id"]


@route("GET", "/api/v1/patients/<patient_id>/marketing", roles=STAFF, audit=True)
def marketing_consent(gw, ctx, patient_id):
    """Whether campaigns may reach the person: the consent stated by the hospital and any
    opt-out."""
    return json_response(
        gw.rpc.call("campaigns", "consent", patient_id=_known_patient(gw, ctx, patient_id))
    )


@route(
    "POST", "/api/v1/patients/<patient_id>/marketing-opt-out", roles=STAFF, audit=True, body=OptOut
)
def opt_out(gw, ctx, patient_id):
    """An agent notes that the person wants no more campaigns (the note stays in campaigns' own
    store, never on the stream)."""
    note = (ctx.body(OptOut) or {}).get("note")
    return json_response(
        gw.rpc.call(
            "campaigns",
            "opt_out",
            patient_id=_known_patient(gw, ctx, patient_id),
            via="agent",
            note=note,
            actor=ctx.user,
        )
    )


@route("DELETE", "/api/v1/patients/<patient_id>/marketing-opt-out", roles=MANAGERS, audit=True)
def restore_consent(gw, ctx, patient_id):
    """The person consented again (in writing): the opt-out is lifted."""
    return json_response(
        gw.rpc.call(
            "campaigns",
            "restore_consent",
            patient_id=_known_patient(gw, ctx, patient_id),
            actor=ctx.user,
        )
    )
