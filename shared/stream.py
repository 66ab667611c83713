"""`hcrm stream`: a documented consumer of the analytics stream for BI and data warehouses.

  hcrm stream --offset first            every recorded event, oldest first
  hcrm stream --offset 1234             resume after a crash: from that offset on
  hcrm stream --offset 2026-03-01T00:00:00+08:00   from a point in time
  hcrm stream --offset next --follow    only new events, until interrupted

Each event is printed as one JSON line with its stream offset in `_offset`, so a consumer
stores the last offset it processed and resumes with `--offset <last + 1>`.

The stream itself is at least once: a service that died between the broker's confirm and
recording it as sent publishes that event again. This reader prints each `event_id` once per
run (the last MAX_REMEMBERED ids are remembered), so a replay from `first` is exactly once.
"""

import argparse
import collections
import datetime
import json
import sys
from typing import IO, Any

from kombu import Connection

from shared.topology import ANALYTICS_STREAM

MAX_REMEMBERED = 2_000_000  # about 200 MB of ids: more than a year of a large hospital


def parse_offset(text: str) -> str | int | datetime.datetime:
    if text in ("first", "last", "next"):
        return text
    if text.isdigit():
        return int(text)
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise SystemExit(
            "hcrm stream: --offset must be first, last, next, a number or an ISO "
            f"time, not {text!r}"
        ) from None
    if moment.tzinfo is None:
        raise SystemExit("hcrm stream: an --offset time needs its UTC offset")
    return moment


class Seen:
    """The event ids printed so far, the oldest forgotten past `capacity`."""

    def __init__(self, capacity: int = MAX_REMEMBERED) -> None:
        self.capacity = capacity
        self.ids: collections.OrderedDict[object, None] = collections.OrderedDict()
        self.duplicates = 0

    def first_time(self, event_id: object) -> bool:
        if event_id is None:
            return True
        if event_id in self.ids:
            self.duplicates += 1
            return False
        self.ids[event_id] = None
        if len(self.ids) > self.capacity:
            self.ids.popitem(last=False)
        return True


def read(
    amqp_uri: str,
    offset: str | int | datetime.datetime,
    limit: int | None = None,
    follow: bool = False,
    idle_s: float = 3.0,
    out: IO[str] = sys.stdout,
    seen: Seen | None = None,
) -> int:
    count = 0
    seen = seen if seen is not None else Seen()
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        channel.basic_qos(0, min(limit or 500, 500), False)
        done = []

        def on_message(message: Any) -> None:
            nonlocal count
            if limit and count >= limit:  # the rest of an already delivered chunk
                return
            body = json.loads(message.body)
            channel.basic_ack(message.delivery_tag)
            if not seen.first_time(body.get("event_id")):
                return
            body["_offset"] = (message.headers or {}).get("x-stream-offset")
            out.write(json.dumps(body, ensure_ascii=False) + "\n")
            count += 1
            if limit and count >= limit:
                done.append(True)

        channel.basic_consume(
            ANALYTICS_STREAM, callback=on_message, arguments={"x-stream-offset": offset}
        )
        while not done:
            try:
                connection.drain_events(timeout=idle_s)
            except TimeoutError:
                if not follow:
                    break
    out.flush()
    return count


def main(args: argparse.Namespace) -> int:
    from shared.config import BaseConfig, load_config

    config = load_config("stream", BaseConfig)
    seen = Seen()
    count = read(config["amqp_uri"], parse_offset(args.offset), args.limit, args.follow, seen=seen)
    print(f"{count} event(s), {seen.duplicates} repeated publish(es) skipped", file=sys.stderr)
    return 0
