"""`hcrm dlq show` on a queue of many long messages: a few shown, each value cut, the rest
counted (issue 21: a masked 1,000-character name printed 1,000 asterisks)."""

import json
import subprocess
import sys

import pytest
from kombu import Connection

from shared.messaging import publish

pytestmark = pytest.mark.integration

QUEUE = "hospital.events.rejected"


def test_dlq_show_prints_ten_messages_with_long_values_cut(platform):
    with Connection(platform.amqp_uri) as connection:
        connection.channel().queue_declare(QUEUE, durable=True, auto_delete=False)
    for index in range(12):
        body = {
            "event_id": f"e{index}",
            "data": {"patient": {"name": "王" * 1000, "phone": "13800138000"}},
        }
        publish(
            platform.amqp_uri, "", QUEUE, body, headers={"x-hcrm-reason": "invalid: " + "x" * 300}
        )

    def show(*extra):
        return subprocess.run(
            [sys.executable, "-m", "shared.cli", "dlq", "show", QUEUE, *extra],
            env=platform.env("dlq"),
            capture_output=True,
            text=True,
            timeout=60,
        )

    shown = show()
    assert shown.returncode == 0, shown.stderr
    lines = [json.loads(line) for line in shown.stdout.splitlines()]
    assert len(lines) == 10 and "10 of 12 messages shown" in shown.stderr
    name = lines[0]["body"]["data"]["patient"]["name"]
    assert name.startswith("王*") and name.endswith("… (+920 characters)")  # masked, then cut
    assert (
        "13800138000" not in shown.stdout and "8000" in lines[0]["body"]["data"]["patient"]["phone"]
    )
    assert all(len(line) < 800 for line in shown.stdout.splitlines())
    assert "Eventlet" not in shown.stderr

    more = show("--limit", "12", "--width", "0")
    assert len(more.stdout.splitlines()) == 12 and "shown" not in more.stderr
    assert "*" * 999 in more.stdout  # whole values on request, still masked
    assert platform.queue_depth(QUEUE) == 12  # showing peeks: every message is still there
