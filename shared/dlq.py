"""`hcrm dlq list|show|replay`: inspect and replay dead-lettered and rejected messages.

  hcrm dlq list                       every dead-letter / rejected queue and its depth
  hcrm dlq show QUEUE [--limit N]     the first N (10) messages, with reason, attempts and a
                  [--width W]         masked body, text values cut at W (80) characters
  hcrm dlq replay QUEUE [--limit N]   move up to N (100) messages back to the queue they failed in
                                      (rejected inbound messages: back to hospital.events)

Showing peeks (the messages are returned to the queue). Replaying publishes each message
with a confirm, then acks it, so a crash replays at worst twice, never loses one; the
consumers are idempotent. A consumer sets a message aside the same way (copy, confirm, ack
the original), so a consumer killed in between sets it aside twice: two identical copies
under one message id (shared.messaging.copy_id); `show` marks the second `repeat_of` the
first, `replay` sends it once. Bodies are shown with phone numbers and names masked unless
--unmasked is given (an operator's deliberate choice). A queue may hold thousands of
messages and a field thousands of characters (a malformed name masks into as many
asterisks): `show` prints a few, each value cut, and says how many more there are.
"""

import argparse
import json
import sys
from typing import Any

from kombu import Connection

from shared import topology
from shared.log import mask, mask_text
from shared.messaging import ATTEMPT_HEADER, HEADER_PREFIX, ROUTING_KEY_HEADER, publish

SHOW_LIMIT, REPLAY_LIMIT, SHOW_WIDTH = 10, 100, 80


def shorten(value: Any, width: int) -> Any:
    """`value` with every string longer than `width` cut there and marked with how much was
    left out, recursing through dicts and lists; width 0 leaves it whole."""
    if isinstance(value, dict):
        return {key: shorten(item, width) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [shorten(item, width) for item in value]
    if isinstance(value, bytes):
        value = value.decode("utf-8", "replace")
    if isinstance(value, str) and width and len(value) > width:
        return f"{value[:width]}… (+{len(value) - width} characters)"
    return value


def queue_depth(amqp_uri: str, queue: str) -> int:
    with Connection(amqp_uri) as connection:
        return connection.channel().queue_declare(queue, passive=True).message_count


def dead_letter_queues() -> list[str]:
    return [topology.REJECTED_QUEUE] + [
        topology.dead_letter_queue(s)
        for s in topology.available_services()
        if topology.subscriptions_of(s)
    ]  # hl7 consumes no queue


def depths(amqp_uri: str) -> dict[str, int | None]:
    out = {}
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        for queue in dead_letter_queues():
            try:
                out[queue] = channel.queue_declare(queue, passive=True).message_count
            except Exception:
                out[queue] = None  # not declared yet: `hcrm init`
                channel = connection.channel()
    return out


def peek(amqp_uri: str, queue: str, limit: int) -> list[dict[str, Any]]:
    """Up to `limit` messages, returned to the queue afterwards."""
    seen = []
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        held = []
        for _ in range(limit):
            message = channel.basic_get(queue, no_ack=False)
            if message is None:
                break
            held.append(message)
            seen.append(_describe(message))
        for message in held:
            channel.basic_reject(message.delivery_tag, requeue=True)
    return seen


def _describe(message: Any) -> dict[str, Any]:
    headers = dict(message.headers or {})
    body = (
        message.body if isinstance(message.body, str) else message.body.decode("utf-8", "replace")
    )
    return {
        "message_id": message.properties.get("message_id"),
        "headers": {k: v for k, v in headers.items() if k.startswith(HEADER_PREFIX)},
        "routing_key": headers.get(ROUTING_KEY_HEADER),
        "body": body,
    }


def replay(amqp_uri: str, queue: str, limit: int) -> int:
    """Republish up to `limit` messages where they came from; returns how many were taken off
    the queue. A repeated copy of one already moved (the same copy id,
    shared.messaging.copy_id: set aside again after a crash) is taken off without being sent
    a second time."""
    moved, sent = 0, set()
    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        for _ in range(limit):
            message = channel.basic_get(queue, no_ack=False)
            if message is None:
                break
            copy = message.properties.get("message_id")
            if copy and copy in sent:
                channel.basic_ack(message.delivery_tag)
                moved += 1
                continue
            headers = dict(message.headers or {})
            # Moved by our consumer: it names the queue; dead-lettered by the broker itself
            # (a quorum queue's delivery limit): the first x-death entry names it.
            deaths = headers.get("x-death") or [{}]
            source_queue = headers.get("x-hcrm-source-queue") or (
                deaths[0].get("queue") if isinstance(deaths[0], dict) else None
            )
            routing_key = headers.get(ROUTING_KEY_HEADER) or ""
            clean = {
                k: v
                for k, v in headers.items()
                if not k.startswith(HEADER_PREFIX)
                and not k.startswith("x-death")
                and not k.startswith("x-first-death")
            }
            clean[ATTEMPT_HEADER] = 0
            clean["x-hcrm-replayed-from"] = queue
            clean[ROUTING_KEY_HEADER] = routing_key
            if queue == topology.REJECTED_QUEUE or not source_queue:
                exchange, key = topology.HOSPITAL_EXCHANGE, routing_key
            else:
                exchange, key = "", source_queue
            publish(
                amqp_uri,
                exchange,
                key,
                message.body,
                headers=clean,
                content_type=message.content_type or "application/json",
                content_encoding=message.content_encoding or "utf-8",
            )
            channel.basic_ack(message.delivery_tag)
            moved += 1
            if copy:
                sent.add(copy)
    return moved


def main(args: argparse.Namespace) -> int:
    from shared.config import BaseConfig, load_config

    config = load_config("dlq", BaseConfig)
    uri = config["amqp_uri"]
    if args.action == "list":
        for queue, depth in depths(uri).items():
            print(f"{queue:<32} {'not declared' if depth is None else depth}")
    elif args.action == "show":
        limit = SHOW_LIMIT if args.limit is None else args.limit
        width = SHOW_WIDTH if getattr(args, "width", None) is None else args.width
        shown = peek(uri, args.queue, limit)
        first_of: dict[str, int] = {}
        for index, entry in enumerate(shown):
            copy = entry.get("message_id")
            if copy and copy in first_of:  # set aside again after a crash: the same message
                entry["repeat_of"] = first_of[copy]
            elif copy:
                first_of[copy] = index
            body = entry["body"]
            try:
                body = json.loads(body)
                body = body if args.unmasked else mask(body)
            except ValueError:
                body = body if args.unmasked else mask_text(body)
            print(
                json.dumps(
                    shorten({"index": index, **entry, "body": body}, width),
                    ensure_ascii=False,
                    default=str,
                )
            )
        total = queue_depth(uri, args.queue)
        if total > len(shown):
            print(
                f"{len(shown)} of {total} messages shown; --limit N shows more, --width 0 "
                f"shows whole values",
                file=sys.stderr,
            )
    elif args.action == "replay":
        limit = REPLAY_LIMIT if args.limit is None else args.limit
        print(f"replayed {replay(uri, args.queue, limit)} message(s) from {args.queue}")
    return 0
