"""The whole RabbitMQ topology, declared up front (`hcrm init`, and by every runner at start).

Declaring every queue before any consumer runs is what keeps inbound and inter-service events
when a consumer has never started: a topic exchange drops what no queue is bound to.

Per consumer queue Q there are also:
  Q.retry.<delay>ms  one holding queue per backoff step; the broker dead-letters each message
                     back to Q when its TTL runs out (delayed retry without a plugin);
and per service a dead-letter queue `<service>.dlq` for messages whose retries ran out.
"""
import dataclasses
import importlib.util

from kombu import Connection, Exchange, Queue, binding

from shared.events import INBOUND_EVENT_TYPES, SCHEDULING_TYPES

# Exchanges: inbound from hospital systems, then one per publishing service.
HOSPITAL_EXCHANGE = "hospital.events"
REJECTED_QUEUE = "hospital.events.rejected"
SERVICE_EXCHANGES = ("intake.events", "followup.events", "appointments.events", "complaints.events")
# The replayable stream for BI consumers (EVENTS.md): bound to every service exchange, so
# every canonical event a service publishes is appended by the broker itself.
ANALYTICS_STREAM = "hcrm.analytics"


SERVICE_NAMES = ("intake", "followup", "appointments", "complaints", "analytics")


@dataclasses.dataclass(frozen=True)
class Subscription:
    """One consumer queue of a service, bound to (exchange, routing key) pairs."""

    service: str
    queue: str
    bindings: tuple
    # Where a message that breaks its contract goes; None = the service's DLQ.
    reject_queue: str = None


SUBSCRIPTIONS = (
    # Every routing key: an unknown event_type must reach intake to be rejected with a
    # reason, not vanish as unroutable.
    Subscription("intake", "intake.inbound", ((HOSPITAL_EXCHANGE, "#"),), REJECTED_QUEUE),
    # Every intake event: any of them may restate the phone or withdraw consent.
    Subscription("followup", "followup.inbound", (
        ("intake.events", "#"), ("appointments.events", "AppointmentNoShow"))),
    # Visits mark attendance; every intake event may restate the phone or the consent.
    Subscription("appointments", "appointments.inbound", (("intake.events", "#"),)),
    Subscription("complaints", "complaints.inbound", (("followup.events", "ServiceRecoveryRequested"),
                                                      ("intake.events", "PatientsMerged"))),
    Subscription("analytics", "analytics.inbound", tuple((name, "#") for name in SERVICE_EXCHANGES)),
)


def available_services():
    """The services this installation has (services/<name>/service.py exists). Only their
    queues are declared, so a service not yet built does not hoard messages."""
    return [name for name in SERVICE_NAMES if _module_exists(f"services.{name}.service")]


def _module_exists(dotted):
    try:
        return importlib.util.find_spec(dotted) is not None
    except ModuleNotFoundError:  # the parent package does not exist
        return False


def subscriptions_of(service):
    return [s for s in SUBSCRIPTIONS if s.service == service]


def dead_letter_queue(service):
    return f"{service}.dlq"


def retry_queue(queue, delay_ms):
    return f"{queue}.retry.{int(delay_ms)}ms"


def topic_exchange(name):
    return Exchange(name, type="topic", durable=True, delivery_mode=2)


def consumer_queue(subscription, queue_type="classic"):
    """The kombu Queue a consumer reads; declared here with the same arguments as in init."""
    bindings = [binding(topic_exchange(exchange), routing_key=key)
                for exchange, key in subscription.bindings]
    return Queue(subscription.queue, bindings=bindings, durable=True,
                 queue_arguments={"x-queue-type": queue_type})


def _plain_queue(name, queue_type="classic", **arguments):
    return Queue(name, durable=True, queue_arguments={"x-queue-type": queue_type, **arguments})


# One name per fact on the stream (docs/EVENTS.md v1.1): an appointment from the hospital's
# scheduling system appears as the appointments service's AppointmentBooked / Cancelled /
# NoShow, so intake's copies of the inbound scheduling types are not appended.
INTAKE_STREAM_TYPES = tuple(t for t in INBOUND_EVENT_TYPES if t not in SCHEDULING_TYPES)


def stream_bindings():
    """(exchange, routing key) pairs the stream is bound with."""
    pairs = [("intake.events", event_type) for event_type in INTAKE_STREAM_TYPES]
    return pairs + [(name, "#") for name in SERVICE_EXCHANGES if name != "intake.events"]


def analytics_stream(max_age="400D", max_bytes=20 * 1024 ** 3):
    """The stream's retention is fixed when it is first declared; change it later with a
    RabbitMQ policy (README, Operations), not here: a redeclare with other arguments fails."""
    return Queue(ANALYTICS_STREAM, durable=True,
                 bindings=[binding(topic_exchange(name), routing_key=key)
                           for name, key in stream_bindings()],
                 queue_arguments={"x-queue-type": "stream", "x-max-age": max_age,
                                  "x-max-length-bytes": int(max_bytes)})


def topology(queue_type="classic", retry_delays_ms=(), services=None,
             stream_max_age="400D", stream_max_bytes=20 * 1024 ** 3):
    """Every exchange and queue, as kombu entities, in declaration order."""
    entities = [topic_exchange(HOSPITAL_EXCHANGE)]
    entities += [topic_exchange(name) for name in SERVICE_EXCHANGES]
    entities.append(analytics_stream(stream_max_age, stream_max_bytes))
    entities.append(_plain_queue(REJECTED_QUEUE, queue_type))
    services = available_services() if services is None else services
    chosen = [s for s in SUBSCRIPTIONS if s.service in services]
    for service in sorted({s.service for s in chosen}):
        entities.append(_plain_queue(dead_letter_queue(service), queue_type))
    for subscription in chosen:
        entities.append(consumer_queue(subscription, queue_type))
        for delay in retry_delays_ms:
            # Retry holding queues are always classic: they hold little and only briefly.
            entities.append(_plain_queue(
                retry_queue(subscription.queue, delay), "classic",
                **{"x-message-ttl": int(delay), "x-dead-letter-exchange": "",
                   "x-dead-letter-routing-key": subscription.queue}))
    return entities


def declare_topology(config, services=None):
    """Declare everything (idempotent) from a validated config. Returns the names declared."""
    names = []
    entities = topology(config["queue_type"], config["retry_delays_ms"], services,
                        config["stream_max_age"], config["stream_max_bytes"])
    with Connection(config["amqp_uri"], connect_timeout=10) as connection:
        channel = connection.channel()
        for entity in entities:
            entity.maybe_bind(channel)
            entity.declare()
            names.append(entity.name)
        # Before v1.1 the stream took every intake event ("#"); unbinding a binding that
        # does not exist is a no-op, so this is safe on every installation.
        channel.queue_unbind(ANALYTICS_STREAM, "intake.events", "#")
    return names
