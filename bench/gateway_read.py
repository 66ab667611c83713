"""A patient read through the gateway: where its CPU goes, and two code trees side by side.

  .venv/bin/python -m bench.gateway_read profile [--before /tmp/gw-before] [--requests 1000]
  .venv/bin/python -m bench.gateway_read compare --before /tmp/gw-before [--rounds 2]
      [--connections 32] [--duration 15] [--workers 2] [--gateway-threads 8] [--patients 50]

`--before`: another checkout, e.g. `git worktree add /tmp/gw-before HEAD` (remove it after
with `git worktree remove /tmp/gw-before`); the working tree is "after". Each tree gets its
own installation (vhost and databases) with its own intake started from its code, so a
change on either side of the RPC counts; NX-27017 and the machine's RabbitMQ are shared.

profile: for each tree, its gateway in a child process (bench/gateway_read_child.py: create_app
under the OpenTelemetry WSGI middleware, as wsgi.py builds it), one thread sending
GET /api/v1/patients/{id} through the WSGI call, one read after another. Prints the CPU per
read of every process (/proc), then cProfile of the gateway's part by stage, timing the
thread's CPU and the wall clock (waits included), and the functions with the most own CPU.

compare: each tree's gateway as deployed (gunicorn with the tree's deploy/gunicorn.conf.py);
wrk (bench.gateway_load's Lua: the bearer token, the patients in turn) on
GET /api/v1/patients/{id}, the trees taking turns, `--rounds` times each. Prints
requests/s, p50/p90/p99 and CPU per request by process for each, and after each load the
tree's new audit entries against the 2xx wrk counted: an answered read always has its entry,
so entries >= answers (a request still in flight when wrk stops adds an entry wrk never
counts, never the reverse).
"""

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo

from pymongo import MongoClient

from bench.common import REPO, Resources, need, record, wait_until, watch_broker
from bench.gateway_load import run_wrk
from tests import factories
from tests.support import (
    BIN,
    Platform,
    Process,
    StoreServer,
    ensure_rabbitmq,
    free_port,
)

LIMITS = {  # one bench user sends everything: the per-caller limit raised, its cost kept
    "GATEWAY_RATE_LIMIT_PER_MINUTE": "100000000",
    "GATEWAY_RATE_LIMIT_BURST": "10000000",
}


class TreeProcess(Process):
    """A Process run from a checkout: its folder the working directory and the first entry of
    its import path (the editable install would otherwise give this checkout's code)."""

    def __init__(self, name, args, env, log_dir, tree):
        self.name = name
        self.log_path = pathlib.Path(log_dir) / f"{name}-{uuid.uuid4().hex[:6]}.log"
        self.log_file = open(self.log_path, "wb")  # closed by stop()
        env = dict(env, PYTHONPATH=str(tree))
        self.popen = subprocess.Popen(
            args,
            env=env,
            cwd=tree,
            stdout=self.log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


def imports_from(tree, env, module):
    """Fail unless `module` imports from `tree` in a process started as TreeProcess starts one."""
    where = subprocess.run(
        [sys.executable, "-c", f"import {module} as m; print(m.__file__)"],
        cwd=tree,
        env=dict(env, PYTHONPATH=str(tree)),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(tree)), f"{module} imports {where}, not from {tree}"


class Tree:
    """One checkout's installation: its own vhost and databases on the shared NX-27017, its
    intake (started from the checkout), seeded patients."""

    def __init__(self, label, path, store, logs, resources, patients):
        self.label, self.path = label, pathlib.Path(path).resolve()
        self.platform = Platform(store, logs)
        env = self.platform.env("intake")
        imports_from(self.path, env, "services.intake.service")
        intake = TreeProcess(
            f"intake {label}",
            [sys.executable, "-m", "shared.runner", "intake"],
            env,
            logs,
            self.path,
        )
        self.platform.processes.append(intake)
        wait_until(
            lambda: '"service started"' in intake.output() or not intake.alive(),
            timeout=90,
            message=f"intake ({label}) to start",
        )
        assert intake.alive(), f"intake ({label}) died at start:\n{intake.output()[-3000:]}"
        resources.watch(intake.name, intake.popen.pid)
        self.paths = [f"/api/v1/patients/{pid}" for pid in seed(self.platform, patients)]
        self.gateway_db = f"{store.uri}/t{self.platform.run_id}_gateway"

    def close(self):
        self.platform.close()


def seed(platform, patients):
    """`patients` patients (a visit each) recorded by intake; their ids."""
    for i in range(patients):
        platform.publish(factories.visit(f"R{i:05d}", phone=f"137{i:08d}", day=2 + i % 20))
    intake = MongoClient(platform.database_uri("intake")).get_default_database()
    wait_until(
        lambda: intake.events.estimated_document_count() >= patients,
        timeout=300,
        interval=0.2,
        message="intake to record the seed",
    )
    return [doc["_id"] for doc in intake.patients.find({}, {"_id": 1})]


# -- profile ------------------------------------------------------------------------------------
CHILD = pathlib.Path(__file__).resolve().parent / "gateway_read_child.py"


def profile_tree(tree, resources, requests):
    """bench/gateway_read_child.py with the tree's code against the tree's intake: CPU per read
    by process, then its cProfile rows. Returns report lines."""
    platform = tree.platform
    env = platform.env(
        "gateway",
        BENCH_PATHS=json.dumps(tree.paths),
        BENCH_REQUESTS=str(requests),
        BENCH_LOG=str(platform.log_dir / f"gateway-in-process-{tree.label}.log"),
        BENCH_PSTATS=str(platform.log_dir / f"gateway-{tree.label}.pstats"),
        **LIMITS,
    )
    imports_from(tree.path, env, "services.gateway.app")
    child = subprocess.Popen(
        [sys.executable, str(CHILD)],
        cwd=tree.path,
        text=True,
        env=dict(env, PYTHONPATH=str(tree.path)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        resources.watch(f"gateway {tree.label} (in-process)", child.pid)
        line = child.stdout.readline()
        assert line.strip() == "ready", f"{tree.label}: the child said {line!r}"
        before = resources.snapshot()
        child.stdin.write("go\n")
        child.stdin.flush()
        timed = json.loads(child.stdout.readline().removeprefix("timed "))
        per_read = Resources.per_unit(before, resources.snapshot(), requests, unit="read")
        child.stdin.write("go\n")
        child.stdin.flush()
        profiled = json.loads(child.stdout.readline().removeprefix("profile "))
    finally:
        child.stdin.close()
        child.wait(timeout=60)
    wall, cpu = timed["wall_s"], timed["cpu_s"]
    lines = [
        (
            f"**{tree.label}** ({tree.path}): {requests / wall:.0f} reads/s one after another, "
            f"{wall * 1000 / requests:.2f} ms wall and {cpu * 1000 / requests:.2f} ms of the "
            f"reading thread's CPU per read"
        ),
        f"  - {per_read}",
    ]
    wall_rows = dict(profiled["wall"])
    lines.append(
        "  - cProfile, ms per read, CPU (thread time) / wall clock (cumulative; "
        "profiling inflates both, compare rows with each other):"
    )
    for name, ms in profiled["cpu"]:
        depth = (len(name) - len(name.lstrip())) // 2
        lines.append(f"    {'  ' * depth}- {name.strip()}: {ms:.3f} / {wall_rows.get(name, 0):.3f}")
    pstats_file = platform.log_dir / f"gateway-{tree.label}.pstats"
    lines.append(f"  - top functions by own CPU time (all: {pstats_file}):")
    lines += [f"        {line}" for line in profiled["top"]]
    return lines


def trees_of(args):
    before = [("before", args.before)] if args.before else []
    return before + [("after", REPO)]


def setting_up(args):
    """(store, logs, resources, [Tree]): NX-27017, and each tree's installation."""
    ensure_rabbitmq()
    logs = pathlib.Path(tempfile.mkdtemp(prefix="hcrm-bench-"))
    store = StoreServer(logs)
    resources = Resources().start()
    watch_broker(resources)
    resources.watch("nx-27017", store.process.popen.pid)
    trees = []
    try:
        for label, path in trees_of(args):
            trees.append(Tree(label, path, store, logs, resources, args.patients))
    except BaseException:
        tearing_down(store, resources, trees)
        raise
    return store, logs, resources, trees


def tearing_down(store, resources, trees):
    resources.stop()
    for tree in trees:
        tree.close()
    store.close()


def profile(args):
    store, _, resources, trees = setting_up(args)
    try:
        lines = [
            (
                f"in-process gateway (create_app under the OpenTelemetry WSGI middleware), one "
                f"thread, {args.requests} reads of GET /api/v1/patients/{{id}} one after another "
                f"({args.patients} patients); each tree with its own intake (its code) on one "
                "NX-27017 and the machine's RabbitMQ; CPU per read from /proc"
            )
        ]
        for tree in trees:
            lines += profile_tree(tree, resources, args.requests)
        resources.stop()
        lines += resources.lines()
        if args.no_record:
            print("\n".join(lines))
        else:
            record(
                "gateway read, in-process profile"
                + (", before/after (issue 17)" if args.before else ""),
                lines,
            )
    finally:
        tearing_down(store, resources, trees)


# -- compare ------------------------------------------------------------------------------------
def start_gateway(tree, args, resources):
    """The tree's gateway as deployed: gunicorn with the tree's deploy/gunicorn.conf.py."""
    port = free_port()
    platform = tree.platform
    env = platform.env(
        "gateway",
        GATEWAY_PORT=port,
        GATEWAY_HOST="127.0.0.1",
        GATEWAY_SERVICES="intake",
        GATEWAY_WORKERS=args.workers,
        GATEWAY_THREADS=args.gateway_threads,
        **LIMITS,
    )
    imports_from(tree.path, env, "services.gateway.app")
    process = TreeProcess(
        f"gateway {tree.label}",
        [str(BIN / "gunicorn"), "-c", "deploy/gunicorn.conf.py", "services.gateway.wsgi:app"],
        env,
        platform.log_dir,
        tree.path,
    )
    platform.processes.append(process)
    platform.gateway_url = f"http://127.0.0.1:{port}"
    wait_until(
        lambda: platform.http("GET", "/readyz")[0] == 200 or not process.alive(),
        timeout=90,
        message=f"the {tree.label} gateway to answer /readyz",
    )
    assert process.alive(), f"{tree.label} gateway died at start:\n{process.output()[-3000:]}"
    resources.watch(process.name, process.popen.pid)
    tree.token = platform.token()
    status, body = platform.http("GET", tree.paths[0], token=tree.token)
    assert status == 200, (tree.label, status, body)
    tree.audit = MongoClient(tree.gateway_db).get_default_database().audit
    tree.runs = []


def audit_inserts(tree):
    """The insert commands the tree's gateway sent to its store (its /metrics, all workers)."""
    from prometheus_client.parser import text_string_to_metric_families

    _, text = tree.platform.http("GET", "/metrics")
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "hcrm_store_commands"
        for sample in family.samples
        if sample.name.endswith("_total") and sample.labels.get("command") == "insert"
    )


def load(tree, args, resources, round_):
    """One wrk run against the tree's gateway: its figures, CPU per request, audit entries."""
    entries, inserts = tree.audit.count_documents({}), audit_inserts(tree)
    before = resources.snapshot()
    figures, _ = run_wrk(
        tree.platform.gateway_url,
        tree.paths,
        tree.token,
        args.threads,
        args.connections,
        args.duration,
    )
    figures["cpu"] = Resources.per_unit(before, resources.snapshot(), max(figures["requests"], 1))
    time.sleep(1)  # requests in flight when wrk stopped finish (and are audited)
    figures["audited"] = tree.audit.count_documents({}) - entries
    figures["inserts"] = audit_inserts(tree) - inserts
    figures["answered"] = figures["requests"] - figures["non2xx"]
    figures["load"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    tree.runs.append(figures)
    print(f"round {round_} {tree.label}: {figures}", flush=True)


def summary(tree):
    rps, p50, p99 = ([f[key] for f in tree.runs] for key in ("rps", "p50", "p99"))
    lines = [
        (
            f"**{tree.label}** ({tree.path}): {min(rps):.0f}–{max(rps):.0f} requests/s, "
            f"p50 {min(p50):.1f}–{max(p50):.1f} ms, p99 {min(p99):.1f}–{max(p99):.1f} ms"
        )
    ]
    for i, f in enumerate(tree.runs, 1):
        lines.append(
            f"  - round {i}: {f['rps']:.0f} requests/s, p50 {f['p50']:.1f} ms, p90 "
            f"{f['p90']:.1f} ms, p99 {f['p99']:.1f} ms ({f['requests']} requests, "
            f"{f['non2xx']} non-2xx, socket errors: {f['socket_errors']}; audit entries "
            f"{f['audited']} for {f['answered']} answered, written by {f['inserts']:.0f} "
            f"inserts; load average {f['load']})"
        )
        lines.append(f"    - {f['cpu']}")
    return lines


def compare(args):
    need("wrk")
    store, _, resources, trees = setting_up(args)
    try:
        for tree in trees:
            start_gateway(tree, args, resources)
        resources.mark()
        for round_ in range(1, args.rounds + 1):
            for tree in trees:
                load(tree, args, resources, round_)
        resources.stop()
        lines = [
            (
                f"GET /api/v1/patients/{{id}} ({args.patients} patients); each tree with its "
                f"own intake and gateway (its code; gunicorn gthread, {args.workers} workers × "
                f"{args.gateway_threads} threads) on one NX-27017 and the machine's RabbitMQ; "
                f"wrk -t{args.threads} -c{args.connections} -d{args.duration}s --latency, "
                f"the trees in turn, {args.rounds} rounds; uptime at the start: {args.uptime}"
            )
        ]
        for tree in trees:
            lines += summary(tree)
        broken = [
            (tree.label, i)
            for tree in trees
            for i, f in enumerate(tree.runs, 1)
            if f["audited"] < f["answered"]
        ]
        if broken:
            lines.append(
                f"AUDIT GUARANTEE BROKEN: fewer audit entries than answered reads in {broken}"
            )
        bad = sorted(
            {
                tree.label
                for tree in trees
                for f in tree.runs
                if f["non2xx"] > 0.001 * f["requests"] or f["socket_errors"] != "none"
            }
        )
        if bad:
            lines.append(f"NOT VALID: non-2xx responses or socket errors for {', '.join(bad)}")
        lines += resources.lines()
        if args.no_record:
            print("\n".join(lines))
        else:
            record(f"gateway read, before/after (issue 17), wrk -c{args.connections}", lines)
    finally:
        tearing_down(store, resources, trees)


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    modes = parser.add_subparsers(dest="mode", required=True)
    p = modes.add_parser("profile", help="where one read's CPU goes (in-process cProfile)")
    p.add_argument("--requests", type=int, default=1000)
    p.add_argument("--patients", type=int, default=50)
    p.add_argument(
        "--before", help="another checkout to profile first (e.g. a git worktree of HEAD)"
    )
    p.add_argument(
        "--no-record", action="store_true", help="print only (not appended to RESULTS.md)"
    )
    c = modes.add_parser("compare", help="two code trees under the same load, in turn")
    c.add_argument(
        "--before", required=True, help="the other checkout (e.g. a git worktree of HEAD)"
    )
    c.add_argument("--rounds", type=int, default=2)
    c.add_argument("--threads", type=int, default=2, help="wrk threads (-t)")
    c.add_argument("--connections", type=int, default=32)
    c.add_argument("--duration", type=int, default=15)
    c.add_argument("--workers", type=int, default=2)
    c.add_argument("--gateway-threads", type=int, default=8)
    c.add_argument("--patients", type=int, default=50)
    c.add_argument(
        "--no-record", action="store_true", help="print only (not appended to RESULTS.md)"
    )
    args = parser.parse_args(argv)
    args.uptime = subprocess.run(
        ["uptime"], capture_output=True, text=True, check=False
    ).stdout.strip()
    (profile if args.mode == "profile" else compare)(args)


if __name__ == "__main__":
    main()
