"""Benchmark plumbing: an isolated installation (like the tests), figures appended to
bench/RESULTS.md with the machine, the versions and the command."""
import datetime
import os
import pathlib
import platform as host
import subprocess
import sys
import tempfile
from importlib import metadata

from tests.support import Platform, StoreServer, ensure_rabbitmq

RESULTS = pathlib.Path(__file__).resolve().parent / "RESULTS.md"


def installation():
    ensure_rabbitmq()
    logs = pathlib.Path(tempfile.mkdtemp(prefix="hcrm-bench-"))
    store = StoreServer(logs)
    return Platform(store, logs), store


def machine():
    versions = ", ".join(f"{name} {metadata.version(name)}" for name in
                         ("nameko", "kombu", "pymongo", "eventlet", "nx-27017"))
    rabbit = subprocess.run(["rabbitmqctl", "version"], capture_output=True, text=True).stdout.strip()
    return (f"{host.node()} · {os.cpu_count()} cores · Python {host.python_version()} · "
            f"RabbitMQ {rabbit} · {versions}")


def record(title, lines):
    """Print the figures and append them to RESULTS.md."""
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    block = [f"\n## {title} — {stamp}", f"- machine: {machine()}",
             f"- command: `{' '.join([pathlib.Path(sys.executable).name] + sys.argv)}`"]
    block += [f"- {line}" for line in lines]
    text = "\n".join(block) + "\n"
    print(text)
    if not RESULTS.exists():
        RESULTS.write_text("# Benchmark results\n\nAppended by the scripts in bench/; newest last.\n")
    with RESULTS.open("a") as out:
        out.write(text)
