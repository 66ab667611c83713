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
from collections.abc import Iterable, Mapping
from typing import Any

from kombu import Connection, Exchange, Queue, binding

from shared.events import INBOUND_EVENT_TYPES, SCHEDULING_TYPES

# Exchanges: inbound from hospital systems, then one per publishing service.
HOSPITAL_EXCHANGE = "hospital.events"
REJECTED_QUEUE = "hospital.events.rejected"
SERVICE_EXCHANGES = (
    "intake.events",
    "followup.events",
    "appointments.events",
    "complaints.events",
    "campaigns.events",
)
# The replayable stream for BI consumers (docs/EVENTS.md). Since issue 18 it is bound to its own
# exchange only, where the analytics service appends a minimal copy of each canonical event
# (shared/minimise.py: no name, phone, MRN, birth date or free text), through its outbox.
ANALYTICS_STREAM = "hcrm.analytics"
STREAM_EXCHANGE = "hcrm.stream"


# hl7 (the HL7 v2 listener) consumes no queue: it takes MLLP connections and publishes to
# hospital.events like a hospital system does.
SERVICE_NAMES = (
    "intake",
    "followup",
    "appointments",
    "complaints",
    "analytics",
    "hl7",
    "campaigns",
)


@dataclasses.dataclass(frozen=True)
class Subscription:
    """One consumer queue of a service, bound to (exchange, routing key) pairs."""

    service: str
    queue: str
    bindings: tuple[tuple[str, str], ...]  # (exchange, routing key)
    # Where a message that breaks its contract goes; None = the service's DLQ.
    reject_queue: str | None = None


SUBSCRIPTIONS = (
    # Every routing key: an unknown event_type must reach intake to be rejected with a
    # reason, not vanish as unroutable.
    Subscription("intake", "intake.inbound", ((HOSPITAL_EXCHANGE, "#"),), REJECTED_QUEUE),
    # Every intake event: any of them may restate the phone or withdraw consent.
    # Campaigns: a call campaign's tasks, and an opt-out that cancels those still pending.
    Subscription(
        "followup",
        "followup.inbound",
        (
            ("intake.events", "#"),
            ("appointments.events", "AppointmentNoShow"),
            ("campaigns.events", "CampaignCallRequested"),
            ("campaigns.events", "MarketingConsentWithdrawn"),
        ),
    ),
    # Visits mark attendance; every intake event may restate the phone or the consent.
    Subscription("appointments", "appointments.inbound", (("intake.events", "#"),)),
    Subscription(
        "complaints",
        "complaints.inbound",
        (
            ("followup.events", "ServiceRecoveryRequested"),
            ("intake.events", "PatientsMerged"),
            ("intake.events", "PatientErased"),
        ),
    ),
    Subscription(
        "analytics", "analytics.inbound", tuple((name, "#") for name in SERVICE_EXCHANGES)
    ),
    # The HL7 listener keeps raw messages: an erased person's are cleared (services/hl7/privacy.py).
    Subscription("hl7", "hl7.inbound", (("intake.events", "PatientErased"),)),
    # Campaigns keep their own copy of the people (contact, consents, visits, segment inputs).
    Subscription("campaigns", "campaigns.inbound", (("intake.events", "#"),)),
)


def available_services() -> list[str]:
    """The services this installation has (services/<name>/service.py exists). Only their
    queues are declared, so a service not yet built does not hoard messages."""
    return [name for name in SERVICE_NAMES if _module_exists(f"services.{name}.service")]


def _module_exists(dotted: str) -> bool:
    try:
        return importlib.util.find_spec(dotted) is not None
    except ModuleNotFoundError:  # the parent package does not exist
        return False


def subscriptions_of(service: str) -> list[Subscription]:
    return [s for s in SUBSCRIPTIONS if s.service == service]


def dead_letter_queue(service: str) -> str:
    return f"{service}.dlq"


def retry_queue(queue: str, delay_ms: float) -> str:
    return f"{queue}.retry.{int(delay_ms)}ms"


def topic_exchange(name: str) -> Exchange:
    return Exchange(name, type="topic", durable=True, delivery_mode=2)


# Quorum queues (a RabbitMQ cluster, HCRM_QUEUE_TYPE=quorum) count every redelivery: a message
# returned to the queue (its consumer's connection died, its node failed over, or we requeued
# it because the broker refused our retry publish) comes back with x-delivery-count + 1.
# Our own retries never count: a failed handler's message is acked and republished to a retry
# queue with x-hcrm-attempt. So the limit only stops a message that keeps coming back without
# being settled, e.g. one that kills its consumer process every time: after 20 returns the
# broker dead-letters it to the service's DLQ (hcrm dlq) instead of crash-looping every
# replica. 20 is far above what an honest message meets (one return per node failure, per
# killed replica, up to three in a rolling restart of three nodes) and is RabbitMQ 4's default.
# Fixed here, not configurable: a redeclare with another value fails (PRECONDITION_FAILED);
# an operator may lower it at run time with a policy (`delivery-limit`), the lower one wins.
QUORUM_DELIVERY_LIMIT = 20


def _dead_letter_to(queue: str, queue_type: str) -> dict[str, Any]:
    """Broker-side dead-lettering (a delivery limit, a TTL) to `queue` on the default
    exchange; on quorum queues at-least-once (the message leaves its queue only when the
    target confirmed it), which requires reject-publish overflow (no length limit is set, so
    it never rejects)."""
    arguments = {"x-dead-letter-exchange": "", "x-dead-letter-routing-key": queue}
    if queue_type == "quorum":
        arguments.update(
            {"x-dead-letter-strategy": "at-least-once", "x-overflow": "reject-publish"}
        )
    return arguments


def consumer_queue(subscription: Subscription, queue_type: str = "classic") -> Queue:
    """The kombu Queue a consumer reads; declared here with the same arguments as in init."""
    bindings = [
        binding(topic_exchange(exchange), routing_key=key)
        for exchange, key in subscription.bindings
    ]
    arguments: dict[str, Any] = {"x-queue-type": queue_type}
    if queue_type == "quorum":
        arguments["x-delivery-limit"] = QUORUM_DELIVERY_LIMIT
        arguments.update(_dead_letter_to(dead_letter_queue(subscription.service), queue_type))
    return Queue(subscription.queue, bindings=bindings, durable=True, queue_arguments=arguments)


def rpc_queue_arguments(queue_type: str = "classic") -> dict[str, Any] | None:
    """Arguments of nameko's `rpc-<service>` queue (shared.messaging.rpc declares it). Classic:
    none, as nameko declares it. Quorum: a classic queue lives on one node, and while that node
    is down its service cannot even redeclare it (NOT_FOUND) and answers no RPC."""
    if queue_type != "quorum":
        return None
    return {"x-queue-type": "quorum", "x-delivery-limit": QUORUM_DELIVERY_LIMIT}


def _plain_queue(name: str, queue_type: str = "classic", **arguments: Any) -> Queue:
    return Queue(name, durable=True, queue_arguments={"x-queue-type": queue_type, **arguments})


# One name per fact on the stream (docs/EVENTS.md v1.1): an appointment from the hospital's
# scheduling system appears as the appointments service's AppointmentBooked / Cancelled /
# NoShow, so intake's copies of the inbound scheduling types are not appended.
INTAKE_STREAM_TYPES = tuple(t for t in INBOUND_EVENT_TYPES if t not in SCHEDULING_TYPES)


def stream_bindings() -> list[tuple[str, str]]:
    """(exchange, routing key) pairs the stream is bound with: its own exchange only. Which
    types reach it, and which of their fields, is shared/minimise.py's allow-list."""
    return [(STREAM_EXCHANGE, "#")]


def legacy_stream_bindings() -> list[tuple[str, str]]:
    """The bindings of releases before issue 18 (the stream took the service exchanges'
    full events, names and phones included): `hcrm init` removes them."""
    pairs = [("intake.events", "#")] + [
        ("intake.events", event_type) for event_type in INBOUND_EVENT_TYPES
    ]
    return pairs + [(name, "#") for name in SERVICE_EXCHANGES if name != "intake.events"]


def analytics_stream(max_age: str = "400D", max_bytes: float = 20 * 1024**3) -> Queue:
    """The stream's retention is fixed when it is first declared; change it later with a
    RabbitMQ policy (README, Operations), not here: a redeclare with other arguments fails."""
    return Queue(
        ANALYTICS_STREAM,
        durable=True,
        bindings=[
            binding(topic_exchange(name), routing_key=key) for name, key in stream_bindings()
        ],
        queue_arguments={
            "x-queue-type": "stream",
            "x-max-age": max_age,
            "x-max-length-bytes": int(max_bytes),
        },
    )


def topology(
    queue_type: str = "classic",
    retry_delays_ms: Iterable[float] = (),
    services: Iterable[str] | None = None,
    stream_max_age: str = "400D",
    stream_max_bytes: float = 20 * 1024**3,
) -> list[Exchange | Queue]:
    """Every exchange and queue, as kombu entities, in declaration order."""
    entities: list[Exchange | Queue] = [topic_exchange(HOSPITAL_EXCHANGE)]
    entities += [topic_exchange(name) for name in SERVICE_EXCHANGES]
    entities.append(topic_exchange(STREAM_EXCHANGE))
    entities.append(analytics_stream(stream_max_age, stream_max_bytes))
    entities.append(_plain_queue(REJECTED_QUEUE, queue_type))
    services = available_services() if services is None else services
    chosen = [s for s in SUBSCRIPTIONS if s.service in services]
    for service in sorted({s.service for s in chosen}):
        entities.append(_plain_queue(dead_letter_queue(service), queue_type))
    for subscription in chosen:
        entities.append(consumer_queue(subscription, queue_type))
        for delay in retry_delays_ms:
            # Retry holding queues have the installation's type too. A classic one lives on one
            # node: while that node is down a publish to it is unroutable, so a failed handler's
            # message is requeued at once, again and again (each a delivery on a quorum queue),
            # and the messages it holds are stuck until the node returns.
            entities.append(
                _plain_queue(
                    retry_queue(subscription.queue, delay),
                    queue_type,
                    **{
                        "x-message-ttl": int(delay),
                        **_dead_letter_to(subscription.queue, queue_type),
                    },
                )
            )
    return entities


def declare_topology(config: Mapping[str, Any], services: Iterable[str] | None = None) -> list[str]:
    """Declare everything (idempotent) from a validated config. Returns the names declared."""
    names = []
    entities = topology(
        config["queue_type"],
        config["retry_delays_ms"],
        services,
        config["stream_max_age"],
        config["stream_max_bytes"],
    )
    with Connection(config["amqp_uri"], connect_timeout=10) as connection:
        channel = connection.channel()
        for entity in entities:
            entity.maybe_bind(channel)
            entity.declare()
            names.append(entity.name)
        # Earlier releases bound the stream to the service exchanges (full events, personal
        # data included); unbinding a binding that does not exist is a no-op, so this is safe
        # on every installation. What such a stream holds already stays until its retention
        # drops it (README.md § Data protection says how to drop it at once).
        for exchange, key in legacy_stream_bindings():
            channel.queue_unbind(ANALYTICS_STREAM, exchange, key)
    return names
