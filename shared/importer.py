"""`hcrm import FILE…`: load a hospital's history through the same door as live events.

A hospital joining the platform brings years of history. This command reads it from files and
sends every event exactly the way a live system would, so the same validation, deduplication
and services produce the figures (nothing is written into a service's database from outside):

  *.jsonl / *.json   JSON lines, one contract event per line (docs/EVENTS.md), published to
                     `hospital.events` with publisher confirms, in batches
  *.hl7 / *.txt      HL7 v2 messages one after another (as `hcrm hl7 send` reads them), sent to
                     the HL7 listener over MLLP, each ACK awaited (docs/HL7.md)

What it promises:
  - **Checked first.** A JSON line is validated before it is sent; a bad one is written, with
    its line number and the reasons per field, to the rejections file and never sent. An HL7
    message answered AE or AR is written there with the listener's reason.
  - **Backpressure.** Before each batch it reads the depth of intake's queue and waits while
    more than `--max-queue` events are waiting, so an import never floods the broker's memory
    and live traffic keeps flowing beside it.
  - **Resumable.** After each confirmed batch the position is saved in a state file next to
    the input (`FILE.hcrm-import.json`). Interrupted (Ctrl-C, a crash, the machine stops), the
    same command resumes after the last confirmed batch; at most the one batch in flight is
    sent again, which intake recognises as a duplicate (same source and event_id): nothing is
    counted twice. A file that changed since is refused (`--restart` starts over).
  - **A summary** at the end: sent, duplicates within the files (the same source and event_id
    twice), rejected, and where the reasons are.
  - **Warm figures.** When everything is sent it waits for the services to drain their queues
    and asks analytics for each year's summary, so the affected days' figures are computed and
    the first manager to look does not wait.

The progress bar is tqdm's (rate and time left).
"""

import argparse
import datetime
import hashlib
import json
import os
import pathlib
import sys
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import IO, TYPE_CHECKING, Any

from kombu import Connection
from tqdm import tqdm

from shared.config import BaseConfig, load_config
from shared.events import EventInvalid, load_event
from shared.messaging import ConfirmedPublisher
from shared.topology import HOSPITAL_EXCHANGE

if TYPE_CHECKING:  # at run time the HL7 client is imported only where an HL7 file is sent
    from services.hl7.client import MllpClient

BATCH = 200
STATE_SUFFIX = ".hcrm-import.json"
HEAD_BYTES = 65536
QUEUES_TO_DRAIN = (
    "intake.inbound",
    "followup.inbound",
    "appointments.inbound",
    "analytics.inbound",
)


class ImportRefused(Exception):
    """The import cannot start or go on (the message says why and what to do)."""


# -- reading ---------------------------------------------------------------------------------
def kind_of(path: str | pathlib.Path) -> str:
    suffix = pathlib.Path(path).suffix.lower()
    if suffix in (".jsonl", ".json", ".ndjson"):
        return "jsonl"
    if suffix in (".hl7", ".txt", ".er7"):
        return "hl7"
    raise ImportRefused(
        f"{path}: unknown kind of file (use .jsonl for events, .hl7 for HL7 messages)"
    )


def fingerprint(path: str | pathlib.Path) -> dict[str, Any]:
    """What identifies a file's content for resuming: its size and the hash of its head."""
    with open(path, "rb") as data:
        head = data.read(HEAD_BYTES)
    return {"size": os.path.getsize(path), "head_sha256": hashlib.sha256(head).hexdigest()}


def json_lines(path: str | pathlib.Path, offset: int) -> Iterator[tuple[int, Any]]:
    """(byte offset after the line, parsed value, ValueError or None for a blank line) from
    `offset` on."""
    with open(path, "rb") as data:
        data.seek(offset)
        for raw in iter(data.readline, b""):
            offset += len(raw)
            text = raw.strip()
            if not text:
                yield offset, None
                continue
            try:
                yield offset, json.loads(text)
            except ValueError as exc:
                yield offset, ValueError(f"not JSON: {exc}")


def check_event(value: Any) -> tuple[Any, dict[str, list[str]] | None]:
    """(event, None) for a valid contract event, (None, {field: [messages]}) otherwise."""
    if isinstance(value, Exception):
        return None, {"_line": [str(value)]}
    try:
        load_event(value)
    except EventInvalid as exc:
        return None, exc.errors
    return value, None


# -- state -----------------------------------------------------------------------------------
class State:
    """Where an import of one file stands; saved after every confirmed batch."""

    def __init__(self, path: str | pathlib.Path, restart: bool = False) -> None:
        self.input = pathlib.Path(path)
        self.path = self.input.with_name(self.input.name + STATE_SUFFIX)
        self.print = fingerprint(self.input)
        self.data = {
            "file": self.input.name,
            **self.print,
            "position": 0,
            "line": 0,
            "sent": 0,
            "duplicates": 0,
            "rejected": 0,
            "done": False,
        }
        if self.path.exists() and not restart:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
            if {k: saved.get(k) for k in self.print} != self.print:
                raise ImportRefused(
                    f"{self.input} changed since its import began ({self.path}): "
                    "run again with --restart to import it from the start"
                )
            self.data = saved

    def __getitem__(self, key: str) -> Any:
        return self.data[key]

    def save(self, **changes: Any) -> None:
        self.data.update(changes)
        temporary = self.path.with_name(self.path.name + ".tmp")
        temporary.write_text(json.dumps(self.data, indent=1), encoding="utf-8")
        os.replace(temporary, self.path)  # atomic: a crash leaves the old state or the new


# -- sending ---------------------------------------------------------------------------------
class Broker:
    """Publishing with confirms, and reading queue depths for backpressure."""

    def __init__(self, amqp_uri: str, max_queue: int) -> None:
        self.amqp_uri, self.max_queue = amqp_uri, max_queue
        self.publisher = ConfirmedPublisher(amqp_uri)

    def depth(self, queue: str, consumed_only: bool = False) -> int:
        """Messages waiting in `queue` (0 for a queue this installation does not have; with
        `consumed_only`, 0 for a queue no service consumes: nothing would drain it)."""
        with Connection(self.amqp_uri, connect_timeout=5) as connection:
            try:
                _, count, consumers = connection.channel().queue_declare(queue, passive=True)
            except Exception:
                return 0
            return 0 if consumed_only and not consumers else count

    def wait_for_room(self, bar: "tqdm[Any]") -> None:
        while (waiting := self.depth("intake.inbound")) > self.max_queue:
            bar.set_postfix_str(f"waiting: {waiting} events queued")
            time.sleep(0.5)  # the services drain it; the import simply waits its turn
        bar.set_postfix_str("")

    def publish(self, events: Iterable[Mapping[str, Any]]) -> None:
        self.publisher.publish_all(
            [(HOSPITAL_EXCHANGE, event["event_type"], event, None) for event in events]
        )

    def drained(self) -> bool:
        return all(self.depth(queue, consumed_only=True) == 0 for queue in QUEUES_TO_DRAIN)


def _reject(rejections: IO[str], where: str, reasons: Mapping[str, list[str]], value: Any) -> None:
    record: dict[str, Any] = {"where": where, "reasons": reasons}
    if not isinstance(value, Exception) and value is not None:
        record["event_id"] = value.get("event_id") if isinstance(value, dict) else None
    rejections.write(json.dumps(record, ensure_ascii=False) + "\n")
    rejections.flush()


def _counts(state: State) -> dict[str, int]:
    """The tallies a resumed import goes on from."""
    return {k: state[k] for k in ("sent", "duplicates", "rejected")}


def _progress(path: pathlib.Path, total: int, done: int, unit: str, out: IO[str]) -> "tqdm[Any]":
    """One file's progress bar: one line, redrawn at most twice a second."""
    return tqdm(
        total=total,
        initial=done,
        unit=unit,
        desc=path.name,
        file=out,
        dynamic_ncols=True,
        mininterval=0.5,
    )


def import_jsonl(
    path: pathlib.Path,
    broker: Broker,
    state: State,
    rejections: IO[str],
    seen: set[tuple[Any, Any]],
    days: set[str],
    out: IO[str] = sys.stderr,
) -> dict[str, int]:
    """Send one file of JSON lines from where its state says."""
    with open(path, "rb") as lines:
        total = sum(1 for _ in lines)
    line = state["line"]
    counts = _counts(state)
    batch, position = [], state["position"]
    with _progress(path, total, line, "event", out) as bar:
        for offset, value in json_lines(path, state["position"]):
            line += 1
            bar.update(1)
            if value is None:
                position = offset
                continue
            event, errors = check_event(value)
            if errors:
                counts["rejected"] += 1
                _reject(rejections, f"{path.name}:{line}", errors, value)
            else:
                key = (event["source"], event["event_id"])
                if key in seen:
                    counts["duplicates"] += 1
                else:
                    seen.add(key)
                    batch.append(event)
                    days.add(str(event["occurred_at"])[:10])
            position = offset
            if len(batch) >= BATCH:
                broker.wait_for_room(bar)
                broker.publish(batch)
                counts["sent"] += len(batch)
                batch = []
                state.save(position=position, line=line, **counts)
        if batch:
            broker.wait_for_room(bar)
            broker.publish(batch)
            counts["sent"] += len(batch)
        state.save(position=position, line=line, done=True, **counts)
    return counts


def import_hl7(
    path: pathlib.Path,
    client: "MllpClient",
    state: State,
    rejections: IO[str],
    days: set[str],
    out: IO[str] = sys.stderr,
) -> dict[str, int]:
    """Send one file of HL7 messages over MLLP from where its state says (by message index)."""
    from services.hl7.client import ack_summary, header_fields, split_messages

    messages = split_messages(path.read_bytes())
    counts = _counts(state)
    with _progress(path, len(messages), state["position"], "msg", out) as bar:
        for index in range(state["position"], len(messages)):
            ack = client.send(messages[index])  # NoAnswer propagates: resume retries this one
            code, text = ack_summary(ack)
            if code == "AA":
                counts["sent"] += 1
                days.add(_message_day(messages[index]))
            else:
                counts["rejected"] += 1
                control_id, trigger, _ = header_fields(messages[index])
                _reject(
                    rejections,
                    f"{path.name}: message {index + 1} ({trigger} {control_id})",
                    {"ack": [f"{code}: {text}"]},
                    None,
                )
            state.save(position=index + 1, line=index + 1, **counts)
            bar.update(1)
        state.save(done=True, **counts)
    return counts


def _message_day(message: bytes) -> str:
    """YYYY-MM-DD of MSH-7 (when the message was made): which year's figures to warm."""
    msh = message.split(b"\r", 1)[0]
    fields = msh.split(msh[3:4] or b"|")
    stamp = fields[6].decode("ascii", "replace") if len(fields) > 6 else ""
    return f"{stamp[:4]}-{stamp[4:6]}-{stamp[6:8]}" if len(stamp) >= 8 else ""


# -- warming ---------------------------------------------------------------------------------
def warm_figures(
    amqp_uri: str,
    broker: Broker,
    days: Iterable[str],
    timeout_s: float = 3600,
    out: IO[str] = sys.stderr,
) -> list[str]:
    """Wait for the services to drain, then compute each imported year's summary once."""
    from nameko.standalone.rpc import ClusterRpcProxy

    deadline = time.monotonic() + timeout_s
    quiet = 0
    print("waiting for the services to take in what was sent…", file=out)
    while quiet < 3 and time.monotonic() < deadline:  # three empty looks in a row: drained
        quiet = quiet + 1 if broker.drained() else 0
        time.sleep(1)
    years = sorted({day[:4] for day in days if len(day) >= 4})
    with ClusterRpcProxy({"AMQP_URI": amqp_uri, "serializer": "json"}, timeout=600) as rpc:
        for year in years:
            started = time.monotonic()
            rpc.analytics.summary(date_from=f"{year}-01-01", date_to=f"{year}-12-31")
            print(f"figures of {year} computed in {time.monotonic() - started:.1f} s", file=out)
    return years


def main(args: argparse.Namespace, out: IO[str] = sys.stdout, err: IO[str] = sys.stderr) -> int:
    config = load_config("import", BaseConfig)
    paths = [pathlib.Path(p) for p in args.files]
    try:
        for path in paths:
            if not path.is_file():
                raise ImportRefused(f"{path}: no such file")
            kind_of(path)
        rejections_path = pathlib.Path(
            args.rejections or f"hcrm-import-rejected-{datetime.date.today()}.jsonl"
        )
        broker = Broker(config["amqp_uri"], args.max_queue)
        seen: set[tuple[Any, Any]] = set()
        days: set[str] = set()
        totals = {"sent": 0, "duplicates": 0, "rejected": 0}
        with open(rejections_path, "a", encoding="utf-8") as rejections:
            for path in paths:
                state = State(path, restart=args.restart)
                if state["done"]:
                    print(
                        f"{path}: imported already ({state['sent']} sent); "
                        "--restart imports it again",
                        file=out,
                    )
                    counts = {k: state[k] for k in totals}
                elif kind_of(path) == "jsonl":
                    if state["position"]:  # the ids sent before an interruption still count as seen
                        for offset, value in json_lines(path, 0):
                            if offset > state["position"]:
                                break
                            if (
                                isinstance(value, dict)
                                and "source" in value
                                and "event_id" in value
                            ):
                                seen.add((value["source"], value["event_id"]))
                    counts = import_jsonl(path, broker, state, rejections, seen, days, out=err)
                else:
                    from services.hl7.client import MllpClient

                    with MllpClient(args.hl7_host, args.hl7_port, args.timeout) as client:
                        counts = import_hl7(path, client, state, rejections, days, out=err)
                for key in totals:
                    totals[key] += counts[key]
        print(
            f"sent {totals['sent']}, duplicates in the files {totals['duplicates']}, "
            f"rejected {totals['rejected']}"
            + (f" (reasons in {rejections_path})" if totals["rejected"] else ""),
            file=out,
        )
        if args.warm and days:
            warm_figures(config["amqp_uri"], broker, days, out=out)
    except ImportRefused as exc:
        print(f"hcrm import: {exc}", file=err)
        return 2
    except KeyboardInterrupt:
        print(
            "\ninterrupted: run the same command again to resume after the last confirmed batch",
            file=err,
        )
        return 130
    return 1 if totals["rejected"] else 0
