"""Intake throughput: publish N inbound events as fast as the broker takes them, time until
intake has recorded every one (nothing missing), and the peak RSS of the intake process.

  .venv/bin/python -m bench.intake_throughput [N] [replicas]
"""
import sys
import time

from pymongo import MongoClient

from bench.common import installation, record
from tests import factories


def peak_rss_mb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None


def main(count=3000, replicas=1):
    platform, store = installation()
    try:
        processes = [platform.start_service("intake") for _ in range(replicas)]
        events = []
        for i in range(count):
            mrn = f"B{i % (count // 3 or 1):06d}"
            events.append(factories.visit(mrn, phone=f"137{i % (count // 3 or 1):08d}")
                          if i % 5 else factories.discharged(mrn, f"A{i}", phone=f"137{i % (count // 3 or 1):08d}"))
        started = time.perf_counter()
        for event in events:
            platform.publish(event)
        published = time.perf_counter() - started
        db = MongoClient(platform.database_uri("intake")).get_default_database()
        while db.events.estimated_document_count() < count:
            if time.perf_counter() - started > 600:
                raise SystemExit("not all events recorded within 600 s")
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        recorded = db.events.count_documents({})
        record(f"intake throughput, {count} events, {replicas} replica(s)", [
            f"publish: {count / published:.0f} events/s ({published:.1f} s)",
            f"end to end (publish → recorded by intake): {count / elapsed:.0f} events/s ({elapsed:.1f} s)",
            f"recorded {recorded} of {count}",
            "peak RSS intake: " + ", ".join(f"{peak_rss_mb(p.popen.pid):.0f} MB" for p in processes),
        ])
    finally:
        platform.close()
        store.close()


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:]))
