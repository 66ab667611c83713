"""The HL7 listener killed with -9 mid-stream: a sending system streams N messages over one
MLLP connection, resending whatever got no ACK (as integration engines do); the listener is
killed and restarted on the same port. At the end intake holds exactly the N visits: AA only
after the message was durable means nothing is lost, the (MSH-3, MSH-4, MSH-10) key and the
event ids mean nothing is doubled, and the outbox relay publishes what the kill interrupted."""

import random
import threading
import time

import pytest
from pymongo import MongoClient

from services.hl7.client import MllpClient, NoAnswer
from tests.support import free_port, wait_until

pytestmark = pytest.mark.reliability


def a04(control_id, mrn, visit_id):
    return (
        f"MSH|^~\\&|HIS|XHYY|HCRM|HCRM|20260302093000||ADT^A04^ADT_A01|{control_id}|P|2.5\r"
        "EVN|A04|20260302093000||||20260302092500\r"
        f"PID|1||{mrn}^^^XHYY^MR||王^芳||19700101|F|||||138{int(mrn[1:]):08d}\r"
        f"PV1|1|O|0301^^^XHYY|||||||CARD|||||||||{visit_id}\r"
    ).encode()


def stream(count, seed):
    """`count` visits over count*3/4 patients (some come twice); expected visits per MRN."""
    rng = random.Random(seed)
    patients = count * 3 // 4
    messages, expected = [], {}
    for n in range(count):
        mrn = f"K{(n if n < patients else rng.randrange(patients)):06d}"
        messages.append(
            (f"KILL{seed}-{n:05d}", a04(f"KILL{seed}-{n:05d}", mrn, f"KV{seed}-{n:05d}"))
        )
        expected[mrn] = expected.get(mrn, 0) + 1
    return messages, expected


class Sender(threading.Thread):
    """One feed: each message is sent until it is answered; what got no ACK is sent again."""

    def __init__(self, port, messages):
        super().__init__(daemon=True)
        self.port, self.messages = port, messages
        self.acked, self.resent, self.codes = 0, 0, {}

    def run(self):
        client = MllpClient("127.0.0.1", self.port, timeout=5)
        for control_id, message in self.messages:
            while True:
                try:
                    ack = client.send(message)
                    break
                except (NoAnswer, OSError):  # killed mid-message, or not listening yet
                    self.resent += 1
                    time.sleep(0.2)
            self.codes[control_id] = ack.split(b"MSA|", 1)[1][:2].decode()
            self.acked += 1
        client.close()


def visit_counts(platform):
    db = MongoClient(
        platform.database_uri("intake"), serverSelectionTimeoutMS=3000, socketTimeoutMS=30000
    ).get_default_database()
    return {
        p["mrn"]: p["view"]["visit_count"]
        for p in db.patients.find(
            {"mrn": {"$regex": "^K"}, "event_count": {"$gt": 0}}, {"mrn": 1, "view": 1}
        )
    }


def test_the_listener_killed_with_minus_9_midstream_loses_and_doubles_nothing(platform):
    platform.start_service("intake")
    port = free_port()
    listener = platform.start_hl7(HL7_PORT=port)
    messages, expected = stream(400, seed=7)
    sender = Sender(port, messages)
    sender.start()
    wait_until(
        lambda: sender.acked >= len(messages) // 3,
        timeout=120,
        message="a third of the stream answered",
    )
    listener.kill()
    killed_at = sender.acked
    platform.start_hl7(HL7_PORT=port)
    sender.join(timeout=300)
    assert not sender.is_alive() and sender.acked == len(messages)
    assert killed_at < len(messages), "the kill came after the stream ended: nothing tested"
    assert set(sender.codes.values()) == {"AA"}
    # The relay publishes what the kill left between the insert and the publish (its claim
    # runs out after 30 s), so the wait allows for it.
    wait_until(
        lambda: visit_counts(platform) == expected,
        timeout=120,
        interval=0.5,
        message=lambda: (
            f"exact visit counts for every patient (have {sum(visit_counts(platform).values())} "
            f"of {sum(expected.values())} visits; sender resent {sender.resent})"
        ),
    )
    intake = MongoClient(platform.database_uri("intake")).get_default_database()
    assert intake.events.count_documents({"source": "hl7"}) == len(messages)
    hl7 = MongoClient(platform.database_uri("hl7")).get_default_database()
    assert hl7.messages.count_documents({"control_id": {"$regex": "^KILL"}}) == len(messages)
    wait_until(
        lambda: platform.queue_depth("intake.inbound") == 0, message="an empty inbound queue"
    )
    assert platform.queue_depth("hospital.events.rejected") == 0
    assert platform.queue_depth("intake.dlq") == 0


def test_a_crash_between_the_insert_and_the_publish_is_relayed_and_the_resend_answered_once(
    platform,
):
    """HCRM_FAILPOINT kills the listener right after the first message's insert, before its
    event is published and (the outbox's sender runs first) before its ACK is written. The
    sender resends it to the restarted listener: a duplicate, answered with the stored ACK;
    the relay publishes the stored event once its writer's claim runs out."""
    platform.start_service("intake")
    port = free_port()
    crashing = platform.start_hl7(HL7_PORT=port, HCRM_FAILPOINT="outbox.before_publish")
    messages, expected = stream(5, seed=8)
    sender = Sender(port, messages)
    sender.start()
    wait_until(
        lambda: not crashing.alive(), timeout=60, message="the listener killed by its failpoint"
    )
    restarted = platform.start_hl7(HL7_PORT=port)
    sender.join(timeout=120)
    assert sender.acked == len(messages) and set(sender.codes.values()) == {"AA"}
    wait_until(
        lambda: visit_counts(platform) == expected,
        timeout=120,
        interval=0.5,
        message="every visit at intake, the interrupted one relayed",
    )
    hl7 = MongoClient(platform.database_uri("hl7")).get_default_database()
    assert hl7.messages.count_documents({"control_id": {"$regex": "^KILL8-"}}) == len(messages)
    first = messages[0][0]
    wait_until(
        lambda: hl7.messages.find_one({"control_id": first, "outbox_state": "published"}),
        timeout=60,
        message="the interrupted message's outbox published",
    )
    if sender.resent:  # the ACK had not been written: the resend was a duplicate
        assert '"HL7 duplicate answered with its first ACK"' in restarted.output()
