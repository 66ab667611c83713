"""What an event costs RabbitMQ, by how many queues it is routed to: N persistent messages the
size of a canonical event, published as the outbox does (batches of 100, one wait for the
confirms of each batch, `mandatory`), to a topic exchange bound to 1, 2 or 4 classic queues,
and to 4 queues plus a stream; then every queue drained as a consumer does (prefetch 200,
one ack per message). The broker's CPU per event, publishing and delivering apart.

  .venv/bin/python -m bench.fanout [N=5000]

The pipeline's event goes hospital.events → intake.inbound (1 queue), then intake.events →
followup, appointments, analytics, campaigns (4 queues), and its minimal copy to the stream;
followup's FollowUpScheduled → analytics (1). The figures say what each of those hops costs.
"""

import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo

from kombu import Connection, Exchange, Queue

from bench.common import Resources, installation, record, watch_broker
from shared.messaging import ConfirmedPublisher

BATCH = 100  # as the outbox's sender publishes under load
PREFETCH = 200  # as a batch consumer's prefetch (2 × its batch)
# The shapes measured: (label, classic queues bound, a stream bound too).
SHAPES = (("1 queue", 1, False), ("2 queues", 2, False), ("4 queues", 4, False))
SHAPES += (("4 queues + stream", 4, True),)


def event(n):
    """About the size of intake's canonical PatientVisited (1 KB of JSON)."""
    return {
        "event_id": f"{n:032x}",
        "event_type": "PatientVisited",
        "schema_version": 1,
        "patient_id": f"{n:032x}",
        "occurred_at": "2026-03-02T09:00:00+08:00",
        "data": {"patient": {"mrn": f"M{n:08d}", "name": "王芳", "phone": "13800138000"}}
        | {"visit_id": f"V{n}", "department": "心内科", "doctor_id": "D-1", "note": "x" * 600},
    }


def declare(amqp_uri, name, queues, stream):
    exchange = Exchange(name, type="topic", durable=True)
    bound = [Queue(f"{name}.q{i}", exchange, routing_key="#", durable=True) for i in range(queues)]
    if stream:
        bound.append(
            Queue(
                f"{name}.stream",
                exchange,
                routing_key="#",
                durable=True,
                queue_arguments={"x-queue-type": "stream"},
            )
        )
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        for queue in bound:
            queue(channel).declare()
    return [queue.name for queue in bound if not queue.name.endswith(".stream")]


def publish(amqp_uri, name, count):
    publisher = ConfirmedPublisher(amqp_uri)
    try:
        for start in range(0, count, BATCH):
            publisher.publish_all(
                [
                    (name, "PatientVisited", event(n), f"{n:032x}")
                    for n in range(start, min(start + BATCH, count))
                ]
            )
    finally:
        publisher.close()


def drain(amqp_uri, queues, count):
    received = 0

    def on_message(body, message):
        nonlocal received
        received += 1
        message.ack()

    with Connection(amqp_uri) as connection:
        consumer = connection.Consumer(
            [Queue(name, durable=True, no_declare=True) for name in queues],
            callbacks=[on_message],
            accept=["json"],
        )
        consumer.qos(prefetch_count=PREFETCH)
        with consumer:
            deadline = time.monotonic() + 300
            while received < count * len(queues) and time.monotonic() < deadline:
                connection.drain_events(timeout=5)
    return received


def main(count=5000):
    platform, store = installation()
    resources = watch_broker(Resources()).start()
    label = "rabbitmq (machine's)"
    lines = [
        f"{count} messages of ~1 KB per shape, persistent, confirmed in batches of {BATCH}; "
        f"drained with prefetch {PREFETCH} and one ack each"
    ]
    try:
        for shape, queues, stream in SHAPES:
            name = f"fanout.{queues}{'s' if stream else ''}"
            names = declare(platform.amqp_uri, name, queues, stream)
            before = resources.snapshot()
            started = time.perf_counter()
            publish(platform.amqp_uri, name, count)
            published_s = time.perf_counter() - started
            middle = resources.snapshot()
            received = drain(platform.amqp_uri, names, count)
            after = resources.snapshot()
            publish_ms = (middle[label] - before[label]) * 1000 / count
            deliver_ms = (after[label] - middle[label]) * 1000 / count
            lines.append(
                f"**{shape}**: publish {count / published_s:.0f} msg/s, broker CPU per event "
                f"{publish_ms:.2f} ms publishing + {deliver_ms:.2f} ms delivering "
                f"{received // max(count, 1)} cop{'y' if queues == 1 else 'ies'} = "
                f"{publish_ms + deliver_ms:.2f} ms ({received} of {count * queues} delivered)"
            )
        lines += resources.lines()
    finally:
        resources.stop()
        platform.close()
        store.close()
    record(f"RabbitMQ cost by fan-out, {count} events per shape", lines)


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:]))
