"""`hcrm import` of a generated history: how long N events take through the live services.

    python -m bench.import_year --events 300000        the issue's year (45-70 min here)
    python -m bench.import_year --events 20000         a sample; the rate carries over

Generates N contract events of a hospital spread over the last --months months (the demo's
generator, shared/simulate.py, in time order), writes them as JSON lines, starts an isolated
installation (own vhost, own NX-27017) with intake, followup and analytics, runs
`hcrm import FILE` as a user would (validation, backpressure, the services' own writes; the
year's figures warmed at the end) and prints: events/s of the import, its wall time, what
the services hold afterwards (patients, visits recorded, analytics' facts) against what was
sent, and how long the year's summary then takes through the gateway.
"""

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
import zoneinfo

import pymongo

from bench.common import (
    Resources,
    commands_per_event,
    installation,
    record,
    start_services,
    store_commands,
    watch_platform,
)
from shared.simulate import Hospital, demo_plan
from tests.support import PYTHON, REPO

SERVICES = ("intake", "followup", "analytics")


def generate(path, count, months, seed=7):
    """Write `count` events over the last `months` months; returns {event_type: n}."""
    now = datetime.datetime.now(zoneinfo.ZoneInfo("Asia/Shanghai")).replace(microsecond=0)
    hospital = Hospital(seed, now)
    plan = demo_plan(now, count, months, hospital.rng)
    kinds = {}
    with open(path, "w", encoding="utf-8") as out:
        for when, kind in plan:
            event = hospital.event(kind, when)
            kinds[event["event_type"]] = kinds.get(event["event_type"], 0) + 1
            out.write(json.dumps(event, ensure_ascii=False) + "\n")
    return kinds, plan[0][0].date(), now.date()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=300_000)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--no-record", action="store_true")
    args = parser.parse_args(argv)

    folder = tempfile.mkdtemp(prefix="hcrm-import-")
    source = f"{folder}/history.jsonl"
    started = time.monotonic()
    kinds, first_day, last_day = generate(source, args.events, args.months)
    print(f"generated {args.events} events in {time.monotonic() - started:.0f} s: {kinds}")

    platform, store = installation()
    resources = Resources()
    try:
        start_services(platform, *SERVICES)
        platform.start_gateway()
        token = platform.token()
        watch_platform(resources, platform, store).start()  # who spends the import's CPU
        before, commands_before = resources.snapshot(), store_commands(platform)
        started = time.monotonic()
        done = subprocess.run(
            [PYTHON, "-m", "shared.cli", "import", source, "--rejections", f"{folder}/rej.jsonl"],
            cwd=REPO,
            env=platform.env("import"),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        imported_s = time.monotonic() - started
        cpu = Resources.per_unit(before, resources.snapshot(), args.events, unit="event")
        commands = commands_per_event(commands_before, store_commands(platform), args.events)
        print(done.stdout[-1500:])
        assert done.returncode == 0, done.stdout[-3000:]
        visits = kinds.get("PatientVisited", 0)
        intake_db = pymongo.MongoClient(platform.database_uri("intake")).get_default_database()
        recorded = intake_db.events.estimated_document_count()
        year = f"from={first_day}&to={last_day}"
        asked = time.monotonic()
        status, body = platform.http("GET", f"/api/v1/analytics/summary?{year}", token=token)
        summary_s = time.monotonic() - asked
        lines = [
            f"**{args.events} events over {args.months} months imported in "
            f"{imported_s / 60:.1f} min: {args.events / imported_s:.0f} events/s** "
            f"(the import's own wall time, the figures' warming included); at that rate "
            f"300,000 events take {300_000 / (args.events / imported_s) / 60:.0f} min",
            f"afterwards: intake recorded {recorded} events of {args.events} sent; "
            f"{visits} visits in the file; the year's summary ({first_day}..{last_day}) "
            f"answered {status} in {summary_s:.2f} s with visits={body.get('visits')}",
            cpu,
            commands,
            *resources.lines(),
        ]
        print("\n".join(lines))
        if not args.no_record:
            record(f"hcrm import, {args.events} generated events", lines)
    finally:
        resources.stop()
        platform.close()
        store.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
