"""HL7 throughput: N ADT^A04 messages sent over MLLP, each waiting for its ACK as a sending
system does, then timed until intake has recorded every one (the patient record visible);
once over one connection, once over four. Reports messages/s acknowledged and end to end,
the ACK latency, CPU time and store round trips per message, and peak RSS of every process.

  .venv/bin/python -m bench.hl7_throughput [N]

N defaults to 2000 per run. Patients come twice on average (a return visit), each with a
phone, so intake links and projects as it does for a real feed.
"""

import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo

from pymongo import MongoClient

from bench.common import (
    Resources,
    commands_per_event,
    installation,
    percentile,
    record,
    start_services,
    store_commands,
    watch_platform,
)
from services.hl7.client import MllpClient
from services.intake.domain import canonical_event_id
from tests.support import free_port


def a04(control_id, mrn, visit_id, phone):
    return (
        f"MSH|^~\\&|HIS|XHYY|HCRM|HCRM|20260302093000||ADT^A04^ADT_A01|{control_id}|P|2.5"
        "||||||UNICODE UTF-8\r"
        "EVN|A04|20260302093000||||20260302092500\r"
        f"PID|1||110101195803120025^^^CHN^NNCHN~{mrn}^^^XHYY^MR||陈^秀兰^^^^^L^I~Chen^Xiulan^^^^^L^P"
        f"||19580312|F|||^^北京市^北京市^100005^CHN^H^^东城区||^PRN^CP^^^^^^^^^{phone}\r"
        f"PV1|1|O|0301^^^XHYY||||D017^刘^洋^^^^^^XHYY|||CARD|||||||||{visit_id}\r"
        "ZPI|1|医保^城镇职工\r"
    ).encode()


def make_messages(run, count):
    patients = count // 2 or 1
    return [
        (
            f"B{run}-{n:06d}",
            a04(
                f"B{run}-{n:06d}",
                f"B{run}M{n % patients:06d}",
                f"B{run}V{n:06d}",
                f"139{run}{n % patients:07d}",
            ),
        )
        for n in range(count)
    ]


def send_all(port, messages, connections):
    """Send the messages over `connections` connections (each its share, in order); returns
    the ACK latencies (seconds) and the codes."""
    latencies, codes, errors = [], {}, []
    lock = threading.Lock()

    def feed(share):
        try:
            with MllpClient("127.0.0.1", port, timeout=60) as client:
                for control_id, message in share:
                    started = time.perf_counter()
                    ack = client.send(message)
                    with lock:
                        latencies.append(time.perf_counter() - started)
                        codes[control_id] = ack.split(b"MSA|", 1)[1][:2].decode()
        except Exception as exc:
            errors.append(repr(exc))

    threads = [
        threading.Thread(target=feed, args=(messages[i::connections],)) for i in range(connections)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise SystemExit(f"sending failed: {errors[:3]}")
    return sorted(latencies), codes


def run_once(platform, resources, intake, port, run, count, connections, timeout=900):
    messages = make_messages(run, count)
    expected = {canonical_event_id("hl7", f"HIS|XHYY|{control_id}") for control_id, _ in messages}
    before = resources.snapshot()
    commands_before = store_commands(platform)
    recorded_before = intake.events.estimated_document_count()
    started = time.perf_counter()
    latencies, codes = send_all(port, messages, connections)
    acked = time.perf_counter() - started
    while intake.events.estimated_document_count() < recorded_before + count:
        if time.perf_counter() - started > timeout:
            raise SystemExit(f"not every message reached intake within {timeout} s")
        time.sleep(0.05)
    elapsed = time.perf_counter() - started
    cpu = resources.per_unit(
        before, resources.snapshot(), count, "message (MLLP to intake's record)"
    )
    commands = commands_per_event(commands_before, store_commands(platform), count)
    found = {doc["_id"] for doc in intake.events.find({"source": "hl7"}, {"_id": 1})}
    missing = len(expected - found)
    assert missing == 0, f"{missing} messages missing at intake"
    assert set(codes.values()) == {"AA"}, {
        c: list(codes.values()).count(c) for c in set(codes.values())
    }
    return [
        f"**{connections} connection(s)**: {count} messages acknowledged (AA) at "
        f"{count / acked:.0f} messages/s ({acked:.1f} s); every one recorded by intake at "
        f"{elapsed:.1f} s: **{count / elapsed:.0f} messages/s end to end**",
        "  - ACK latency (send → ACK, the message durable): "
        f"p50 {percentile(latencies, 50) * 1000:.1f} ms, "
        f"p95 {percentile(latencies, 95) * 1000:.1f} ms, "
        f"p99 {percentile(latencies, 99) * 1000:.1f} ms, "
        f"max {latencies[-1] * 1000:.1f} ms",
        f"  - checked by event id: {count} of {count} at intake, none missing",
        f"  - {cpu}",
        f"  - {commands.replace('per event', 'per message')}",
    ]


def main(count=2000):
    platform, store = installation()
    resources = Resources().start()
    try:
        port = free_port()
        start_services(platform, "intake")
        start_services(platform, "hl7", HL7_PORT=port)
        watch_platform(resources, platform, store)
        intake = MongoClient(platform.database_uri("intake")).get_default_database()
        resources.mark()
        lines = []
        for run, connections in enumerate((1, 4), start=1):
            lines += run_once(platform, resources, intake, port, run, count, connections)
        resources.stop()
        record(
            f"HL7 throughput (MLLP → hl7 → hospital.events → intake's patient record), "
            f"{count} ADT^A04 per run",
            [*lines, *resources.lines()],
        )
    finally:
        resources.stop()
        platform.close()
        store.close()


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:]))
