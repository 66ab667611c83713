"""Analytics configuration: only the shared settings (time zone above all) for now."""
from shared.config import BaseConfig


class AnalyticsConfig(BaseConfig):
    pass
