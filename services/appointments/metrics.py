"""The appointments service's Prometheus metrics (one definition for its modules)."""
from prometheus_client import Counter, Gauge, Histogram

BOOKINGS = Counter("hcrm_appointments_booked_total", "Appointments booked", ["department"])
CANCELLATIONS = Counter("hcrm_appointments_cancelled_total", "Appointments cancelled", ["department"])
OUTCOMES = Counter("hcrm_appointments_outcome_total", "Appointments ended", ["outcome"])
NO_SHOW_RATE = Gauge("hcrm_appointments_no_show_rate", "No-shows / (no-shows + attended + checked in), since start")
REMINDER_LAG = Histogram("hcrm_appointment_reminder_lag_seconds", "Reminder sent after its due time",
                         buckets=(1, 5, 15, 30, 60, 300, 900, 3600))
