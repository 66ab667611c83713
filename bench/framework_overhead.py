"""Framework overhead: the same work (one store write per message, then ack) done by our
nameko reliable consumer and by a bare kombu consumer, side by side in one run.

  .venv/bin/python -m bench.framework_overhead [N]

Each consumer drains its own queue of N pre-published messages; the figure is messages/s
from its start to the last write, and the ratio nameko/bare.
"""

import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo

from kombu import Connection, Queue

from bench.common import Resources, installation, record, watch_broker
from shared.messaging import publish
from tests.support import REPO


def drain_with(mode, platform, count, resources, workers=10):
    queue = f"bench.{mode}"
    mongo_uri = platform.database_uri(f"bench_{mode}")
    with Connection(platform.amqp_uri) as connection:
        Queue(queue, durable=True)(connection.channel()).declare()
    for seq in range(count):
        publish(platform.amqp_uri, "", queue, {"seq": seq})
    from pymongo import MongoClient

    db = MongoClient(mongo_uri).get_default_database()
    started = time.perf_counter()
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bench.overhead_worker",
            mode,
            platform.amqp_uri,
            mongo_uri,
            queue,
            str(workers),
        ],
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    resources.watch(f"{mode} consumer", process.pid)
    process.stdout.readline()
    while db.writes.estimated_document_count() < count:
        if time.perf_counter() - started > 600:
            raise SystemExit(f"{mode}: not done in 600 s")
        time.sleep(0.02)
    elapsed = time.perf_counter() - started
    process.terminate()
    process.wait(timeout=30)
    return count / elapsed


def main(count=3000):
    platform, store = installation()
    resources = watch_broker(Resources().start()).watch("nx-27017", store.process.popen.pid)
    try:
        bare = drain_with("bare", platform, count, resources)
        nameko = drain_with("nameko", platform, count, resources)
        resources.stop()
        record(
            f"framework overhead, {count} messages, one store write each",
            [
                f"bare kombu consumer: {bare:.0f} msg/s",
                f"nameko + reliable_consumer: {nameko:.0f} msg/s",
                f"ratio nameko/bare: {nameko / bare:.2f} (throughput; 1.00 = no overhead)",
                *resources.lines(),
            ],
        )
    finally:
        resources.stop()
        platform.close()
        store.close()


if __name__ == "__main__":
    main(*(int(arg) for arg in sys.argv[1:]))
