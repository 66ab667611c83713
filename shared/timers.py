"""Timers whose interval is a configuration value (`@configured_timer("<key>_interval_s")`)."""

from typing import Any

from nameko.timer import Timer


class ConfiguredTimer(Timer):
    """nameko's timer with its interval read from the validated config at start."""

    def __init__(self, config_key: str, **kwargs: Any) -> None:
        self.config_key = config_key
        super().__init__(interval=1.0, **kwargs)

    def setup(self) -> None:
        self.interval = float(self.container.config["HCRM"][self.config_key])
        super().setup()


configured_timer = ConfiguredTimer.decorator
