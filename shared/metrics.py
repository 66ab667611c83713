"""Prometheus metrics every process exposes (docs/ARCHITECTURE.md rule 7).

Names follow Prometheus conventions: `_total` counters, `_seconds` histograms, labels for
the process and the event type. Service-specific gauges (due follow-ups, open complaints)
are declared in each service next to the code that sets them.
"""

import logging

from nameko.extensions import DependencyProvider
from prometheus_client import Counter, Gauge, Histogram, start_http_server

log = logging.getLogger(__name__)

EVENTS_IN = Counter(
    "hcrm_events_in_total", "Messages received by a consumer", ["service", "queue", "event_type"]
)
EVENTS_OUT = Counter(
    "hcrm_events_out_total", "Events published with a broker confirm", ["service", "event_type"]
)
EVENTS_DUPLICATE = Counter(
    "hcrm_events_duplicate_total",
    "Messages recognised as already processed (at-least-once delivery)",
    ["service", "event_type"],
)
EVENTS_FAILED = Counter(
    "hcrm_events_failed_total", "Handler runs that raised", ["service", "queue", "error"]
)
EVENTS_REJECTED = Counter(
    "hcrm_events_rejected_total",
    "Messages moved to a rejected queue because they break the contract",
    ["service", "queue"],
)
EVENTS_RETRIED = Counter(
    "hcrm_events_retried_total", "Messages scheduled for a delayed retry", ["service", "queue"]
)
EVENTS_DEAD_LETTERED = Counter(
    "hcrm_events_dead_lettered_total",
    "Messages moved to the dead-letter queue after their retries",
    ["service", "queue"],
)
HANDLER_SECONDS = Histogram(
    "hcrm_handler_seconds",
    "Time spent handling one message",
    ["service", "queue"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
OUTBOX_PENDING = Gauge(
    "hcrm_outbox_pending", "Recorded events not yet confirmed by the broker", ["service"]
)


class MetricsServer(DependencyProvider):
    """Starts the /metrics listener of a service process once, on `metrics_host`:`metrics_port`
    (0 = off); 127.0.0.1 unless configured, so a laptop does not expose it to the network."""

    def setup(self) -> None:
        config = self.container.config["HCRM"]
        port, host = config["metrics_port"], config.get("metrics_host", "127.0.0.1")
        if port:
            start_http_server(port, addr=host)
            log.info("metrics listening", extra={"host": host, "port": port})
