"""`hcrm trace ID`: the path of one inbound event through the services, from their JSON logs.

  hcrm trace 4bf92f3577b34da6a3ce929d0e0e4736            a trace id (the gateway's X-Trace-Id)
  hcrm trace 00-4bf92f...-00f067aa0ba902b7-01             or the whole traceparent
  hcrm trace ID --logs /var/log/hcrm                      logs elsewhere (default .local/log,
                                                          where `make up` writes them)

Every log line of the work an event caused carries its trace id (shared/tracing.py), so
the lines of every process's log that name it, ordered by when their work started, are the
event's path: which service did what, when, and how long it took (a line's `ms`: a
gateway request, a message handled). A batch consumer's lines name all the traces of the
batch (`trace_ids`) and are shown too.
"""

import argparse
import datetime
import json
import pathlib
import sys
from collections.abc import Iterable
from typing import Any

from shared import tracing

DEFAULT_LOGS = pathlib.Path(__file__).resolve().parent.parent / ".local" / "log"
# Fields every line has, or that the path shows in its own columns.
_SHOWN = {
    "ts",
    "level",
    "process",
    "logger",
    "message",
    "trace_id",
    "trace_ids",
    "ms",
    "taskName",
    "request_id",
    "method",
    "route",
    "status",
    "queue",
    "event_type",
    "outcome",
    "attempt",
    "batch",
}


def log_files(where: str | pathlib.Path) -> list[pathlib.Path]:
    path = pathlib.Path(where)
    if path.is_file():
        return [path]
    return sorted(p for p in path.glob("*.log*") if p.is_file())


def lines_of(trace_id: str, files: Iterable[pathlib.Path]) -> list[dict[str, Any]]:
    """The parsed JSON lines of `files` that belong to `trace_id`, each with its file's name."""
    found = []
    for path in files:
        with open(path, encoding="utf-8", errors="replace") as text:
            for line in text:
                if trace_id not in line:  # cheap: most lines are other traces'
                    continue
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue
                if isinstance(entry, dict) and (
                    entry.get("trace_id") == trace_id or trace_id in (entry.get("trace_ids") or ())
                ):
                    entry["_file"] = path.name
                    found.append(entry)
    return found


def _when(entry: dict[str, Any]) -> tuple[datetime.datetime, datetime.datetime]:
    """(start, end) of a line's work: it is written at the end, `ms` after the start."""
    end = datetime.datetime.fromisoformat(entry["ts"])
    took = entry.get("ms")
    start = end - datetime.timedelta(milliseconds=took) if isinstance(took, (int, float)) else end
    return start, end


def describe(entry: dict[str, Any]) -> str:
    """What the line says was done, in a few words."""
    message = entry.get("message", "")
    if message == "request" and "route" in entry:
        return f"{entry.get('method')} {entry['route']} → {entry.get('status')}"
    if message == "message handled":
        text = f"handled {entry.get('event_type')} from {entry.get('queue')}"
        if entry.get("outcome") not in (None, "ok"):
            text += f": {entry['outcome']}"
        if entry.get("attempt"):
            text += f" (attempt {entry['attempt'] + 1})"
        if entry.get("batch"):
            text += f" (in a batch of {entry['batch']})"
        return text
    details = ", ".join(
        f"{key}={value}"
        for key, value in entry.items()
        if key not in _SHOWN and not key.startswith("_") and value not in (None, "", [], {})
    )
    text = message + (f" ({details})" if details else "")
    return text if len(text) <= 120 else text[:119] + "…"


def render(trace_id: str, entries: Iterable[dict[str, Any]]) -> list[str]:
    """The path as text lines."""
    timed = sorted(
        ((*_when(entry), entry) for entry in entries), key=lambda item: (item[0], item[1])
    )
    origin = timed[0][0]
    last = max(end for _, end, _ in timed)
    processes = list(dict.fromkeys(entry.get("process", "?") for _, _, entry in timed))
    out = [
        f"trace {trace_id}: {len(timed)} log line(s) from {len(processes)} process(es) "
        f"({', '.join(processes)}), from {origin.isoformat(timespec='milliseconds')} "
        f"over {(last - origin).total_seconds() * 1000:.0f} ms",
        f"  {'start':>9}  {'took':>9}  {'process':<12} what",
    ]
    width = max(12, *(len(p) for p in processes))
    for start, _, entry in timed:
        took = entry.get("ms")
        took_text = f"{took:.1f} ms" if isinstance(took, (int, float)) else ""
        level = "" if entry.get("level") in ("INFO", None) else f"[{entry['level']}] "
        out.append(
            f"  {'+%.0f ms' % ((start - origin).total_seconds() * 1000):>9}  {took_text:>9}  "
            f"{entry.get('process', '?'):<{width}} {level}{describe(entry)}"
        )
    spent: dict[str, float] = {}
    counted: set[tuple[Any, Any, Any]] = set()
    for _, _, entry in timed:
        if isinstance(entry.get("ms"), (int, float)):
            batch_key = (
                (entry.get("process"), entry.get("_file"), entry.get("ts"))
                if entry.get("batch")
                else None
            )
            if (
                batch_key is not None
            ):  # one batch's time, counted once for its messages of this trace
                if batch_key in counted:
                    continue
                counted.add(batch_key)
            spent[entry.get("process", "?")] = (
                spent.get(entry.get("process", "?"), 0.0) + entry["ms"]
            )
    if spent:
        out.append(
            "time spent (the lines' ms, by process): "
            + ", ".join(f"{name} {ms:.1f} ms" for name, ms in spent.items())
        )
    return out


def main(args: argparse.Namespace) -> int:
    trace_id = tracing.trace_id_of(args.id)
    if trace_id is None:
        print(
            f"hcrm trace: {args.id!r} is neither a trace id (32 hex digits) nor a traceparent",
            file=sys.stderr,
        )
        return 2
    where = pathlib.Path(args.logs) if args.logs else DEFAULT_LOGS
    files = log_files(where)
    if not files:
        print(
            f"hcrm trace: no log files in {where} (give the services' log folder with --logs)",
            file=sys.stderr,
        )
        return 2
    entries = lines_of(trace_id, files)
    if not entries:
        print(
            f"hcrm trace: no log line names trace {trace_id} in {len(files)} file(s) of {where}",
            file=sys.stderr,
        )
        return 1
    print("\n".join(render(trace_id, entries)))
    return 0
