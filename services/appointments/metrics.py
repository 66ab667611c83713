"""The appointments service's Prometheus metrics (one definition for its modules)."""

from prometheus_client import Counter, Gauge, Histogram

from services.appointments import domain

BOOKINGS = Counter("hcrm_appointments_booked_total", "Appointments booked", ["department"])
CANCELLATIONS = Counter(
    "hcrm_appointments_cancelled_total", "Appointments cancelled", ["department"]
)
OUTCOMES = Counter("hcrm_appointments_outcome_total", "Appointments ended", ["outcome"])
ENDED = (domain.NO_SHOW, domain.ATTENDED, domain.CHECKED_IN)  # what NO_SHOW_RATE is figured over
NO_SHOW_RATE = Gauge(
    "hcrm_appointments_no_show_rate", "No-shows / (no-shows + attended + checked in), since start"
)
REMINDER_LAG = Histogram(
    "hcrm_appointment_reminder_lag_seconds",
    "Reminder sent after its due time",
    buckets=(1, 5, 15, 30, 60, 300, 900, 3600),
)

for _outcome in ENDED:  # exported as 0 from the start rather than missing until the first one
    OUTCOMES.labels(_outcome)


def ended_counts():
    """{outcome: appointments ended so, since start} for ENDED, read through the public
    collect() (a labelled counter's value has no public getter)."""
    counts = dict.fromkeys(ENDED, 0.0)
    for metric in OUTCOMES.collect():
        for sample in metric.samples:
            if (
                sample.name == "hcrm_appointments_outcome_total"
                and sample.labels["outcome"] in counts
            ):
                counts[sample.labels["outcome"]] = sample.value
    return counts
