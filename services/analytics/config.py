"""Analytics configuration: the shared settings (time zone above all) and the refresh of the
per-day partial figures."""
from marshmallow import fields, validate

from shared.config import BaseConfig


class AnalyticsConfig(BaseConfig):
    # How often the days changed since the last refresh get their partial figures recomputed,
    # so that the manager's summary of a year reads 365 ready partials.
    figures_refresh_interval_s = fields.Float(load_default=5.0, validate=validate.Range(min=0.1))
    figures_refresh_batch = fields.Integer(load_default=200, validate=validate.Range(min=1))
    # At most this much time per refresh: a bulk import makes many days stale at once, and the
    # consumers share the store with the refresh.
    figures_refresh_budget_s = fields.Float(load_default=1.0, validate=validate.Range(min=0.05))
