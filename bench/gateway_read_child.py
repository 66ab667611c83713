"""The in-process side of `python -m bench.gateway_read profile`: one code tree's gateway in
this process, reads through its WSGI call, cProfile. Run by bench/gateway_read.py, from the
tree's folder with that tree first on PYTHONPATH, so that `services` and `shared` are that
tree's; it imports nothing from bench/ or tests/ (the other tree may not have them).

Talks to its parent on stdin/stdout: prints `ready` after the warm-up, waits for a line, runs
the timed reads and prints `timed <json>`, then profiles and prints `profile <json>`.
Configuration: the gateway's environment, plus BENCH_PATHS (JSON list), BENCH_REQUESTS,
BENCH_LOG (the gateway's log file) and optionally BENCH_PSTATS (a file for the CPU profile).
"""

import cProfile
import io
import json
import logging
import os
import pstats
import sys
import time

# Stages of a read: (label, file suffix, function name[, caller file suffix, caller function]).
# Times are cumulative (the function and everything it called); with a caller, only the
# calls from that caller. A label '' adds to the row above. A stage the tree does not have
# (nameko's publisher after, the group commit before) shows 0.
STAGES = [
    (
        "WSGI call (OpenTelemetry middleware, the app, the body)",
        "opentelemetry/instrumentation/wsgi/__init__.py",
        "__call__",
    ),
    ("  gateway app (Gateway.__call__)", "services/gateway/app.py", "__call__"),
    ("    werkzeug routing", "werkzeug/routing/map.py", "match"),
    ("    auth: token verification", "services/gateway/auth.py", "verify_token"),
    ("    rate limiter", "services/gateway/ratelimit.py", "acquire"),
    (
        "    RPC call (pool, span, request, reply)",
        "services/gateway/rpc.py",
        "call",
        "services/gateway/routes/patients.py",
        "get_patient",
    ),
    (
        "      nameko Publisher.publish (a kombu Connection per call, producer pool, retry)",
        "nameko/amqp/publish.py",
        "publish",
    ),
    ("      kombu Producer.publish (serialise, send)", "kombu/messaging.py", "publish"),
    (
        "        wait for the publisher confirm",
        "amqp/abstract_channel.py",
        "wait",
        "amqp/channel.py",
        "basic_publish_confirm",
    ),
    ("      wait for the reply (drain the connection)", "kombu/connection.py", "drain_events"),
    ("      tracing client span", "shared/tracing.py", "__enter__"),
    ("", "shared/tracing.py", "__exit__"),
    (
        "    JSON response (json.dumps, werkzeug Response)",
        "services/gateway/http.py",
        "json_response",
    ),
    ("    audit: the entry and its write", "services/gateway/app.py", "_audit"),
    ("      audit: the store write", "services/gateway/store.py", "audit"),
    ("      audit: masking the query", "services/gateway/privacy.py", "audit_query"),
    (
        "    request log line (JSON)",
        "logging/__init__.py",
        "info",
        "services/gateway/app.py",
        "__call__",
    ),
    (
        "    metrics (prometheus counter, histogram)",
        "prometheus_client/metrics.py",
        "inc",
        "services/gateway/app.py",
        "__call__",
    ),
    ("", "prometheus_client/metrics.py", "observe", "services/gateway/app.py", "__call__"),
]


def stage_times(stats, requests):
    rows = []
    for stage in STAGES:
        label, file_suffix, name = stage[:3]
        total = 0.0
        for key, entry in stats.stats.items():
            if not (key[0].endswith(file_suffix) and key[2] == name):
                continue
            if len(stage) == 5:
                total += sum(
                    times[3]
                    for caller, times in entry[4].items()
                    if caller[0].endswith(stage[3]) and caller[2] == stage[4]
                )
            else:
                total += entry[3]
        ms = total * 1000 / requests
        if label:
            rows.append([label, ms])
        elif rows:
            rows[-1][1] += ms
    return rows


def top_functions(stats, count=25):
    out = io.StringIO()
    stats.stream = out
    stats.sort_stats("tottime").print_stats(count)
    lines = [line.rstrip() for line in out.getvalue().splitlines() if line.strip()]
    start = next(i for i, line in enumerate(lines) if "ncalls" in line)
    return [
        line.replace(sys.prefix, "<venv>").replace(os.getcwd(), "<tree>") for line in lines[start:]
    ]


def main():
    from werkzeug.test import EnvironBuilder

    from services.gateway import auth
    from services.gateway.app import create_app
    from shared import tracing

    app = tracing.wsgi(create_app(), "gateway")
    log_file = open(os.environ["BENCH_LOG"], "a")  # open for the process's life
    for handler in logging.getLogger().handlers:  # the request log to a file, as under gunicorn
        if isinstance(handler, logging.StreamHandler):
            handler.setStream(log_file)
    token = auth.issue_token(os.environ["HCRM_JWT_SECRET"], "admin", "admin", 3600)
    environs = [
        EnvironBuilder(path=path, headers={"Authorization": f"Bearer {token}"}).get_environ()
        for path in json.loads(os.environ["BENCH_PATHS"])
    ]
    statuses = set()

    def start_response(status, headers, exc_info=None):
        statuses.add(status)

    def read(i):
        environ = dict(environs[i % len(environs)])
        environ["wsgi.input"] = io.BytesIO(b"")
        for _ in app(environ, start_response):
            pass

    n = int(os.environ["BENCH_REQUESTS"])
    for i in range(200):  # the pooled RPC client, the store's connections, caches
        read(i)
    assert statuses == {"200 OK"}, statuses
    print("ready", flush=True)
    sys.stdin.readline()
    wall, cpu = time.perf_counter(), time.thread_time()
    for i in range(n):
        read(i)
    wall, cpu = time.perf_counter() - wall, time.thread_time() - cpu
    print("timed " + json.dumps({"wall_s": wall, "cpu_s": cpu}), flush=True)
    sys.stdin.readline()
    result = {}
    for timer, title in ((time.thread_time, "cpu"), (time.perf_counter, "wall")):
        profiler = cProfile.Profile(timer)
        profiler.enable()
        for i in range(n):
            read(i)
        profiler.disable()
        stats = pstats.Stats(profiler)
        result[title] = stage_times(stats, n)
        if title == "cpu":
            result["top"] = top_functions(stats)
            if os.environ.get("BENCH_PSTATS"):  # for a closer look: python -m pstats <file>
                stats.dump_stats(os.environ["BENCH_PSTATS"])
    assert statuses == {"200 OK"}, statuses
    print("profile " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
