"""Benchmark plumbing: an isolated installation (like the tests), figures appended to
bench/RESULTS.md with the machine, the versions and the command, and a sampler of every
process's peak RSS (VmHWM) and CPU time.

Every bench runs from the repository root, either way:
  .venv/bin/python -m bench.<name> ...      or      .venv/bin/python bench/<name>.py ...
"""

import datetime
import os
import pathlib
import platform as host
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import warnings
from importlib import metadata

REPO = pathlib.Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # `python bench/x.py` puts bench/, not the repo, on the path
    sys.path.insert(0, str(REPO))

warnings.filterwarnings("ignore", message=r"\s*Eventlet is deprecated")

from tests.support import Platform, StoreServer, ensure_rabbitmq, free_port, wait_until  # noqa: E402

RESULTS = pathlib.Path(__file__).resolve().parent / "RESULTS.md"
TICKS = os.sysconf("SC_CLK_TCK")
# Short-lived helpers the bench runs (rabbitmqctl is an Erlang VM): not part of the system.
HELPERS = {
    "beam.smp",
    "erl_child_setup",
    "erlexec",
    "inet_gethost",
    "epmd",
    "sh",
    "bash",
    "rabbitmqctl",
    "escript",
    "erl",
}


def installation():
    """(platform, store): an NX-27017 process and one isolated installation (own vhost,
    own database names) on the machine's RabbitMQ."""
    ensure_rabbitmq()
    logs = pathlib.Path(tempfile.mkdtemp(prefix="hcrm-bench-"))
    store = StoreServer(logs)
    return Platform(store, logs), store


def start_services(platform, *names, **env):
    """Start the services at once (they take seconds each to import and connect), then wait
    for every one to say it started. Returns {name: Process}. Each serves /metrics on a port
    of its own (`process.metrics_port`), which `store_commands` reads."""
    processes = {}
    for name in names:
        port = free_port()
        processes[name] = platform.start_service(name, wait=False, HCRM_METRICS_PORT=port, **env)
        processes[name].metrics_port = port
    for name, process in processes.items():
        wait_until(
            lambda: '"service started"' in process.output() or not process.alive(),
            timeout=90,
            message=f"{name} to start",
        )
        assert process.alive(), f"{name} died at start:\n{process.output()[-3000:]}"
    return processes


def total_ram_gb():
    for line in open("/proc/meminfo"):
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024**2
    return 0.0


def machine():
    versions = ", ".join(
        f"{name} {metadata.version(name)}"
        for name in ("nameko", "kombu", "pymongo", "eventlet", "gunicorn", "nx-27017")
    )
    rabbit = subprocess.run(
        ["rabbitmqctl", "version"], capture_output=True, text=True
    ).stdout.strip()
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return (
        f"{host.node()} · {os.cpu_count()} cores · {total_ram_gb():.1f} GB RAM · "
        f"Python {host.python_version()} · RabbitMQ {rabbit} · {versions} · "
        f"load average at the end {load}"
    )


def code_version():
    """The commit, and the code changed on top of it (another engineer's work in progress is
    measured too: say so): the services, and what starts them and the store."""

    def git(*args):
        try:
            return subprocess.run(
                ["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10
            ).stdout.rstrip("\n")
        except (OSError, subprocess.SubprocessError):
            return ""

    sha = git("rev-parse", "--short", "HEAD") or "unknown"
    dirty = sorted(
        {
            "/".join(line[3:].split("/")[:2])
            for line in git(
                "status",
                "--porcelain",
                "--",
                "services",
                "shared",
                "tests/support.py",
                "bench",
                ":!bench/RESULTS.md",
            ).splitlines()
        }
    )
    return f"git {sha}" + (f" + uncommitted changes in {', '.join(dirty)}" if dirty else "")


def command():
    """The command as it was typed (`python -m bench.x ...` or `python bench/x.py ...`)."""
    python = pathlib.Path(sys.executable)
    try:
        python = python.relative_to(REPO)
    except ValueError:
        pass
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    if spec is not None and spec.name:
        text = " ".join([str(python), "-m", spec.name.removesuffix(".__main__")] + sys.argv[1:])
    else:
        text = " ".join([str(python)] + sys.argv)
    return text


def record(title, lines):
    """Print the figures and append them to RESULTS.md; with HCRM_BENCH_NO_RECORD=1, only print
    them (bench.compare runs a bench in two trees and records one comparison instead)."""
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    by_make = " (run by `make bench`)" if os.environ.get("MAKELEVEL") else ""
    block = [
        f"\n## {title} — {stamp}",
        f"- machine: {machine()}",
        f"- code: {code_version()}",
        f"- command: `{command()}`{by_make}",
    ]
    block += [line if line.startswith("  ") else f"- {line}" for line in lines]  # "  - x": nested
    text = "\n".join(block) + "\n"
    print(text, flush=True)
    if os.environ.get("HCRM_BENCH_NO_RECORD", "") not in ("", "0"):
        return
    if not RESULTS.exists():
        RESULTS.write_text(
            "# Benchmark results\n\nAppended by the scripts in bench/; newest last.\n"
        )
    with RESULTS.open("a") as out:
        out.write(text)


# -- peak RSS and CPU of every process --------------------------------------------------------
def _stat(pid):
    """(ppid, comm, cpu seconds) from /proc/<pid>/stat, or None when it is gone."""
    try:
        text = open(f"/proc/{pid}/stat").read()
    except OSError:
        return None
    comm = text[text.index("(") + 1 : text.rindex(")")]
    fields = text[text.rindex(")") + 2 :].split()
    return int(fields[1]), comm, (int(fields[11]) + int(fields[12])) / TICKS


def _hwm_kb(pid):
    try:
        for line in open(f"/proc/{pid}/status"):
            if line.startswith("VmHWM"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def machine_busy_seconds():
    """CPU seconds the whole machine has spent busy (all cores; /proc/stat, not idle/iowait)."""
    values = [int(v) for v in open("/proc/stat").readline().split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / TICKS


def peak_rss_mb(pid):
    kb = _hwm_kb(pid)
    return None if kb is None else kb / 1024


class Resources:
    """Samples VmHWM (the kernel's peak RSS) and CPU time of named processes and of all their
    descendants (gunicorn workers, wrk, ...), every `interval` seconds, so a process is
    seen even if it ends before the report. The bench's own process is always watched.

        resources = Resources().start()
        resources.watch("intake", process.popen.pid)
        ...
        resources.stop(); lines = resources.lines()   # before stopping the processes
    """

    def __init__(self, interval=0.5):
        self.interval = interval
        self.roots = {os.getpid(): "bench"}
        self.seen = {}  # pid -> {"label", "hwm_kb", "cpu0", "cpu"}
        self._stop = threading.Event()
        self._thread = None
        self._lock = threading.Lock()
        self.started = None
        self.elapsed = None
        self.marked = False
        self.busy0 = machine_busy_seconds()
        self.busy = None

    def watch(self, name, pid):
        with self._lock:
            self.roots[pid] = name
        self.sample()
        return self

    def mark(self):
        """The measured window starts now: CPU time counts from here (start-up excluded)."""
        self.sample()
        with self._lock:
            for entry in self.seen.values():
                entry["cpu0"] = entry["cpu"]
            self.marked = True
        self.started = time.monotonic()
        self.busy0 = machine_busy_seconds()
        return self

    def start(self):
        self.started = time.monotonic()
        self.busy0 = machine_busy_seconds()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="resources", daemon=True)
        self._thread.start()
        return self

    def _run(self):
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self):
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self.sample()
        if self.busy is None:  # the first stop ends the window
            self.elapsed = time.monotonic() - (self.started or time.monotonic())
            self.busy = machine_busy_seconds() - self.busy0
        return self

    def sample(self):
        table = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                stat = _stat(int(entry))
                if stat:
                    table[int(entry)] = stat
        with self._lock:
            roots = dict(self.roots)
        for pid, (_, comm, cpu) in table.items():
            owner, cursor, depth = None, pid, 0
            while cursor in table and depth < 20:  # nearest watched ancestor (or itself)
                if cursor in roots:
                    owner = cursor
                    break
                cursor, depth = table[cursor][0], depth + 1
            if owner is None or (owner != pid and comm in HELPERS):
                continue
            hwm = _hwm_kb(pid)
            if hwm is None:
                continue
            label = roots[owner] if owner == pid else f"{roots[owner]} › {comm}"
            with self._lock:
                entry = self.seen.get(pid)
                if entry is None:
                    # Before mark(): counted from first sight; after: a new process, from 0.
                    entry = self.seen[pid] = {
                        "label": label,
                        "hwm_kb": hwm,
                        "cpu0": 0.0 if self.marked else cpu,
                        "cpu": cpu,
                    }
                entry["hwm_kb"] = max(entry["hwm_kb"], hwm)
                entry["cpu"] = cpu
                entry["label"] = label  # watched after it was first seen: its own name

    def rows(self):
        """[(label, pid, peak MB, cpu seconds)], watched roots first, in watch order."""
        order = {name: i for i, name in enumerate(self.roots.values())}
        rows = [
            (e["label"], pid, e["hwm_kb"] / 1024, e["cpu"] - e["cpu0"])
            for pid, e in self.seen.items()
        ]
        return sorted(rows, key=lambda r: (order.get(r[0].split(" › ")[0], 99), r[0], r[1]))

    def snapshot(self):
        """{label: CPU seconds so far} (pids with the same label, e.g. gunicorn workers, added)."""
        self.sample()
        totals = {}
        with self._lock:
            for entry in self.seen.values():
                totals[entry["label"]] = (
                    totals.get(entry["label"], 0.0) + entry["cpu"] - entry["cpu0"]
                )
        return totals

    @staticmethod
    def per_unit(before, after, units, unit="request"):
        """One line: CPU milliseconds per unit of work by process, between two snapshots."""
        parts = [(label, (after[label] - before.get(label, 0.0)) * 1000 / units) for label in after]
        total = sum(ms for _, ms in parts)
        return f"CPU per {unit}: {total:.1f} ms in all, " + ", ".join(
            f"{label} {ms:.1f} ms" for label, ms in parts if ms >= 0.05
        )

    def lines(self):
        """Two report lines: peak RSS per process, CPU time per process."""
        rows = self.rows()
        elapsed = self.elapsed or (time.monotonic() - (self.started or time.monotonic())) or 1.0
        rss = ", ".join(f"{label} {mb:.0f} MB" for label, _, mb, _ in rows)
        cpu = ", ".join(f"{label} {s:.1f} s ({100 * s / elapsed:.0f}%)" for label, _, _, s in rows)
        ours = sum(s for _, _, _, s in rows)
        busy = self.busy if self.busy is not None else machine_busy_seconds() - self.busy0
        other = max(0.0, busy - ours)
        return [
            f"peak RSS (VmHWM, sampled every {self.interval:g} s, children included): {rss}",
            f"CPU time over {elapsed:.0f} s (% of one core): {cpu}",
            f"machine: {busy:.0f} CPU-s busy of {elapsed * os.cpu_count():.0f} available "
            f"({100 * busy / (elapsed * os.cpu_count()):.0f}%); by processes outside this bench "
            f"(other work on the machine): {other:.0f} CPU-s "
            f"({100 * other / (elapsed * os.cpu_count()):.0f}%)",
        ]


def store_commands(platform):
    """{service: {command: count}}: the store round trips each service process counted
    (hcrm_store_commands_total on its /metrics), summed over replicas."""
    import urllib.request

    from prometheus_client.parser import text_string_to_metric_families

    counts = {}
    for process in platform.processes:
        port = getattr(process, "metrics_port", None)
        if not port or not process.alive():
            continue
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read().decode()
        for family in text_string_to_metric_families(text):
            if family.name != "hcrm_store_commands":
                continue
            for sample in family.samples:
                if sample.name.endswith("_total"):
                    mine = counts.setdefault(process.name, {})
                    command = sample.labels["command"]
                    mine[command] = mine.get(command, 0) + sample.value
    return counts


def commands_per_event(before, after, events):
    """One report line: store round trips per event, by service and command."""
    parts = []
    total = 0.0
    for service in sorted(after):
        diff = {c: n - before.get(service, {}).get(c, 0) for c, n in after[service].items()}
        diff = {c: n for c, n in diff.items() if n > 0}
        subtotal = sum(diff.values()) / events
        total += subtotal
        detail = ", ".join(
            f"{c} {n / events:.2f}" for c, n in sorted(diff.items(), key=lambda kv: -kv[1])
        )
        parts.append(f"{service} {subtotal:.2f} ({detail})")
    return f"store round trips per event: {total:.2f} in all; " + "; ".join(parts)


def watch_platform(resources, platform, store):
    """Watch NX-27017, every process the platform started (services, gateway) and the
    machine's RabbitMQ."""
    watch_broker(resources)
    if store.process:
        resources.watch("nx-27017", store.process.popen.pid)
    for process in platform.processes:
        resources.watch(process.name, process.popen.pid)
    return resources


def broker_pid():
    """The machine's RabbitMQ (beam.smp running `rabbit`), or None."""
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                cmdline = open(f"/proc/{entry}/cmdline", "rb").read().split(b"\0")
            except OSError:
                continue
            if cmdline and cmdline[0].endswith(b"beam.smp") and b"rabbit" in cmdline:
                return int(entry)
    return None


def watch_broker(resources):
    """RabbitMQ too: it is the machine's, shared with whatever else runs, so its CPU time is
    ours only while nothing else uses it, and its peak RSS predates the bench."""
    pid = broker_pid()
    if pid:
        resources.watch("rabbitmq (machine's)", pid)
    return resources


def percentile(sorted_values, p):
    """The p-th percentile (nearest rank) of already sorted values."""
    if not sorted_values:
        return None
    rank = max(1, round(p / 100 * len(sorted_values) + 0.4999))
    return sorted_values[min(rank, len(sorted_values)) - 1]


def need(tool):
    path = shutil.which(tool)
    if path is None:
        raise SystemExit(f"{tool} is not installed: run `make tools` (deploy/ensure-tools.sh)")
    return path
