"""Soak: the platform for a long while at a steady rate with the portal's reads alongside;
does anything grow that would fill a machine in a month? (issue 19)

  .venv/bin/python -m bench.soak [--minutes 30] [--rate 20] [--reads 3] [--sample 30]
                                 [--window 5] [--services all] [--csv FILE]

One isolated installation (own vhost, own NX-27017, like the tests) runs every service and
the gateway (gunicorn, 2 workers). For --minutes, events are published to hospital.events
at --rate per second on schedule (18 of 20 a new patient's visit, one a returning
patient's visit, one a discharge), while a reader does the portal's typical reads through
the gateway at --reads per second, in turn: the worklist (`/api/v1/followups?status=pending`
..., as the portal asks), a patient search (by MRN or phone) and the dashboard summary (the
last 30 days).

Every --sample seconds it notes, and prints as one row: each process's RSS (VmRSS) and CPU
(% of one core since the last sample) from /proc — every service, the gateway's master and
workers, NX-27017, the machine's RabbitMQ and the bench itself —, the depth of every
consumer queue, DLQ and the rejected queue, what the outboxes hold unpublished
(hcrm_outbox_pending), and how busy the whole machine is. Per --window minutes: the latency
publish → FollowUpScheduled (a new patient's post-visit call, seen on followup.events, as
bench/latency.py measures it) p50/p99/max, the reads' p50/p99 and errors, the peak queue
depth, RSS at the end of the window and the mean CPU. At the end, a verdict on growth: a
least-squares line through each process's RSS after the warm-up (MB/hour, and projected over
a month), the logs' and the store's growth on disk, and how long the machine's free memory
would last at that rate. The figures are printed and appended to bench/RESULTS.md.
"""

import argparse
import datetime
import os
import shutil
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
import zoneinfo

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo

from kombu import Connection

from bench.common import (
    TICKS,
    broker_pid,
    free_port,
    installation,
    machine_busy_seconds,
    percentile,
    record,
    wait_until,
)
from bench.latency import Listener
from shared import topology
from tests import factories

HOURS_PER_MONTH = 24 * 30


# -- /proc ------------------------------------------------------------------------------------
def proc_stat(pid):
    """(ppid, cpu seconds) of a live process, or None."""
    try:
        text = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), (int(fields[11]) + int(fields[12])) / TICKS


def rss_mb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def children(pid):
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = proc_stat(int(entry))
            if stat and stat[0] == pid:
                found.append(int(entry))
    return sorted(found)


def mem_available_mb():
    for line in open("/proc/meminfo"):
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) / 1024
    return 0.0


def folder_mb(path):
    total = 0
    for root, _, files in os.walk(path):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(root, name))
            except OSError:
                pass
    return total / 1024**2


# -- load -------------------------------------------------------------------------------------
def now_iso(zone, days_back=0):
    moment = datetime.datetime.now(zone) - datetime.timedelta(days=days_back)
    return moment.isoformat(timespec="seconds")


def event_at(index, tag, zone, days=1):
    """The index-th event of the run: mostly a new patient's visit (tracked for latency), every
    20th a returning patient's visit, every 20th a discharge. Dated now, or with `days` > 1 at
    this time of one of the last `days` days in turn, so that each day holds 1/days of the run
    (analytics' working set follows the busiest day's volume: bench/RESULTS.md)."""
    mrn = f"S{tag}{index:07d}"
    earlier = f"S{tag}{max(0, index - 100):07d}"
    when = now_iso(zone, days_back=index % days)
    if index % 20 == 10 and index >= 100:
        event = factories.visit(earlier, phone=f"139{max(0, index - 100):08d}", visit_type="return")
        new_patient = False
    elif index % 20 == 19 and index >= 100:
        event = factories.discharged(
            earlier, f"SA{tag}{index}", phone=f"139{max(0, index - 100):08d}"
        )
        event["data"]["discharged_at"] = when
        new_patient = False
    else:
        event = factories.visit(mrn, phone=f"139{index:08d}")
        new_patient = True
    event["occurred_at"] = when
    if "visited_at" in event["data"]:
        event["data"]["visited_at"] = when
    return event, mrn, new_patient


class Publisher(threading.Thread):
    def __init__(self, platform, rate, seconds, zone, days=1):
        super().__init__(name="publisher", daemon=True)
        self.days = days
        self.platform, self.rate, self.seconds, self.zone = platform, rate, seconds, zone
        self.published_at = {}  # event_id of a new patient's visit -> time.monotonic() at publish
        self.mrns = []
        self.count = self.errors = 0
        self.stop = threading.Event()
        self.t0 = None

    def run(self):
        tag = uuid.uuid4().hex[:4]
        self.t0 = time.monotonic()
        total = int(self.rate * self.seconds)
        for index in range(total):
            if self.stop.is_set():
                break
            delay = self.t0 + index / self.rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            event, mrn, new_patient = event_at(index, tag, self.zone, self.days)
            started = time.monotonic()
            try:
                self.platform.publish(event)
            except Exception:
                self.errors += 1
                continue
            self.count += 1
            if new_patient:
                self.published_at[event["event_id"]] = started
                self.mrns.append(mrn)


class Reader(threading.Thread):
    """The portal's reads, one kind after another, at `rate` per second."""

    KINDS = ("worklist", "search", "dashboard")
    WORKLISTS = ("status=pending&due_today=true", "status=pending&overdue=true", "status=pending")

    def __init__(self, platform, token, rate, publisher, zone):
        super().__init__(name="reader", daemon=True)
        self.platform, self.token, self.rate, self.publisher, self.zone = (
            platform,
            token,
            rate,
            publisher,
            zone,
        )
        self.results = []  # (time.monotonic(), kind, status, seconds)
        self.stop = threading.Event()

    def path(self, index):
        kind = self.KINDS[index % 3]
        if kind == "worklist":
            return kind, f"/api/v1/followups?{self.WORKLISTS[(index // 3) % 3]}&limit=200"
        if kind == "search":
            mrns = self.publisher.mrns
            if not mrns:
                return kind, "/api/v1/patients?q=S&limit=100"
            mrn = mrns[(index * 7919) % len(mrns)]
            if (index // 3) % 2:
                return kind, f"/api/v1/patients?mrn={mrn}&limit=100"
            return kind, f"/api/v1/patients?phone=139{int(mrn[-7:]):08d}&limit=100"
        today = datetime.datetime.now(self.zone).date()
        return (
            kind,
            f"/api/v1/analytics/summary?from={today - datetime.timedelta(days=29)}&to={today}",
        )

    def run(self):
        t0 = time.monotonic()
        index = 0
        while not self.stop.is_set():
            delay = t0 + index / self.rate - time.monotonic()
            if delay > 0 and self.stop.wait(delay):
                break
            kind, path = self.path(index)
            request = urllib.request.Request(
                self.platform.gateway_url + path, headers={"Authorization": f"Bearer {self.token}"}
            )
            started = time.monotonic()
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    response.read()
                    status = response.status
            except urllib.error.HTTPError as exc:
                status = exc.code
            except Exception:
                status = 0
            self.results.append((started, kind, status, time.monotonic() - started))
            index += 1


# -- sampling ---------------------------------------------------------------------------------
class Sampler:
    def __init__(self, platform, store, queues):
        self.platform, self.store, self.queues = platform, store, queues
        self.samples = []
        self._cpu = {}  # pid -> (time, cpu seconds)
        self._busy = (time.monotonic(), machine_busy_seconds())

    def processes(self):
        """{label: pid} of everything measured, gunicorn's workers by their order."""
        found = {}
        for process in self.platform.processes:
            if not process.alive():
                continue
            found[process.name] = process.popen.pid
            if process.name == "gateway":
                for number, pid in enumerate(children(process.popen.pid), 1):
                    found[f"gateway w{number}"] = pid
        if self.store.process:
            found["nx-27017"] = self.store.process.popen.pid
        broker = broker_pid()
        if broker:
            found["rabbitmq"] = broker
        found["bench"] = os.getpid()
        return found

    def depths(self):
        depths = {}
        with Connection(self.platform.amqp_uri, connect_timeout=10) as connection:
            channel = connection.channel()
            for queue in self.queues:
                try:
                    depths[queue] = channel.queue_declare(queue, passive=True).message_count
                except Exception:  # not declared: the channel is closed by the broker
                    channel = connection.channel()
        return depths

    def outbox_pending(self):
        from prometheus_client.parser import text_string_to_metric_families

        pending = 0
        for process in self.platform.processes:
            port = getattr(process, "metrics_port", None)
            if not port or not process.alive():
                continue
            try:
                text = (
                    urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5)
                    .read()
                    .decode()
                )
            except OSError:
                continue
            for family in text_string_to_metric_families(text):
                if family.name == "hcrm_outbox_pending":
                    pending += sum(sample.value for sample in family.samples)
        return int(pending)

    def sample(self, t, published, arrived, reads):
        now = time.monotonic()
        row = {
            "t": t,
            "published": published,
            "arrived": arrived,
            "reads": reads,
            "rss": {},
            "cpu": {},
        }
        for label, pid in self.processes().items():
            stat, rss = proc_stat(pid), rss_mb(pid)
            if stat is None or rss is None:
                continue
            before = self._cpu.get(pid)
            self._cpu[pid] = (now, stat[1])
            row["rss"][label] = rss
            if before and now > before[0]:
                row["cpu"][label] = 100 * (stat[1] - before[1]) / (now - before[0])
        busy_then, busy = self._busy, (now, machine_busy_seconds())
        self._busy = busy
        row["machine"] = (
            100 * (busy[1] - busy_then[1]) / max(1e-6, (busy[0] - busy_then[0]) * os.cpu_count())
        )
        try:
            row["queues"] = self.depths()
        except Exception:
            row["queues"] = {}
        row["outbox"] = self.outbox_pending()
        self.samples.append(row)
        return row


def fit(points):
    """Least squares (slope, intercept) of [(x, y)]; slope 0 when there is one point."""
    n = len(points)
    if n < 2:
        return 0.0, (points[0][1] if points else 0.0)
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        return 0.0, mean_y
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    return slope, mean_y - slope * mean_x


def growth(samples, warmup_s):
    """{label: (MB/hour, first MB, last MB, samples)} over the samples after the warm-up."""
    after = [s for s in samples if s["t"] >= warmup_s] or samples
    labels = list(dict.fromkeys(label for s in after for label in s["rss"]))
    result = {}
    for label in labels:
        points = [(s["t"] / 3600, s["rss"][label]) for s in after if label in s["rss"]]
        slope, _ = fit(points)
        result[label] = (slope, points[0][1], points[-1][1], len(points))
    return result


def ms(value):
    return "n/a" if value is None else f"{value * 1000:.0f}"


def short(label):
    return {
        "rabbitmq": "rabbit",
        "nx-27017": "nx",
        "appointments": "appts",
        "complaints": "compl",
        "analytics": "analyt",
        "campaigns": "campgn",
        "followup": "follow",
    }.get(label, label)


def print_row(row, labels, header=False):
    if header:
        print(
            f"{'min':>5} {'pub':>6} {'arrive':>6} {'reads':>5} "
            f"{'queued':>6} {'outbox':>6} {'busy%':>5} | "
            + " ".join(f"{short(label)[:8]:>8}" for label in labels)
            + "   (RSS MB / CPU %)",
            flush=True,
        )
    depth = sum(row["queues"].values())
    cells = " ".join(
        f"{row['rss'].get(label, 0):4.0f}/{row['cpu'].get(label, 0):3.0f}" for label in labels
    )
    print(
        f"{row['t'] / 60:5.1f} {row['published']:6d} {row['arrived']:6d} {row['reads']:5d} "
        f"{depth:6d} {row['outbox']:6d} {row['machine']:5.0f} | {cells}",
        flush=True,
    )


# -- the report -------------------------------------------------------------------------------
def window_lines(args, t0, publisher, listener, reader, sampler, labels):
    """A markdown table: one row per window."""
    width = args.window * 60
    header = (
        "| window | published | FollowUpScheduled p50 / p99 / max ms (arrived) "
        "| reads p50 / p99 ms (errors) | peak queued | "
        + " | ".join(f"{label} MB / CPU%" for label in labels)
        + " | machine busy |"
    )
    lines = [header, "|" + "---|" * (6 + len(labels))]
    windows = int((publisher.seconds + width - 1) // width)
    for number in range(windows):
        start, end = number * width, min((number + 1) * width, publisher.seconds)
        latencies, missing = [], 0
        for event_id, at in publisher.published_at.items():
            if start <= at - t0 < end:
                patient = listener.patient_of.get(event_id)
                if patient in listener.scheduled_at:
                    latencies.append(listener.scheduled_at[patient] - at)
                else:
                    missing += 1
        latencies.sort()
        reads = sorted(
            seconds
            for when, _, status, seconds in reader.results
            if start <= when - t0 < end and status == 200
        )
        errors = sum(
            1 for when, _, status, _ in reader.results if start <= when - t0 < end and status != 200
        )
        in_window = [s for s in sampler.samples if start < s["t"] <= end + 1]
        last = in_window[-1] if in_window else None
        peak = max((sum(s["queues"].values()) for s in in_window), default=0)
        cells = []
        for label in labels:
            cpus = [s["cpu"][label] for s in in_window if label in s["cpu"]]
            rss = last["rss"].get(label) if last else None
            cells.append(
                f"{rss:.0f} / {sum(cpus) / len(cpus):.0f}" if rss is not None and cpus else "n/a"
            )
        busy = [s["machine"] for s in in_window]
        published = sum(1 for at in publisher.published_at.values() if start <= at - t0 < end)
        lines.append(
            f"| {start / 60:.0f}–{end / 60:.0f} min | {published} new-patient visits | "
            f"{ms(percentile(latencies, 50))} / {ms(percentile(latencies, 99))} / "
            f"{ms(latencies[-1] if latencies else None)} ({len(latencies)}"
            f"{f', {missing} missing' if missing else ''}) | "
            f"{ms(percentile(reads, 50))} / {ms(percentile(reads, 99))} ({errors}) | {peak} | "
            + " | ".join(cells)
            + (f" | {sum(busy) / len(busy):.0f}% |" if busy else " | n/a |")
        )
    return lines


def verdict_lines(args, sampler, log_growth, store_growth, elapsed_h, available_mb):
    warmup_s = min(300.0, args.minutes * 60 / 5)
    rates = growth(sampler.samples, warmup_s)
    parts, rising = [], 0.0
    for label, (slope, first, last, _samples) in rates.items():
        parts.append(
            f"{label} {slope:+.1f} MB/h ({first:.0f} → {last:.0f} MB; "
            f"{slope * HOURS_PER_MONTH:+.0f} MB/month)"
        )
        if label not in (
            "bench",
            "rabbitmq",
        ):  # the bench's own lists grow by design; the broker is the machine's
            rising += max(0.0, slope)
    logs_per_h = log_growth / elapsed_h
    store_per_h = store_growth / elapsed_h
    fill_days = available_mb / rising / 24 if rising > 0 else float("inf")
    verdict = (
        "**no growth that would fill the machine in a month**"
        if fill_days > 30
        else f"**growth: the machine's free memory would be gone in {fill_days:.0f} days**"
    )
    return [
        f"RSS growth after the {warmup_s / 60:.0f}-minute warm-up (least squares over the "
        f"{args.sample:g}-s samples; MB per hour, projected over 30 days): " + "; ".join(parts),
        "memory verdict: the platform's processes (bench and the machine's broker left out) "
        f"grow by {rising:.1f} MB/h together; the {available_mb:.0f} MB the machine had "
        "available at the start would last "
        f"{'for ever' if fill_days == float('inf') else f'{fill_days:.0f} days'} "
        f"at that rate: {verdict}. A slope from a 30-minute run is mostly the allocator "
        "settling; a real leak shows as a slope that stays the same window after window "
        "(the table above)",
        f"disk: the services' JSON logs grew {log_growth:.1f} MB ({logs_per_h:.0f} MB/h, "
        f"{logs_per_h * HOURS_PER_MONTH / 1024:.1f} GB/month without rotation); the store "
        f"(NX-27017's files) {store_growth:.1f} MB ({store_per_h:.0f} MB/h, "
        f"{store_per_h * HOURS_PER_MONTH / 1024:.1f} GB/month at {args.rate:g} events/s: "
        "the data itself, kept by the retention rules)",
    ]


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--minutes", type=float, default=30.0, help="minutes of load (default 30)")
    parser.add_argument("--rate", type=float, default=20.0, help="events per second (default 20)")
    parser.add_argument(
        "--reads", type=float, default=3.0, help="portal reads per second (default 3)"
    )
    parser.add_argument(
        "--sample", type=float, default=30.0, help="seconds between samples (default 30)"
    )
    parser.add_argument(
        "--window", type=int, default=5, help="minutes per latency window (default 5)"
    )
    parser.add_argument(
        "--drain", type=float, default=60.0, help="seconds to wait for the last events"
    )
    parser.add_argument(
        "--days",
        type=int,
        default=1,
        help="date the events over the last N days in turn (default 1: all today)",
    )
    parser.add_argument("--services", default="all", help="comma-separated, or all (default)")
    parser.add_argument("--csv", default=None, help="also write every sample to this CSV file")
    parser.add_argument("--note", default=None, help="a line for RESULTS.md (e.g. what else ran)")
    parser.add_argument(
        "--no-record", action="store_true", help="print the figures, leave RESULTS.md alone"
    )
    parser.add_argument(
        "--keep-logs",
        action="store_true",
        help="keep the processes' logs (`hcrm trace ID --logs DIR` reads them)",
    )
    args = parser.parse_args(argv)
    services = topology.available_services() if args.services == "all" else args.services.split(",")
    from shared.config import BaseConfig, load_config

    zone = zoneinfo.ZoneInfo(load_config("soak", BaseConfig)["timezone"])  # the hospital's day
    platform, store = installation()
    listener = publisher = reader = None
    try:
        for name in services:
            port = free_port()
            extra = {"HL7_PORT": free_port()} if name == "hl7" else {}
            process = platform.start_service(name, wait=False, HCRM_METRICS_PORT=port, **extra)
            process.metrics_port = port
        for process in list(platform.processes):
            wait_until(
                lambda: '"service started"' in process.output() or not process.alive(),
                timeout=120,
                message=f"{process.name} to start",
            )
            assert process.alive(), f"{process.name} died at start:\n{process.output()[-3000:]}"
        platform.start_gateway(GATEWAY_SERVICES=",".join(services))
        token = platform.token()
        listener = Listener(platform.amqp_uri)
        listener.start()
        if not listener.ready.wait(30):
            raise SystemExit("the listener did not start")
        queues = (
            [s.queue for s in topology.SUBSCRIPTIONS]
            + [topology.dead_letter_queue(name) for name in topology.available_services()]
            + [topology.REJECTED_QUEUE]
        )
        sampler = Sampler(platform, store, queues)
        logs_before = sum(p.log_path.stat().st_size for p in platform.processes) / 1024**2
        store_before = folder_mb(store.data_dir) if not store.external else 0.0
        available_mb = mem_available_mb()

        seconds = args.minutes * 60
        publisher = Publisher(platform, args.rate, seconds, zone, args.days)
        reader = Reader(platform, token, args.reads, publisher, zone)
        t0 = time.monotonic()
        sampler.sample(0.0, 0, 0, 0)  # CPU counters from here
        publisher.start()
        reader.start()
        labels = None
        next_sample = t0 + args.sample
        end = t0 + seconds
        draining_until = None
        while True:
            time.sleep(max(0.0, next_sample - time.monotonic()))
            t = time.monotonic() - t0
            arrived = listener.arrived(list(publisher.published_at))
            row = sampler.sample(t, publisher.count, arrived, len(reader.results))
            if labels is None:
                labels = list(row["rss"])
                print_row(row, labels, header=True)
            else:
                print_row(row, labels)
            next_sample += args.sample
            if time.monotonic() >= end and draining_until is None:
                reader.stop.set()
                draining_until = time.monotonic() + args.drain
            if draining_until is not None and (
                arrived >= len(publisher.published_at) or time.monotonic() >= draining_until
            ):
                break
        publisher.stop.set()
        reader.stop.set()
        publisher.join(timeout=10)
        reader.join(timeout=40)
        elapsed_h = (time.monotonic() - t0) / 3600
        logs_after = sum(p.log_path.stat().st_size for p in platform.processes) / 1024**2
        store_after = folder_mb(store.data_dir) if not store.external else 0.0

        if args.csv:
            with open(args.csv, "w") as out:
                out.write(
                    "t_s,published,arrived,reads,queued,outbox,machine_busy_pct,"
                    + ",".join(f"{label}_rss_mb,{label}_cpu_pct" for label in labels)
                    + "\n"
                )
                for s in sampler.samples[1:]:
                    out.write(
                        f"{s['t']:.0f},{s['published']},{s['arrived']},{s['reads']},"
                        f"{sum(s['queues'].values())},{s['outbox']},{s['machine']:.0f},"
                        + ",".join(
                            f"{s['rss'].get(label, 0):.1f},{s['cpu'].get(label, 0):.1f}"
                            for label in labels
                        )
                        + "\n"
                    )

        tracked = list(publisher.published_at)
        latencies = sorted(
            listener.scheduled_at[listener.patient_of[e]] - publisher.published_at[e]
            for e in tracked
            if listener.patient_of.get(e) in listener.scheduled_at
        )
        ok_reads = {
            kind: sorted(s for _, k, status, s in reader.results if k == kind and status == 200)
            for kind in Reader.KINDS
        }
        failed_reads = {}
        for _, kind, status, _ in reader.results:
            if status != 200:
                by_status = failed_reads.setdefault(kind, {})
                by_status[status] = by_status.get(status, 0) + 1
        final = sampler.samples[-1]
        dead = {
            q: n
            for q, n in final["queues"].items()
            if n and (q.endswith(".dlq") or q == topology.REJECTED_QUEUE)
        }
        lines = [
            f"**{args.minutes:g} minutes at {args.rate:g} events/s** ({publisher.count} published, "
            f"{publisher.errors} publish errors; "
            f"{publisher.count / max(1e-6, min(seconds, time.monotonic() - t0)):.1f}/s "
            f"achieved) with {args.reads:g} portal reads/s ({len(reader.results)} made); services: "
            f"{', '.join(services)}; gateway 2 gunicorn workers",
            f"publish → FollowUpScheduled over the whole run: {len(latencies)} of {len(tracked)} "
            f"new-patient visits arrived; p50 {ms(percentile(latencies, 50))} ms, "
            f"p99 {ms(percentile(latencies, 99))} ms, "
            f"max {ms(latencies[-1] if latencies else None)} ms",
            "portal reads through the gateway: "
            + "; ".join(
                f"{kind} p50 {ms(percentile(values, 50))} ms, p99 {ms(percentile(values, 99))} ms "
                f"({len(values)} answered 200, "
                + (
                    ", ".join(
                        f"{n} answered {status or 'nothing'}"
                        for status, n in sorted(failed_reads[kind].items())
                    )
                    if kind in failed_reads
                    else "none other"
                )
                + ")"
                for kind, values in ok_reads.items()
            ),
            f"queues at the end: {sum(final['queues'].values())} messages queued in all; "
            f"dead-lettered or rejected: {dead or 'none'}; outbox unpublished: {final['outbox']}",
            f"per {args.window}-minute window (RSS at the window's end, CPU as % of one core "
            "averaged over the window's samples; the broker is the machine's, shared with "
            "other work):",
            *(
                f"  {line}"
                for line in window_lines(args, t0, publisher, listener, reader, sampler, labels)
            ),
            *verdict_lines(
                args,
                sampler,
                logs_after - logs_before,
                store_after - store_before,
                elapsed_h,
                available_mb,
            ),
        ]
        if args.note:
            lines.insert(0, f"note: {args.note}")
        title = f"soak, {args.minutes:g} min at {args.rate:g} events/s with the portal's reads"
        if args.no_record:
            print("\n".join([title, *lines]), flush=True)
        else:
            record(title, lines)
    finally:
        if reader:
            reader.stop.set()
        if publisher:
            publisher.stop.set()
        if listener:
            listener.done.set()
            listener.join(timeout=5)
        platform.close()
        store.close()
        if args.keep_logs:
            print(f"logs kept in {platform.log_dir}", flush=True)
        else:
            shutil.rmtree(platform.log_dir, ignore_errors=True)


if __name__ == "__main__":
    main()
