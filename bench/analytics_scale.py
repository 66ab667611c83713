"""Analytics at scale: a year of a 2,000-bed hospital (about 3 million events) in analytics'
read model, and the time of the manager's summary for a month and for the year.

  .venv/bin/python -m bench.analytics_scale [--events 3000000] [--year 2025] [--rpc-cap 120]
                                             [--seed 7]

Publishing 3M events through the broker would take hours here, so the read model is
bulk-loaded directly: realistic canonical events are generated day by day and turned into
exactly the documents the service writes, by the service's own `domain.fact_of` (one fact
per event in `facts`) and `domain.entity_update` (folded per id into `followups` and
`complaints`), inserted with insert_many in batches into the database of a real analytics
service, which is then started on it.

Then, for a month and for the year, cold (whatever the service derives and caches itself,
e.g. per-day figures, emptied first; the loader writes no change counters, so cached days
stay valid):
  * AnalyticsService._figures in a child process, on the real store, every store call timed
    (calls, documents, seconds, NX-27017's CPU) under cProfile, stopped at --rpc-cap seconds
    if it runs longer (it then reports where it was): where the time goes;
  * if that finished, the service's `summary` RPC end to end: first as the in-process run
    left the store (warm, if the service caches what it computed), then cold again. The
    service reads with its own store timeouts (shared/store.py: 20 s per socket read), so
    an RPC can fail where the in-process run (long timeouts) finished: reported as such.
"""

import argparse
import cProfile
import datetime
import io
import os
import pstats
import queue
import random
import sys
import threading
import time
import zoneinfo

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo

from bench.common import Platform, Resources, installation, record, start_services, watch_broker
from services.analytics import domain
from services.analytics.service import AnalyticsService
from services.analytics.store import SCHEMA_VERSION, AnalyticsStore
from shared.simulate import CHANNELS, DEPARTMENTS, INPATIENT_DEPARTMENTS, REGIONS, SOURCES
from shared.store import connect, ensure_indexes

TZ_NAME = "Asia/Shanghai"
OFFSET = datetime.timezone(datetime.timedelta(hours=8))
CATEGORIES = ("attitude", "waiting_time", "billing", "medical_quality", "environment", "other")
BATCH = 5000

# Events per outpatient visit, from docs/RULES.md and a 2,000-bed general hospital's ratios:
# a call after most visits (~90 % callable), 70 % of calls completed (60 % of those with a
# score), 5 % cancelled; one admission per ~12 visits, each discharge with three follow-ups;
# one consultation per 10 visits (each with a prospect call), 40 % of them converting;
# 3 complaints per 1,000 visits (received, acknowledged, resolved).
PER_VISIT = {
    "PatientVisited": 1.0,
    "PatientAdmitted": 0.08,
    "PatientDischarged": 0.08,
    "ConsultationLogged": 0.10,
    "FollowUpScheduled": 0.9 + 0.08 * 3 + 0.10,
    "FollowUpCompleted": 0.7 * (0.9 + 0.24),
    "FollowUpCancelled": 0.05 * (0.9 + 0.24) + 0.04,
    "SatisfactionRecorded": 0.6 * 0.7 * (0.9 + 0.24),
    "Complaint*": 0.003 * 3,
}
WEEKDAY = (1.15, 1.1, 1.05, 1.05, 1.0, 0.6, 0.45)  # Monday .. Sunday outpatient load


def weighted(rng, pairs):
    return rng.choices([v for v, _ in pairs], [w for _, w in pairs])[0]


class Year:
    """Canonical events of one year, day by day (as intake, followup and complaints emit
    them: the fields analytics reads)."""

    def __init__(self, year, events, seed):
        self.rng = random.Random(seed)
        self.year = year
        self.days = [
            datetime.date(year, 1, 1) + datetime.timedelta(days=i)
            for i in range((datetime.date(year + 1, 1, 1) - datetime.date(year, 1, 1)).days)
        ]
        weights = [WEEKDAY[d.weekday()] for d in self.days]
        visits = events / sum(PER_VISIT.values())
        self.visits_per_day = [visits * w / sum(weights) for w in weights]
        self.patients = 0
        self.seq = 0
        self.counts = {}

    def _id(self, prefix):
        self.seq += 1
        return f"{prefix}{self.seq:09d}"

    def _at(self, day, hour_from=8, hour_to=18):
        seconds = self.rng.randint(hour_from * 3600, hour_to * 3600 - 1)
        return datetime.datetime.combine(
            day, datetime.time(seconds // 3600, seconds // 60 % 60, seconds % 60), OFFSET
        )

    def _event(self, kind, when, patient_id, data):
        self.counts[kind] = self.counts.get(kind, 0) + 1
        return {
            "event_id": self._id("e"),
            "event_type": kind,
            "occurred_at": when.isoformat(),
            "patient_id": patient_id,
            "data": data,
        }

    def _person(self, k):
        rng = random.Random(k)
        return {
            "mrn": f"M{k:08d}",
            "phone": f"13{k % 10}{k:08d}"[-11:],
            "region": rng.choice(REGIONS),
            "birth_date": datetime.date(
                rng.randint(1935, 2024), rng.randint(1, 12), rng.randint(1, 28)
            ).isoformat(),
        }

    def _count(self, mean):
        whole = int(mean)
        return whole + (1 if self.rng.random() < mean - whole else 0)

    def _followup(self, when, patient_id, kind, department, due):
        fid = self._id("f")
        data = {
            "followup_id": fid,
            "kind": kind,
            "department": department,
            "due_at": due.isoformat(),
        }
        out = [self._event("FollowUpScheduled", when, patient_id, data)]
        roll = self.rng.random()
        if roll < 0.7:
            done = due - datetime.timedelta(hours=self.rng.randint(1, 20))
            out.append(self._event("FollowUpCompleted", done, patient_id, data))
            if self.rng.random() < 0.6:
                out.append(
                    self._event(
                        "SatisfactionRecorded",
                        done,
                        patient_id,
                        {
                            **data,
                            "satisfaction": weighted(
                                self.rng, [(5, 50), (4, 30), (3, 12), (2, 5), (1, 3)]
                            ),
                        },
                    )
                )
        elif roll < 0.75:
            out.append(self._event("FollowUpCancelled", when, patient_id, data))
        return out

    def day(self, day):
        """Every event of `day` (visits and what they cause)."""
        rng, out = self.rng, []
        for _ in range(self._count(self.visits_per_day[(day - self.days[0]).days])):
            first = self.patients == 0 or rng.random() < 0.4
            if first:
                self.patients += 1
                k = self.patients
            else:
                k = rng.randint(1, self.patients)
            person, patient_id = self._person(k), f"P{k:08d}"
            when, department = self._at(day), rng.choice(DEPARTMENTS)
            data = {
                "patient": person,
                "visit_id": self._id("v"),
                "department": department,
                "visit_type": "first" if first else rng.choice(["return", "return", "walk_in"]),
                "visited_at": when.isoformat(),
            }
            if first:
                data["source_channel"] = weighted(rng, SOURCES)
            out.append(self._event("PatientVisited", when, patient_id, data))
            if rng.random() < 0.9:
                due = datetime.datetime.combine(
                    day + datetime.timedelta(days=1), datetime.time(23, 59, 59), OFFSET
                )
                out += self._followup(when, patient_id, "post_visit_call", department, due)
            if (
                first and rng.random() < 0.1
            ):  # 4 % of visits: a prospect who phoned first (converts)
                asked = when - datetime.timedelta(days=rng.randint(0, 29), hours=rng.randint(1, 48))
                out += self._consultation(
                    asked, patient_id, {"name": "王芳", "phone": person["phone"]}
                )
            if rng.random() < 0.08:
                out += self._stay(when, patient_id, person)
            if rng.random() < 0.06:  # 6 % of visits: a prospect who does not come
                out += self._consultation(
                    self._at(day),
                    None,
                    {"name": "李娜", "phone": f"15{rng.randint(0, 999999999):09d}"},
                )
            if rng.random() < 0.003:
                out += self._complaint(when, patient_id, department)
        return out

    def _consultation(self, when, patient_id, person):
        data = {
            "consultation_id": self._id("c"),
            "channel": weighted(self.rng, CHANNELS),
            "patient": person,
            "department": self.rng.choice(DEPARTMENTS),
            "agent_id": f"agent-{self.rng.randint(1, 40)}",
        }
        due = datetime.datetime.combine(
            when.date() + datetime.timedelta(days=1), datetime.time(23, 59, 59), OFFSET
        )
        return [
            self._event("ConsultationLogged", when, patient_id, data),
            *self._followup(
                when, patient_id or f"X{data['consultation_id']}", "prospect_call", None, due
            ),
        ]

    def _stay(self, when, patient_id, person):
        department = self.rng.choice(INPATIENT_DEPARTMENTS)
        admitted = when + datetime.timedelta(hours=self.rng.randint(1, 6))
        discharged = admitted + datetime.timedelta(
            days=self.rng.randint(2, 14), hours=self.rng.randint(0, 8)
        )
        admission = {"patient": person, "admission_id": self._id("a"), "department": department}
        out = [
            self._event(
                "PatientAdmitted",
                admitted,
                patient_id,
                {**admission, "admitted_at": admitted.isoformat()},
            ),
            self._event(
                "PatientDischarged",
                discharged,
                patient_id,
                {**admission, "discharged_at": discharged.isoformat(), "disposition": "home"},
            ),
        ]
        for kind, days in (
            ("post_discharge_call", 2),
            ("recovery_check", 7),
            ("return_visit_reminder", 30),
        ):
            out += self._followup(
                discharged, patient_id, kind, department, discharged + datetime.timedelta(days=days)
            )
        return out

    def _complaint(self, when, patient_id, department):
        received = when + datetime.timedelta(hours=self.rng.randint(1, 30))
        high = self.rng.random() < 0.2
        data = {
            "complaint_id": self._id("k"),
            "department": department,
            "category": self.rng.choice(CATEGORIES),
            "received_at": received.isoformat(),
            "ack_due_at": (received + datetime.timedelta(hours=2 if high else 24)).isoformat(),
            "resolve_due_at": (received + datetime.timedelta(hours=24 if high else 48)).isoformat(),
        }
        acked = received + datetime.timedelta(hours=self.rng.uniform(0.2, 30))
        resolved = acked + datetime.timedelta(hours=self.rng.uniform(1, 60))
        return [
            self._event("ComplaintReceived", received, patient_id, data),
            self._event("ComplaintAcknowledged", acked, patient_id, data),
            self._event("ComplaintResolved", resolved, patient_id, data),
        ]


def load(db, year):
    """Turn the year's events into analytics' documents (the service's own functions) and
    insert them in batches; a writer thread inserts while the next batch is generated.
    Returns (events, documents, seconds loading, seconds building the indexes)."""
    tz = zoneinfo.ZoneInfo(TZ_NAME)
    facts, entities = [], {"followups": {}, "complaints": {}}
    events = 0
    written = [0]
    batches = queue.Queue(maxsize=4)
    failure = []

    def writer():
        while True:
            item = batches.get()
            if item is None:
                return
            collection, docs = item
            try:
                db[collection].insert_many(docs, ordered=False)
                written[0] += len(docs)
            except Exception as exc:  # reported by the loader
                failure.append(exc)

    thread = threading.Thread(target=writer, name="writer", daemon=True)
    thread.start()
    started = time.perf_counter()

    def flush(force=False):
        if facts and (force or len(facts) >= BATCH):
            batches.put(("facts", list(facts)))
            facts.clear()
        if failure:
            raise failure[0]

    for index, day in enumerate(year.days):
        for event in year.day(day):
            events += 1
            fact = domain.fact_of(event, tz)
            if fact:
                facts.append(fact)
            entity = domain.entity_update(event, tz)
            if entity:
                collection, entity_id, fields = entity
                entities[collection].setdefault(entity_id, {"_id": entity_id}).update(fields)
        flush()
        if index % 30 == 29:
            rate = events / (time.perf_counter() - started)
            print(f"  generated up to {day}: {events} events, {rate:.0f} events/s", flush=True)
    flush(force=True)
    for collection, docs in entities.items():
        docs = list(docs.values())
        for start in range(0, len(docs), BATCH):
            batches.put((collection, docs[start : start + BATCH]))
    batches.put(None)
    thread.join()
    if failure:
        raise failure[0]
    loaded = time.perf_counter() - started
    index_started = time.perf_counter()
    ensure_indexes(db, AnalyticsStore.indexes)
    # Written at the current schema (domain.fact_of adds the day numbers): nothing to migrate.
    db.meta.update_one({"_id": "schema"}, {"$set": {"version": SCHEMA_VERSION}}, upsert=True)
    return events, written[0], loaded, time.perf_counter() - index_started


def cpu_of(pid):
    try:
        fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except OSError:
        return 0.0


LOADED = ("facts", "followups", "complaints", "meta")


def clear_derived(db):
    """Empty what the service derives and keeps itself (e.g. cached per-day figures, change
    counters), so the next summary starts cold. What the loader wrote stays."""
    emptied = []
    for name in db.list_collection_names():
        if name not in LOADED and db[name].estimated_document_count():
            db[name].delete_many({})
            emptied.append(name)
    return emptied


class Stop(Exception):
    pass


def _in_process(uri, start, end, nx_pid, conn):
    """Child process: AnalyticsService._figures(start, end) on the real store, every store
    call timed and sent as it ends (so a run stopped at the cap still says where it was),
    under cProfile; SIGTERM stops it and sends the profile so far."""
    import signal

    def stop(*_):
        raise Stop()

    signal.signal(signal.SIGTERM, stop)
    db = connect(uri, "analytics", timeout_ms=3_600_000)
    store = AnalyticsStore()
    store.db = db
    depth = [0]  # a store method that calls another (visits_of → person_facts) is timed once
    for name, method in vars(AnalyticsStore).items():
        if (
            callable(method)
            and not name.startswith("_")
            and name not in ("setup", "stop", "get_dependency")
        ):

            def timed(*args, _name=name, _method=method, **kwargs):
                cpu0, t0 = cpu_of(nx_pid), time.perf_counter()
                depth[0] += 1
                try:
                    value = _method(store, *args, **kwargs)
                finally:
                    depth[0] -= 1
                if depth[0] == 0:
                    size = len(value) if isinstance(value, (list, dict, set)) else None
                    conn.send(
                        ("call", _name, time.perf_counter() - t0, size, cpu_of(nx_pid) - cpu0)
                    )
                return value

            setattr(store, name, timed)
    service = AnalyticsService.__new__(AnalyticsService)
    service.store = store
    try:
        from shared.config import load_config

        service.config = load_config("analytics", AnalyticsService.config_schema)
    except Exception:
        service.config = {"timezone": TZ_NAME}
    profiler = cProfile.Profile()
    finished = False
    t0 = time.perf_counter()
    try:
        profiler.enable()
        service._figures(start, end, None)
        finished = True
    except Stop:
        pass
    finally:
        profiler.disable()
    seconds = time.perf_counter() - t0
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).sort_stats("tottime")
    stats.print_stats(12)
    top = [
        f"{name} ({os.path.basename(filename)}:{line}) {tt:.2f} s self, {nc} calls"
        for (filename, line, name), (cc, nc, tt, ct, _) in sorted(
            stats.stats.items(), key=lambda i: -i[1][2]
        )[:5]
    ]
    conn.send(("done", seconds, finished, top, text.getvalue()))


def in_process(uri, start, end, nx_pid, cap):
    """Run _in_process in a child (fork) for at most `cap` seconds. Returns a dict."""
    import multiprocessing

    context = multiprocessing.get_context("fork")
    parent, child = context.Pipe(duplex=False)
    process = context.Process(
        target=_in_process, args=(uri, start, end, nx_pid, child), daemon=True
    )
    started = time.perf_counter()
    process.start()
    child.close()
    calls, result = {}, None
    stopped = False
    while result is None:
        left = cap - (time.perf_counter() - started)
        if not stopped and left <= 0:
            process.terminate()  # SIGTERM: the child sends what it has
            stopped = True
        if parent.poll(max(0.05, min(left, 1.0)) if not stopped else 30):
            try:
                message = parent.recv()
            except EOFError:
                break
            if message[0] == "call":
                _, name, seconds, size, nx = message
                entry = calls.setdefault(name, [0, 0.0, 0, 0.0])
                entry[0] += 1
                entry[1] += seconds
                entry[2] += size or 0
                entry[3] += nx
            else:
                result = message
        elif stopped:
            break
    process.join(10)
    if process.is_alive():
        process.kill()
    elapsed = time.perf_counter() - started
    seconds, finished, top, text = result[1:] if result else (elapsed, False, [], "")
    return {"seconds": seconds, "finished": finished, "calls": calls, "top": top, "text": text}


def rpc_summary(platform, start, end, timeout, attempts=6):
    """(seconds, answer, error) of the service's summary RPC. A broker that drops the
    connection (someone's broker-restart test on the shared RabbitMQ) is waited for."""
    from amqp.exceptions import ConnectionError as AmqpConnectionError
    from kombu.exceptions import OperationalError
    from nameko.exceptions import RemoteError, RpcTimeout
    from nameko.standalone.rpc import ClusterRpcProxy

    for _attempt in range(attempts):
        try:
            with ClusterRpcProxy(
                {"AMQP_URI": platform.amqp_uri, "serializer": "json"}, timeout=timeout
            ) as rpc:
                t0 = time.perf_counter()
                try:
                    answer = rpc.analytics.summary(start.isoformat(), end.isoformat())
                except RpcTimeout:
                    return time.perf_counter() - t0, None, f"no answer within {timeout:g} s"
                except RemoteError as exc:
                    return time.perf_counter() - t0, None, f"{exc.exc_type}: {str(exc.value)[:160]}"
                return time.perf_counter() - t0, answer, None
        except (OSError, OperationalError, AmqpConnectionError) as exc:
            print(f"  RPC: broker connection lost ({exc!r}); retrying in 10 s", flush=True)
            time.sleep(10)
    return 0.0, None, "the broker stayed unreachable"


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--events", type=int, default=3_000_000, help="events in the year (default 3,000,000)"
    )
    parser.add_argument("--year", type=int, default=2025)
    parser.add_argument(
        "--rpc-cap",
        type=float,
        default=120.0,
        help="seconds the in-process summary may run; the RPC is called only if it finished",
    )
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--warm-year",
        action="store_true",
        help="skip the cold whole-year runs: fill the per-day partials month by month through "
        "the service (as its refresh does in normal running), then time the year's summary RPC",
    )
    args = parser.parse_args(argv)

    base, store = installation()
    base.close()
    platform = Platform(store, base.log_dir)
    resources = watch_broker(Resources().start())
    resources.watch("nx-27017", store.process.popen.pid)
    try:
        db = connect(platform.database_uri("analytics"), "analytics", timeout_ms=600_000)
        year = Year(args.year, args.events, args.seed)
        print(
            f"loading a year ({args.year}) of about {args.events} events into {db.name} ...",
            flush=True,
        )
        events, documents, loaded, indexing = load(db, year)
        counts = {name: db[name].estimated_document_count() for name in LOADED[:3]}
        lines = [
            f"generated {events} events "
            f"({', '.join(f'{k} {v}' for k, v in sorted(year.counts.items()))})",
            f"read model: facts {counts['facts']}, followups {counts['followups']}, "
            f"complaints {counts['complaints']}",
            f"load (generate + fact_of/entity_update, insert_many of {BATCH} by a writer thread): "
            f"{events / loaded:.0f} events/s, {documents / loaded:.0f} documents/s "
            f"({loaded:.0f} s); the service's indexes built after: {indexing:.1f} s",
        ]
        print("\n".join(lines), flush=True)

        uri = platform.database_uri("analytics")
        nx_pid = store.process.popen.pid
        month = (datetime.date(args.year, 6, 1), datetime.date(args.year, 6, 30))
        whole = (datetime.date(args.year, 1, 1), datetime.date(args.year, 12, 31))
        processes = start_services(platform, "analytics")
        resources.watch("analytics", processes["analytics"].popen.pid)
        resources.mark()
        if args.warm_year:
            months = [
                (
                    datetime.date(args.year, m, 1),
                    (
                        datetime.date(args.year + (m == 12), m % 12 + 1, 1)
                        - datetime.timedelta(days=1)
                    ),
                )
                for m in range(1, 13)
            ]
            fill = time.monotonic()
            for start, end in months:
                seconds, answer, error = rpc_summary(platform, start, end, 600)
                lines.append(
                    f"  - filling {start:%Y-%m} through the summary RPC (cold month): "
                    + (
                        f"{seconds:.1f} s"
                        if not error
                        else f"failed after {seconds:.1f} s: {error}"
                    )
                )
                print(lines[-1], flush=True)
            lines.append(
                f"**partials of the year filled month by month** in {time.monotonic() - fill:.0f} s"
            )
            for attempt in range(3):
                warm, answer, error = rpc_summary(platform, *whole, 60)
                lines.append(
                    f"**summary, year {whole[0]}..{whole[1]}, warm (365 stored day partials), RPC "
                    f"#{attempt + 1}: "
                    + (
                        f"{warm * 1000:.0f} ms** (visits {answer['visits']}, "
                        f"consultations {answer['consultations']}, conversions "
                        f"{answer['conversions']}, followups_due {answer['followups_due']})"
                        if not error
                        else f"failed: {error}**"
                    )
                )
                print(lines[-1], flush=True)
        for label, (start, end) in () if args.warm_year else (("month", month), ("year", whole)):
            clear_derived(db)
            run = in_process(uri, start, end, nx_pid, args.rpc_cap)
            state = (
                f"{run['seconds']:.2f} s"
                if run["finished"]
                else f"stopped at the cap after {run['seconds']:.0f} s "
                f"(> --rpc-cap {args.rpc_cap:g} s)"
            )
            store_s = sum(c[1] for c in run["calls"].values())
            rest = (
                "the rest (Python: domain, decoding)"
                if run["finished"]
                else "the rest (the store call in flight at the stop, and Python)"
            )
            lines.append(
                f"**summary, {label} {start}..{end}**, cold (derived caches emptied) — in-process "
                f"AnalyticsService._figures: {state}; finished store calls {store_s:.2f} s, {rest} "
                f"{max(run['seconds'] - store_s, 0):.2f} s"
            )
            for name, (n, seconds, size, nx) in sorted(
                run["calls"].items(), key=lambda i: -i[1][1]
            ):
                lines.append(
                    f"  - store.{name}: {n} calls, {size} documents, {seconds:.2f} s "
                    f"(NX-27017 CPU {nx:.2f} s)"
                )
            lines.append("  - cProfile, top by own time: " + ("; ".join(run["top"]) or "n/a"))
            print(run["text"], flush=True)
            if run["finished"]:
                limit = max(60.0, args.rpc_cap * 2)
                # Warm first: what the in-process run cached (if the service caches) is there.
                warm, answer, error = rpc_summary(platform, start, end, limit)
                lines.append(
                    "  - the service's summary RPC after the in-process run (warm if it caches): "
                    + (f"**{warm:.2f} s**" if not error else f"failed after {warm:.1f} s: {error}")
                )
                clear_derived(db)
                cold, answer, error = rpc_summary(platform, start, end, limit)
                if error:
                    lines.append(
                        f"  - the service's summary RPC, cold: "
                        f"**failed after {cold:.1f} s: {error}**"
                    )
                else:
                    lines.append(
                        f"  - the service's summary RPC, cold: **{cold:.2f} s** "
                        f"(the gateway's RPC timeout is 5 s; visits {answer['visits']}, "
                        f"consultations {answer['consultations']}, "
                        f"conversions {answer['conversions']}, "
                        f"followups_due {answer['followups_due']})"
                    )
            else:
                lines.append(
                    "  - the service's summary RPC: not called "
                    "(the same work did not finish in the cap)"
                )
            print("\n".join(lines[-len(run["calls"]) - 3 :]), flush=True)
        resources.stop()
        lines += resources.lines()
        record(f"analytics at scale, a year of {events} events", lines)
    except Exception as exc:
        if "lines" in locals() and lines:  # keep what was measured before the failure
            resources.stop()
            lines.append(f"INCOMPLETE: stopped by {exc.__class__.__name__}: {str(exc)[:200]}")
            lines += resources.lines()
            record(f"analytics at scale, a year of {events} events (incomplete)", lines)
        raise
    finally:
        resources.stop()
        platform.close()
        store.close()


if __name__ == "__main__":
    main()
