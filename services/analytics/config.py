"""Analytics configuration: the shared settings (time zone above all) and the refresh of the
per-day partial figures."""

from marshmallow import fields, validate

from services.analytics.agents import TARGET_FIGURES
from shared.config import BaseConfig


class AnalyticsConfig(BaseConfig):
    # How often the days changed since the last refresh get their partial figures recomputed,
    # so that the manager's summary of a year reads 365 ready partials.
    figures_refresh_interval_s = fields.Float(load_default=5.0, validate=validate.Range(min=0.1))
    figures_refresh_batch = fields.Integer(load_default=200, validate=validate.Range(min=1))
    # At most this much time per refresh: a bulk import makes many days stale at once, and the
    # consumers share the store with the refresh.
    figures_refresh_budget_s = fields.Float(load_default=1.0, validate=validate.Range(min=0.05))
    # A day that changes on every tick (today, under live traffic) is recomputed at most this
    # often; a day that changed and then went quiet is recomputed at the next tick
    # (services/analytics/pacing.py). 0 recomputes every changed day on every tick.
    figures_refresh_max_delay_s = fields.Float(load_default=300.0, validate=validate.Range(min=0))
    # A minimal copy published to the stream is kept this long (then deleted by the retention
    # timer): long enough that a redelivered event is recognised and not appended again.
    stream_outbox_keep_hours = fields.Float(load_default=24.0, validate=validate.Range(min=0.0001))
    # The agents' targets (docs/RULES.md § Agents), each "at least", over the defaults of
    # agents.DEFAULT_TARGETS; null removes one. E.g. agent_targets: {reach_rate: 0.85}
    agent_targets = fields.Dict(
        keys=fields.String(validate=validate.OneOf(TARGET_FIGURES)),
        values=fields.Float(allow_none=True, validate=validate.Range(min=0, max=5)),
        load_default=dict,
    )
