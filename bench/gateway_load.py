"""Gateway under load: the gateway as deployed (gunicorn, deploy/gunicorn.conf.py, gthread
workers) with intake and analytics behind it, driven by wrk with concurrent clients.

  .venv/bin/python -m bench.gateway_load [--threads 2] [--connections 32] [--duration 15]
                                          [--patients 50] [--workers 2] [--gateway-threads 8]

Seeds patients (PatientVisited and PatientDischarged through the broker, waited for until
intake and analytics have them all), then runs wrk (`--latency`, a Lua script that adds the
Authorization header and rotates over the seeded patients) against, in this order in the
same gateway:
  GET /healthz                               the bare endpoint: no auth, no RPC, no store
  GET /api/v1/patients/{id}                  auth + RPC to intake + an audit write
  GET /api/v1/analytics/summary?from=&to=    auth + RPC to analytics (a month of figures)
and prints requests/s, p50/p99, non-2xx responses, and each ratio to the bare endpoint; plus
the peak RSS and CPU time of every process (gunicorn master and workers, services,
NX-27017, wrk, the bench).
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo

from pymongo import MongoClient

from bench.common import (
    Resources,
    installation,
    need,
    record,
    start_services,
    wait_until,
    watch_platform,
)
from tests import factories

UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}
LUA = """
local paths = {%(paths)s}
local counter = 0
wrk.headers["Authorization"] = "Bearer %(token)s"
request = function()
  counter = counter + 1
  return wrk.format("GET", paths[(counter %% #paths) + 1])
end
"""


def to_ms(text):
    number, unit = re.fullmatch(r"([\d.]+)([a-z]+)", text).groups()
    return float(number) * UNITS[unit]


def parse_wrk(output):
    figures = {
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1)),
        "requests": int(re.search(r"(\d+) requests in", output).group(1)),
        "non2xx": int((re.search(r"Non-2xx or 3xx responses: (\d+)", output) or [0, 0])[1]),
    }
    for pct in ("50", "90", "99"):
        figures[f"p{pct}"] = to_ms(re.search(rf"^\s+{pct}%\s+(\S+)", output, re.M).group(1))
    errors = re.search(r"Socket errors: (.*)", output)
    figures["socket_errors"] = errors.group(1).strip() if errors else "none"
    return figures


def run_wrk(url, paths, token, threads, connections, duration):
    script = tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False)
    script.write(LUA % {"paths": ", ".join(f'"{p}"' for p in paths), "token": token})
    script.close()
    try:
        result = subprocess.run(
            [
                need("wrk"),
                f"-t{threads}",
                f"-c{connections}",
                f"-d{duration}s",
                "--timeout",
                "10s",
                "--latency",
                "-s",
                script.name,
                url,
            ],
            capture_output=True,
            text=True,
            timeout=duration + 60,
        )
    finally:
        os.unlink(script.name)
    if result.returncode:
        raise SystemExit(f"wrk failed: {result.stderr}")
    return parse_wrk(result.stdout), result.stdout


def start_gateway(platform, workers, threads):
    """The test platform's gateway with the workers and threads chosen here, ready when the
    services behind it answer (/readyz)."""
    process = platform.start_gateway(
        GATEWAY_SERVICES="intake,analytics",
        GATEWAY_WORKERS=workers,
        GATEWAY_THREADS=threads,
        # One bench user makes all the requests: the per-caller limit (600/min by default)
        # would answer 429 to nearly all of them. Raised, not removed: the limiter's own cost
        # is measured.
        GATEWAY_RATE_LIMIT_PER_MINUTE="100000000",
        GATEWAY_RATE_LIMIT_BURST="10000000",
    )
    wait_until(
        lambda: platform.http("GET", "/readyz")[0] == 200 or not process.alive(),
        timeout=90,
        message="the gateway to answer /readyz",
    )
    assert process.alive(), f"gateway died at start:\n{process.output()[-3000:]}"
    return process


def seed(platform, patients):
    """Each patient: two visits in March 2026, every fifth also a discharge."""
    events = []
    for i in range(patients):
        mrn, phone = f"G{i:05d}", f"136{i:08d}"
        events.append(factories.visit(mrn, phone=phone, day=2 + i % 20, visit_type="first"))
        events.append(factories.visit(mrn, phone=phone, day=3 + i % 20, visit_type="return"))
        if i % 5 == 0:
            events.append(factories.discharged(mrn, f"GA{i}", phone=phone, day=10 + i % 15))
    for event in events:
        platform.publish(event)
    intake = MongoClient(platform.database_uri("intake")).get_default_database()
    analytics = MongoClient(platform.database_uri("analytics")).get_default_database()
    wait_until(
        lambda: (
            intake.events.estimated_document_count() >= len(events)
            and analytics.facts.estimated_document_count() >= len(events)
        ),
        timeout=300,
        interval=0.2,
        message="intake and analytics to record the seed",
    )
    return [doc["_id"] for doc in intake.patients.find({}, {"_id": 1})], len(events)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (-t)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (-c)")
    parser.add_argument("--duration", type=int, default=15, help="seconds per endpoint (-d)")
    parser.add_argument("--patients", type=int, default=50, help="patients to seed")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (GATEWAY_WORKERS)")
    parser.add_argument(
        "--gateway-threads", type=int, default=8, help="threads per worker (GATEWAY_THREADS)"
    )
    args = parser.parse_args(argv)
    need("wrk")

    platform, store = installation()
    resources = Resources().start()
    try:
        start_services(platform, "intake", "analytics")
        start_gateway(platform, args.workers, args.gateway_threads)
        watch_platform(resources, platform, store)
        patient_ids, seeded = seed(platform, args.patients)
        token = platform.token()
        month = "from=2026-03-01&to=2026-03-31"
        endpoints = [
            ("GET /healthz (bare)", ["/healthz"]),
            ("GET /api/v1/patients/{id}", [f"/api/v1/patients/{pid}" for pid in patient_ids]),
            (f"GET /api/v1/analytics/summary?{month}", [f"/api/v1/analytics/summary?{month}"]),
        ]
        for _, paths in endpoints:  # each answers 200 before it is loaded
            status, body = platform.http("GET", paths[0], token=token)
            assert status == 200, (paths[0], status, body)
        gateway = next(p for p in platform.processes if p.name == "gateway")
        resources.mark()
        results = []
        for name, paths in endpoints:
            before = resources.snapshot()
            figures, _ = run_wrk(
                platform.gateway_url, paths, token, args.threads, args.connections, args.duration
            )
            figures["cpu"] = Resources.per_unit(
                before, resources.snapshot(), max(figures["requests"], 1)
            )
            results.append((name, figures))
            print(f"{name}: {figures}", flush=True)
        resources.stop()
        assert gateway.alive(), gateway.output()[-3000:]
        bare = results[0][1]
        lines = [
            f"gateway: gunicorn gthread, {args.workers} workers × {args.gateway_threads} threads, "
            f"intake and analytics behind it; seeded {len(patient_ids)} patients "
            f"({seeded} events); wrk -t{args.threads} -c{args.connections} -d{args.duration}s "
            "--latency, one run per endpoint"
        ]
        for name, f in results:
            ratio = (
                ""
                if f is bare
                else (
                    f"; vs bare: {f['rps'] / bare['rps']:.3f}× the requests/s, "
                    f"{f['p99'] / bare['p99']:.1f}× the p99"
                )
            )
            lines.append(
                f"{name}: {f['rps']:.0f} requests/s, p50 {f['p50']:.1f} ms, p90 {f['p90']:.1f} ms, "
                f"p99 {f['p99']:.1f} ms ({f['requests']} requests, {f['non2xx']} non-2xx, "
                f"socket errors: {f['socket_errors']}){ratio}"
            )
            lines.append(f"  - {f['cpu']}")
        bad = [
            name
            for name, f in results
            if f["non2xx"] > 0.001 * f["requests"] or f["socket_errors"] != "none"
        ]
        if bad:
            lines.append(
                f"NOT VALID: non-2xx responses or socket errors on {', '.join(bad)} "
                "(see the gateway log); the figures above count them as requests"
            )
        lines += resources.lines()
        record(f"gateway load, wrk -c{args.connections} for {args.duration} s per endpoint", lines)
    finally:
        resources.stop()
        platform.close()
        store.close()


if __name__ == "__main__":
    main()
