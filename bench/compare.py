"""Two code trees side by side on one bench: the pipeline's throughput or its latency.

  .venv/bin/python -m bench.compare pipeline --before /tmp/pipe-before [--rounds 3] [--events 2000]
  .venv/bin/python -m bench.compare latency --before /tmp/pipe-before [--rounds 3] [--duration 60]
      [--rate 50] [--drain 30]
  (both: [--no-record] prints the comparison without appending it to RESULTS.md)

`--before`: another checkout, e.g. `git worktree add /tmp/pipe-before <rev>` (detached at
<rev>: HEAD measures the uncommitted work against the last commit); remove it after with
`git worktree remove /tmp/pipe-before`. "after" is the tree this file is in, uncommitted
changes included (the code lines say which).

Each run is a child process, `python -m bench.intake_throughput N` (pipeline) or
`python -m bench.latency --rates R --duration D --drain S` (latency), with the tree as its
working directory and its PYTHONPATH: the bench, tests/support.py and the services it starts
(their working directory is that tree's, their environment inherited) all import the tree's
code, checked before the first round. Both trees use this virtualenv: a <rev> needing other
dependencies needs its own. Every run is a fresh installation (its own NX-27017, vhost and
databases) on the machine's RabbitMQ. The trees take turns, before, after, before, after...,
`--rounds` times each, so both see the same machine load.

The figures are read from what each run prints ("?" where a run printed none); a failed run is
reported with its exit code and its last lines, and every run's whole output is kept in a log
file. The runs only print (HCRM_BENCH_NO_RECORD=1); this script appends one block to
bench/RESULTS.md: each round's headline figures, then median (min–max) of each tree's runs and
after against before. A tree whose bench/common.py predates that switch appends its own block
anyway: its RESULTS.md is put back after each run.
"""

import argparse
import os
import pathlib
import re
import statistics
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))  # the repo

from bench.common import REPO, record

NO_RECORD = "HCRM_BENCH_NO_RECORD"
# What a run imports: the bench's plumbing, the test support that starts the services, and a
# service started as `python -m shared.runner intake` would be.
CHECKED = ("bench.common", "tests.support", "shared.runner", "services.intake.service")
NUMBER = r"(\d+(?:\.\d+)?)"
OUTSIDE = rf"outside this bench \(other work on the machine\): {NUMBER} CPU-s \({NUMBER}%\)"
OTHER_WORK = "other work on the machine (% of its CPU)"
PIPELINE_HEADLINE = (
    "end to end (events/s)",
    "publish (events/s)",
    "CPU per event, all processes (ms)",
    "store round trips per event, all services",
    OTHER_WORK,
)
LATENCY_HEADLINE = (
    "events published",
    "FollowUpScheduled arrived",
    "p50 publish → FollowUpScheduled (ms)",
    "p95 publish → FollowUpScheduled (ms)",
    "p99 publish → FollowUpScheduled (ms)",
    "max publish → FollowUpScheduled (ms)",
    OTHER_WORK,
)


def last(pattern, text):
    """The pattern's last match: bench.latency prints its lines, then record prints them again."""
    matches = list(re.finditer(pattern, text, re.MULTILINE))
    return matches[-1] if matches else None


def parse_pipeline(text):
    """bench.intake_throughput's figures, {row: the number as printed, or None}, in table order
    (every headline row present, so a failed run still has its "?")."""
    figures = dict.fromkeys(PIPELINE_HEADLINE)
    match = last(rf"end to end \(publish → [^)]*\): {NUMBER} events/s", text)
    figures["end to end (events/s)"] = match and match[1]
    match = last(rf"publish: {NUMBER} events/s", text)
    figures["publish (events/s)"] = match and match[1]
    match = last(rf"CPU per event \([^)]*\): {NUMBER} ms in all(.*)$", text)
    figures["CPU per event, all processes (ms)"] = match and match[1]
    for label, ms in re.findall(rf", ([^,]+?) {NUMBER} ms", match[2] if match else ""):
        figures[f"CPU per event, {label} (ms)"] = ms  # under 0.05 ms a process is not printed
    match = last(rf"store round trips per event: {NUMBER} in all;(.*)$", text)
    figures["store round trips per event, all services"] = match and match[1]
    for service, trips in re.findall(rf"([\w-]+) {NUMBER} \(", match[2] if match else ""):
        figures[f"store round trips per event, {service}"] = trips
    match = last(OUTSIDE, text)
    figures[OTHER_WORK] = match and match[2]
    return figures


def parse_latency(text):
    """bench.latency's figures for its one rate, as parse_pipeline's."""
    figures = dict.fromkeys(LATENCY_HEADLINE)
    match = last(rf"FollowUpScheduled arrived for {NUMBER} of {NUMBER}", text)
    figures["events published"] = match and match[2]
    figures["FollowUpScheduled arrived"] = match and match[1]
    match = last(r"/s publish → FollowUpScheduled \(over the \d+ arrived\): ([^;\n]*)", text)
    for name in ("p50", "p95", "p99", "max"):  # "n/a" when nothing arrived: no number, "?"
        value = match and re.search(rf"\b{name} {NUMBER} ms", match[1])
        figures[f"{name} publish → FollowUpScheduled (ms)"] = value and value[1]
    match = last(OUTSIDE, text)
    figures[OTHER_WORK] = match and match[2]
    return figures


def code_and_load(text):
    """(record's code line, the load average at its end) from a run's output, or "?"."""
    code = last(r"^- code: (.+)$", text)
    load = last(r"load average at the end ([\d. ]+)", text)
    return (code[1] if code else "?"), (load[1].strip() if load else "?")


def cell(values):
    """median (min–max) of the numbers the runs printed, at the precision they were printed."""
    numbers = [value for value in values if value is not None]
    if not numbers:
        return "?"
    places = max(len(value.partition(".")[2]) for value in numbers)
    floats = sorted(float(value) for value in numbers)
    text = f"{statistics.median(floats):.{places}f}"
    if len(floats) > 1:
        text += f" ({floats[0]:.{places}f}–{floats[-1]:.{places}f})"
    if len(numbers) < len(values):
        text += f"; ? in {len(values) - len(numbers)} of {len(values)} runs"
    return text


def change(before, after):
    """after's median against before's, in % of before's; "" when either has no figure."""
    before = [float(value) for value in before if value is not None]
    after = [float(value) for value in after if value is not None]
    if not before or not after or statistics.median(before) == 0:
        return ""
    return f"{100 * (statistics.median(after) / statistics.median(before) - 1):+.0f}%"


def table(runs):
    """The comparison, nested table lines for record(): {tree label: [figures of each run]}
    (before first). A row is every figure any run printed, in the order they print them."""
    labels = list(runs)
    rows = dict.fromkeys(row for label in labels for figures in runs[label] for row in figures)
    heads = " | ".join(f"{label}: median (min–max)" for label in labels)
    lines = [
        f"  | figure | {heads} | {labels[-1]} vs {labels[0]} |",
        "  |---|" + "---|" * len(labels) + "---|",
    ]
    for row in rows:
        values = {label: [figures.get(row) for figures in runs[label]] for label in labels}
        cells = " | ".join(cell(values[label]) for label in labels)
        # The other work is the machine's, not the code's: its change says nothing of the code.
        moved = "" if row == OTHER_WORK else change(values[labels[0]], values[labels[-1]])
        lines.append(f"  | {row} | {cells} | {moved} |")
    return lines


def round_line(number, figures, headline, code, text, log, load):
    """A run's report lines: its headline figures, or its exit code and last lines."""
    shown = "; ".join(f"{row}: {figures.get(row) or '?'}" for row in headline)
    if code == 0:
        return [f"  - round {number}: {shown}; load average at the end {load}"]
    ending = [line.rstrip() for line in text.splitlines() if line.strip()][-5:]
    return [
        f"  - round {number}: FAILED, exit code {code} (its output: {log}); {shown}; it ended:",
        *(f"    - `{line[:300]}`" for line in ending),
    ]


# -- running ------------------------------------------------------------------------------------
def tree_env(tree):
    # PYTHONPATH as well as the working directory: `-m` puts the working directory first on
    # the path, but the editable install puts this repo on it too, so the tree must be ahead of
    # it even where PYTHONSAFEPATH drops the working directory; the services inherit it.
    return dict(os.environ, PYTHONPATH=str(tree), **{NO_RECORD: "1"})


def check_imports(tree):
    """Fail unless a process started as the runs are imports CHECKED from the tree."""
    code = "import importlib\n" + "".join(
        f"print(importlib.import_module({name!r}).__file__)\n" for name in CHECKED
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tree,
        env=dict(tree_env(tree), PYTHONWARNINGS="ignore"),
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise SystemExit(f"{tree}: cannot import the bench's modules:\n{done.stderr[-2000:]}")
    for name, path in zip(CHECKED, done.stdout.split(), strict=True):
        if not pathlib.Path(path).resolve().is_relative_to(tree):
            raise SystemExit(f"in {tree}, {name} imports {path}: not that tree's code")


def run(tree, module_args, log):
    """One run in the tree: (exit code, its output). Its RESULTS.md as it was, if its bench
    appends there anyway (a tree from before HCRM_BENCH_NO_RECORD)."""
    results = tree / "bench" / "RESULTS.md"
    honours = NO_RECORD in (tree / "bench" / "common.py").read_text()
    saved = None if honours or not results.exists() else results.read_bytes()
    with open(log, "w") as out:
        child = subprocess.Popen(
            [sys.executable, "-m", *module_args],
            cwd=tree,
            env=tree_env(tree),
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            code = child.wait()
        except KeyboardInterrupt:
            # The child had the Ctrl-C too: let it stop its services (each in a session of its
            # own, so killing the child would leave them running) before giving up on it.
            try:
                child.wait(timeout=60)
            except subprocess.TimeoutExpired:
                child.kill()
            raise
        finally:
            if saved is not None and results.read_bytes().startswith(saved):
                results.write_bytes(saved)  # only the run's own block went
    return code, pathlib.Path(log).read_text(errors="replace")


def compare(args):
    trees = {"before": pathlib.Path(args.before).resolve(), "after": REPO}
    if args.mode == "pipeline":
        module_args, parse, headline = (
            ["bench.intake_throughput", str(args.events)],
            parse_pipeline,
            PIPELINE_HEADLINE,
        )
        title = (
            f"pipeline throughput (intake → followup → analytics), before/after, "
            f"{args.events} events per run"
        )
    else:
        module_args, parse, headline = (
            ["bench.latency", "--rates", str(args.rate), "--duration", f"{args.duration:g}"]
            + ["--drain", f"{args.drain:g}"],
            parse_latency,
            LATENCY_HEADLINE,
        )
        title = (
            f"latency, PatientVisited → FollowUpScheduled, at {args.rate}/s for "
            f"{args.duration:g} s, before/after"
        )
    for label, tree in trees.items():
        if not (tree / "bench" / f"{module_args[0].split('.')[1]}.py").is_file():
            raise SystemExit(f"{label}: {tree} has no {module_args[0]}")
        check_imports(tree)
        if NO_RECORD not in (tree / "bench" / "common.py").read_text():
            print(f"{label}: its bench appends to {tree}/bench/RESULTS.md; put back after each run")
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    logs = pathlib.Path(tempfile.mkdtemp(prefix="hcrm-compare-"))
    runs = {label: [] for label in trees}
    report = {label: [] for label in trees}
    codes = dict.fromkeys(trees, "?")
    failed = 0
    for number in range(1, args.rounds + 1):
        for label, tree in trees.items():
            log = logs / f"round{number}-{label}.log"
            print(f"round {number} {label}: {' '.join(module_args)} in {tree} ...", flush=True)
            code, text = run(tree, module_args, log)
            figures = parse(text)
            runs[label].append(figures)
            tree_code, load = code_and_load(text)
            codes[label] = tree_code if tree_code != "?" else codes[label]
            failed += code != 0
            lines = round_line(number, figures, headline, code, text, log, load)
            report[label] += lines
            print("\n".join(line.strip() for line in lines), flush=True)
    lines = [
        (
            f"`python -m {' '.join(module_args)}` in each tree, each run a child process with "
            "the tree as its working directory and import path (the bench and the services it "
            "starts from that tree's code; its own NX-27017, vhost and databases on the "
            f"machine's RabbitMQ), the trees in turn, {args.rounds} round(s); every run's output "
            f"in {logs}; uptime at the start: {uptime}"
        )
    ]
    for label, tree in trees.items():
        lines += [f"**{label}** ({tree}): {codes[label]}", *report[label]]
    lines.append(
        "median (min–max) of each tree's runs, as the bench printed them; "
        "after vs before: the medians' difference, in % of before's:"
    )
    lines += table(runs)
    if failed:
        lines.append(f"FAILED RUNS: {failed} of {2 * args.rounds} (their last lines above)")
    if args.no_record:
        print("\n".join(lines))
    else:
        record(title, lines)
    return 1 if failed else 0


def main(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    modes = parser.add_subparsers(dest="mode", required=True)
    pipeline = modes.add_parser("pipeline", help="bench.intake_throughput in both trees, in turn")
    pipeline.add_argument("--events", type=int, default=2000)
    latency = modes.add_parser("latency", help="bench.latency at one rate in both trees, in turn")
    latency.add_argument("--rate", type=int, default=50, help="events per second")
    latency.add_argument("--duration", type=float, default=60.0, help="seconds of publishing")
    latency.add_argument("--drain", type=float, default=30.0, help="seconds to wait after")
    for mode in (pipeline, latency):
        mode.add_argument(
            "--before", required=True, help="the other checkout (e.g. a git worktree of HEAD)"
        )
        mode.add_argument("--rounds", type=int, default=3)
        mode.add_argument(
            "--no-record", action="store_true", help="print only (not appended to RESULTS.md)"
        )
    return compare(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
