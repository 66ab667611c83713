"""Latency: PatientVisited published at a fixed rate → FollowUpScheduled (post_visit_call)
seen on followup.events, p50/p95/p99, at each rate.

  .venv/bin/python -m bench.latency [--rates 10,50,200] [--duration 60] [--drain 60]

Per rate a fresh installation (own vhost and databases on one NX-27017) runs intake,
followup and analytics. The bench binds its own queue to intake.events (PatientVisited:
gives the patient_id intake assigned to each source event) and to followup.events
(FollowUpScheduled: matched by patient_id; one new patient per event, so one call each).
Every event is published on schedule (t0 + i/rate; a late publisher catches up at once);
latency is from the moment the publish started to the moment the bench received the
FollowUpScheduled. After the last publish it waits up to --drain seconds for the rest and
reports how many arrived, the achieved rate, and the peak RSS and CPU time of every process.
"""

import argparse
import json
import os
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo

from kombu import Connection, Consumer, Exchange, Queue, binding

from bench.common import (
    Platform,
    Resources,
    installation,
    percentile,
    record,
    start_services,
    watch_platform,
)
from tests import factories

SERVICES = ("intake", "followup", "analytics")


class Listener(threading.Thread):
    """Receives intake's PatientVisited and followup's FollowUpScheduled on a queue of its
    own; notes when each arrived (time.monotonic())."""

    def __init__(self, amqp_uri):
        super().__init__(name="listener", daemon=True)
        self.amqp_uri = amqp_uri
        self.queue = Queue(
            f"bench.latency.{uuid.uuid4().hex[:8]}",
            exclusive=True,
            auto_delete=True,
            bindings=[
                binding(
                    Exchange("intake.events", type="topic", durable=True),
                    routing_key="PatientVisited",
                ),
                binding(
                    Exchange("followup.events", type="topic", durable=True),
                    routing_key="FollowUpScheduled",
                ),
            ],
        )
        self.patient_of = {}  # source event_id -> patient_id
        self.intake_at = {}  # source event_id -> when intake's event arrived
        self.scheduled_at = {}  # patient_id -> when its post_visit_call was scheduled
        self.ready = threading.Event()
        self.done = threading.Event()

    def run(self):
        with (
            Connection(self.amqp_uri) as connection,
            Consumer(
                connection.channel(),
                [self.queue],
                callbacks=[self.on_message],
                accept=["json"],
                auto_declare=True,
            ) as consumer,
        ):
            consumer.qos(prefetch_count=500)
            self.ready.set()
            while not self.done.is_set():
                try:
                    connection.drain_events(timeout=0.2)
                except TimeoutError:
                    pass
                except OSError:  # socket.timeout on older stacks
                    pass

    def on_message(self, body, message):
        now = time.monotonic()
        if isinstance(body, (bytes, str)):
            body = json.loads(body)
        if body.get("event_type") == "PatientVisited":
            self.intake_at.setdefault(body["source_event_id"], now)
            self.patient_of[body["source_event_id"]] = body["patient_id"]
        elif (
            body.get("event_type") == "FollowUpScheduled"
            and body["data"].get("kind") == "post_visit_call"
        ):
            self.scheduled_at.setdefault(body["patient_id"], now)
        message.ack()

    def arrived(self, event_ids):
        return sum(1 for e in event_ids if self.patient_of.get(e) in self.scheduled_at)


def slow_windows(by_time, slow_s=0.1):
    """Where the slow events sit in the run: spread out (every event a little slow: too much
    work) or together in a few seconds (a stall: everything waited behind something)."""
    slow = [(t, latency) for t, latency in by_time if latency > slow_s]
    if not slow:
        return f"events slower than {slow_s * 1000:.0f} ms: none"
    seconds = sorted({int(t) for t, _ in slow})
    worst = sorted(slow, key=lambda item: -item[1])[:3]
    return (
        f"events slower than {slow_s * 1000:.0f} ms: {len(slow)} of {len(by_time)}, "
        f"published within {len(seconds)} distinct seconds of the run "
        f"({', '.join(f'{s}' for s in seconds[:12])}"
        f"{', ...' if len(seconds) > 12 else ''}); the slowest published at "
        + ", ".join(f"{t:.1f} s ({latency * 1000:.0f} ms)" for t, latency in worst)
    )


def handler_times(platform):
    """Each service's own time per message (hcrm_handler_seconds, from its /metrics): against
    the end-to-end latency, what is work and what is waiting in a queue."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    parts = []
    for process in platform.processes:
        port = getattr(process, "metrics_port", None)
        if not port or not process.alive():
            continue
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        buckets = {}
        for family in text_string_to_metric_families(text):
            if family.name == "hcrm_handler_seconds":
                for sample in family.samples:
                    if sample.name.endswith("_bucket"):
                        le = float(sample.labels["le"])
                        buckets[le] = buckets.get(le, 0) + sample.value
        if not buckets:
            continue
        total = buckets[float("inf")]
        bounds = sorted(buckets)

        def quantile(q):
            return next((le for le in bounds if buckets[le] >= q * total), float("inf"))

        parts.append(
            f"{process.name} p50 ≤ {quantile(0.5) * 1000:g} ms, p99 ≤ {quantile(0.99) * 1000:g} ms "
            f"({total:.0f} messages)"
        )
    return "handler time per message (hcrm_handler_seconds buckets): " + "; ".join(parts)


def run_rate(store, logs, rate, duration, drain):
    platform = Platform(store, logs)
    resources = Resources().start()
    listener = None
    try:
        start_services(platform, *SERVICES)
        watch_platform(resources, platform, store)
        listener = Listener(platform.amqp_uri)
        listener.start()
        if not listener.ready.wait(30):
            raise SystemExit("the listener did not start")
        count = int(rate * duration)
        tag = uuid.uuid4().hex[:4]
        events = [
            factories.visit(f"L{tag}{i:06d}", phone=f"13{rate % 10}{i:08d}") for i in range(count)
        ]
        published_at = {}
        resources.mark()
        t0 = time.monotonic()
        for i, event in enumerate(events):
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            published_at[event["event_id"]] = time.monotonic()
            platform.publish(event)
        publishing = time.monotonic() - t0
        ids = list(published_at)
        deadline = time.monotonic() + drain
        while listener.arrived(ids) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        waited = time.monotonic() - t0 - publishing
        resources.stop()
        listener.done.set()

        latencies, intake, by_time = [], [], []
        for event_id in ids:
            patient_id = listener.patient_of.get(event_id)
            if event_id in listener.intake_at:
                intake.append(listener.intake_at[event_id] - published_at[event_id])
            if patient_id in listener.scheduled_at:
                latency = listener.scheduled_at[patient_id] - published_at[event_id]
                latencies.append(latency)
                by_time.append((published_at[event_id] - t0, latency))
        latencies.sort()
        intake.sort()
        tenth = max(1.0, publishing / 10)
        first = sorted(latency for t, latency in by_time if t < tenth)
        last = sorted(latency for t, latency in by_time if t >= publishing - tenth)

        def ms(value):
            return "n/a" if value is None else f"{value * 1000:.0f} ms"

        return [
            f"**{rate}/s for {duration:g} s**: published {count} in {publishing:.1f} s = "
            f"{count / publishing:.1f}/s achieved; FollowUpScheduled arrived for "
            f"{len(latencies)} of {count} ({count - len(latencies)} not arrived when the bench "
            f"stopped waiting, {waited:.1f} s after the last publish; --drain {drain:g} s)",
            f"{rate}/s publish → FollowUpScheduled (over the {len(latencies)} arrived): "
            f"p50 {ms(percentile(latencies, 50))}, "
            f"p95 {ms(percentile(latencies, 95))}, p99 {ms(percentile(latencies, 99))}, "
            f"max {ms(latencies[-1] if latencies else None)}; "
            f"p50 in the first tenth of the run {ms(percentile(first, 50))}, in the last tenth "
            f"{ms(percentile(last, 50))}",
            f"{rate}/s publish → intake's PatientVisited: p50 {ms(percentile(intake, 50))}, "
            f"p99 {ms(percentile(intake, 99))} ({len(intake)} arrived)",
            f"{rate}/s {slow_windows(by_time)}",
            f"{rate}/s {handler_times(platform)}",
            *(f"{rate}/s {line}" for line in resources.lines()),
        ]
    finally:
        if listener:
            listener.done.set()
            listener.join(timeout=5)
        resources.stop()
        platform.close()


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rates", default="10,50,200", help="events per second, comma-separated")
    parser.add_argument(
        "--duration", type=float, default=60.0, help="seconds of publishing per rate"
    )
    parser.add_argument(
        "--drain",
        type=float,
        default=60.0,
        help="seconds to wait after the last publish for the rest to arrive",
    )
    args = parser.parse_args(argv)
    rates = [int(r) for r in args.rates.split(",") if r.strip()]
    platform, store = installation()
    platform.close()  # only its NX-27017 and log folder are shared; each rate gets its own
    lines = []
    try:
        for rate in rates:
            lines += run_rate(store, platform.log_dir, rate, args.duration, args.drain)
            print("\n".join(lines[-6:]), flush=True)
    finally:
        store.close()
    record(
        f"latency, PatientVisited → FollowUpScheduled, at {', '.join(f'{r}/s' for r in rates)} "
        f"for {args.duration:g} s each",
        lines,
    )


if __name__ == "__main__":
    main()
