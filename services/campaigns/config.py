"""Campaigns configuration (docs/RULES.md § Campaigns): quiet hours, the per-day limit, the
holiday calendar, the opt-out keywords, the notifier."""

from marshmallow import fields, validate

from shared.config import BaseConfig, EnvList, KnownHolidayCountry, WebhookNeedsUrl

TIME = validate.Regexp(r"^([01]\d|2[0-3]):[0-5]\d$", error="A time HH:MM.")


class CampaignsConfig(WebhookNeedsUrl, KnownHolidayCountry, BaseConfig):
    # No campaign message between these local times (hospital time zone); the window may wrap
    # midnight (21:00-08:00). Equal start and end: no quiet hours.
    quiet_start = fields.String(load_default="21:00", validate=TIME)
    quiet_end = fields.String(load_default="08:00", validate=TIME)
    # Campaign contacts (an SMS or a call task) per person per local day, all campaigns together.
    daily_limit = fields.Integer(load_default=1, validate=validate.Range(min=1, max=10))
    # How often due campaigns are targeted and due deliveries sent, and how many per round.
    timer_interval_s = fields.Float(load_default=30.0, validate=validate.Range(min=0.05))
    send_batch = fields.Integer(load_default=200, validate=validate.Range(min=1, max=5000))
    # A delivery claimed by a sender that died is taken over after this long (the notifier is
    # idempotent by the delivery's id, so a take-over never sends a second message).
    claim_seconds = fields.Float(load_default=60.0, validate=validate.Range(min=0.5, max=3600))
    # "returned": a visit within this many days after the message (docs/RULES.md).
    return_window_days = fields.Integer(load_default=30, validate=validate.Range(min=1, max=365))
    # Holiday greetings: the calendar (the `holidays` package, like followup's business days)
    # and the local time a holiday campaign is sent on the holiday's first day.
    holiday_country = fields.String(load_default="CN", validate=validate.Length(equal=2))
    holiday_send_time = fields.String(load_default="09:00", validate=TIME)
    # The language of the SMS text when a campaign does not name one.
    default_language = fields.String(load_default="zh", validate=validate.OneOf(["zh", "en"]))
    # An SMS reply that is one of these (case, spaces and punctuation ignored) withdraws the
    # sender's marketing consent: TD and 退订 are what Chinese SMS senders print ("回TD退订").
    opt_out_keywords = EnvList(
        fields.String(validate=validate.Length(min=1, max=20)),
        load_default=["TD", "退订", "T", "STOP", "UNSUBSCRIBE"],
    )
    # "outbox": recorded in the notifications collection and the log; "webhook": POST to an SMS
    # gateway (shared/notifier.py, as appointments' reminders).
    notifier = fields.String(load_default="outbox", validate=validate.OneOf(["outbox", "webhook"]))
    webhook_url = fields.String(load_default=None, validate=validate.Regexp(r"^https?://"))
    webhook_token = fields.String(load_default=None, metadata={"secret": True})
