"""The HL7 listener through real sockets (MLLP) and the gateway, with intake, the real broker
and an NX-27017 store: what docs/HL7.md promises a sending system."""

import pathlib
import socket
import subprocess
import threading
import time
import uuid

import pytest
from pymongo import MongoClient

from services.hl7.client import MllpClient, split_messages
from services.hl7.mllp import MESSAGE, MllpDecoder, encode
from tests.support import PYTHON, REPO, Platform, wait_until

pytestmark = pytest.mark.integration

SAMPLES = pathlib.Path(__file__).resolve().parents[1] / "hl7_samples"


@pytest.fixture(scope="module")
def installation(store_server, log_dir):
    """One installation for the module (intake, the listener, the gateway): each test uses
    its own control ids and MRNs."""
    platform = Platform(store_server, log_dir)
    platform.start_service("intake", wait=False)
    platform.start_hl7()
    platform.start_gateway()
    platform.intake_db = MongoClient(platform.database_uri("intake")).get_default_database()
    platform.hl7_db = MongoClient(platform.database_uri("hl7")).get_default_database()
    wait_until(
        lambda: platform.http("GET", "/readyz")[0] == 200,
        timeout=60,
        message="intake and hl7 ready",
    )
    yield platform
    platform.close()


def unique(prefix):
    return f"{prefix}{uuid.uuid4().hex[:8].upper()}"


def a04(
    control_id,
    mrn,
    visit_id=None,
    patient_class="O",
    name="陈^秀兰",
    charset="UNICODE UTF-8",
    message_type="ADT^A04^ADT_A01",
    version="2.5",
    extra="",
):
    return (
        f"MSH|^~\\&|HIS|XHYY|HCRM|HCRM|20260302093000||{message_type}|{control_id}|P|{version}"
        f"||||||{charset}\r"
        "EVN|A04|20260302093000||||20260302092500\r"
        f"PID|1||{mrn}^^^XHYY^MR||{name}||19580312|F|||^^北京市^北京市^^CHN^H^^东城区||13900001111\r"
        f"PV1|1|{patient_class}|0301^^^XHYY||||D017^刘^洋|||CARD|||||||||"
        f"{visit_id or 'V' + control_id}\r"
        f"{extra}"
    ).encode("gb18030" if "18030" in charset else "utf-8")


def msa(ack):
    """(MSA-1, MSA-2) of an ACK."""
    text = ack.decode("utf-8", "replace")
    fields = next(s for s in text.split("\r") if s.startswith("MSA")).split("|")
    return fields[1], fields[2]


def patient(platform, mrn):
    return platform.intake_db.patients.find_one({"mrn": mrn, "event_count": {"$gt": 0}})


def send(platform, message, timeout=15):
    with MllpClient("127.0.0.1", platform.hl7_port, timeout) as client:
        return client.send(message)


def read_acks(sock, count, timeout=15):
    decoder, acks = MllpDecoder(), []
    sock.settimeout(timeout)
    while len(acks) < count:
        data = sock.recv(65536)
        if not data:
            break
        acks += [f.payload for f in decoder.feed(data) if f.kind == MESSAGE]
    return acks


def test_an_a04_reaches_intake_and_the_patient_appears(installation):
    control_id, mrn = unique("C"), unique("M")
    ack = send(installation, a04(control_id, mrn))
    assert msa(ack) == ("AA", control_id)
    assert ack.startswith(b"MSH|^~\\&|HCRM|HCRM|HIS|XHYY|")  # sender and receiver swapped
    record = wait_until(
        lambda: patient(installation, mrn), timeout=30, message=f"patient {mrn} at intake"
    )
    assert record["view"]["name"] == "陈秀兰" and record["view"]["visit_count"] == 1
    stored = installation.hl7_db.messages.find_one({"control_id": control_id})
    assert stored["raw"] == a04(control_id, mrn) and stored["status"] == "accepted"


def test_a_duplicate_is_answered_with_the_first_ack_and_nothing_doubles(installation):
    control_id, mrn = unique("C"), unique("M")
    first = send(installation, a04(control_id, mrn))
    again = send(installation, a04(control_id, mrn, visit_id="OTHER"))  # same MSH-3/4/10
    assert again == first
    wait_until(lambda: patient(installation, mrn), timeout=30, message=f"patient {mrn}")
    # A third, unrelated message after it: once it is at intake, the duplicate had its chance.
    marker = unique("M")
    send(installation, a04(unique("C"), marker))
    wait_until(lambda: patient(installation, marker), timeout=30, message="the marker patient")
    assert installation.intake_db.events.count_documents({"data.patient.mrn": mrn}) == 1
    assert installation.hl7_db.messages.count_documents({"control_id": control_id}) == 1


def test_split_frames_several_frames_in_one_write_and_bytes_outside_frames(installation):
    ids = [unique("C") for _ in range(4)]
    with socket.create_connection(("127.0.0.1", installation.hl7_port), timeout=15) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        frame = encode(a04(ids[0], unique("M")))
        for at in range(0, len(frame), 37):  # one frame in many writes
            sock.sendall(frame[at : at + 37])
            time.sleep(0.002)
        assert [msa(a) for a in read_acks(sock, 1)] == [("AA", ids[0])]
        # Two frames in one write, with junk before, between and after them.
        sock.sendall(
            b"junk before"
            + encode(a04(ids[1], unique("M")))
            + b"\r\nnoise"
            + encode(a04(ids[2], unique("M")))
            + b"trailing junk"
        )
        assert [msa(a) for a in read_acks(sock, 2)] == [("AA", ids[1]), ("AA", ids[2])]
        sock.sendall(encode(a04(ids[3], unique("M"))))  # the connection is still usable
        assert [msa(a) for a in read_acks(sock, 1)] == [("AA", ids[3])]
    hl7_log = next(p for p in installation.processes if p.name == "hl7").output()
    assert "MLLP bytes outside a frame dropped" in hl7_log


def test_an_oversized_frame_is_answered_ar_and_the_connection_stays_usable(installation):
    control_id, after = unique("C"), unique("C")
    big = a04(control_id, unique("M"), extra="NTE|1||" + "x" * (1300 * 1024) + "\r")
    with socket.create_connection(("127.0.0.1", installation.hl7_port), timeout=30) as sock:
        sock.sendall(encode(big))
        [ack] = read_acks(sock, 1)
        assert msa(ack) == ("AR", control_id) and b"limit" in ack
        sock.sendall(encode(a04(after, unique("M"))))
        assert [msa(a) for a in read_acks(sock, 1)] == [("AA", after)]
    stored = installation.hl7_db.messages.find_one({"control_id": control_id})
    assert (
        stored["raw_truncated"]
        and stored["raw_size"] > 1024 * 1024
        and len(stored["raw"]) <= 64 * 1024
    )
    # No readable header at all: dropped, the connection closed cleanly, the listener fine.
    with socket.create_connection(("127.0.0.1", installation.hl7_port), timeout=30) as sock:
        sock.sendall(encode(b"\x00" * (1100 * 1024)))
        sock.settimeout(30)
        assert sock.recv(100) == b""
    assert msa(send(installation, a04(unique("C"), unique("M"))))[0] == "AA"


def test_a_client_that_vanishes_mid_frame_does_not_disturb_the_listener(installation):
    sock = socket.create_connection(("127.0.0.1", installation.hl7_port), timeout=15)
    sock.sendall(b"\x0b" + a04(unique("C"), unique("M"))[:60])
    sock.close()
    # Half-open too: a peer that stops talking holds only its own connection.
    silent = socket.create_connection(("127.0.0.1", installation.hl7_port), timeout=15)
    silent.sendall(b"\x0b" + b"MSH|^~\\&|HALF")
    control_id = unique("C")
    assert msa(send(installation, a04(control_id, unique("M"))))[0] == "AA"
    silent.close()
    hl7 = next(p for p in installation.processes if p.name == "hl7")
    wait_until(
        lambda: "MLLP peer closed mid-frame" in hl7.output(),
        timeout=10,
        message="the log line of the unfinished frame",
    )
    assert hl7.alive()


def test_content_errors_are_ae_and_other_types_ar_with_nothing_published(installation):
    no_mrn = unique("C")
    ack = send(installation, a04(no_mrn, ""))
    code, _ = msa(ack)
    assert code == "AE" and b"PID-3" in ack and b"\rERR|" in ack
    oru, old = unique("C"), unique("C")
    assert msa(send(installation, a04(oru, unique("M"), message_type="ORU^R01")))[0] == "AR"
    assert msa(send(installation, a04(old, unique("M"), version="2.1")))[0] == "AR"
    garbage = send(installation, b"GET / HTTP/1.1\r\nHost: hl7\r\n\r\n")
    assert msa(garbage)[0] == "AR"
    for cid, status in ((no_mrn, "error"), (oru, "rejected"), (old, "rejected")):
        stored = installation.hl7_db.messages.find_one({"control_id": cid})
        assert stored["status"] == status and stored["reason"] and "outbox_queue" not in stored


def test_a_gb18030_message_is_read_and_answered_in_gb18030(installation):
    raw = (SAMPLES / "cn-a01-gb18030.hl7").read_bytes()
    control_id, mrn = unique("G"), unique("M")
    raw = raw.replace(b"|CN0002|", f"|{control_id}|".encode()).replace(
        b"M2001^", f"{mrn}^".encode()
    )
    ack = send(installation, raw)
    assert msa(ack) == ("AA", control_id)
    assert ack.decode("gb18030").split("\r")[0].endswith("GB 18030-2000")
    record = wait_until(
        lambda: patient(installation, mrn), timeout=30, message="the GB18030 patient"
    )
    assert record["view"]["name"] == "欧阳娜娜"


def test_twenty_connections_at_once(installation):
    per_connection, results, errors = 5, {}, []

    def sender(index):
        try:
            with MllpClient("127.0.0.1", installation.hl7_port, timeout=60) as client:
                for n in range(per_connection):
                    mrn = f"P{index:02d}{n}{uuid.uuid4().hex[:6]}"
                    results[mrn] = msa(client.send(a04(unique("C"), mrn)))[0]
        except Exception as exc:  # reported below
            errors.append(repr(exc))

    threads = [threading.Thread(target=sender, args=(i,)) for i in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not errors and len(results) == 20 * per_connection
    assert set(results.values()) == {"AA"}
    wait_until(
        lambda: all(patient(installation, mrn) for mrn in results),
        timeout=60,
        message="every patient of the 20 connections at intake",
    )


def test_post_hl7_through_the_gateway(installation):
    admin = installation.token()
    status, _ = installation.http(
        "POST",
        "/api/v1/users",
        {"username": "his-engine", "password": "engine-password-1", "role": "integration"},
        token=admin,
    )
    assert status in (201, 409)
    token = installation.token("his-engine", "engine-password-1")
    control_id, mrn = unique("H"), unique("M")
    raw = a04(control_id, mrn, charset="GB 18030-2000")
    status, ack = post(installation, raw, token)
    assert status == 200 and ack["content_type"] == "x-application/hl7-v2+er7; charset=gb18030"
    assert msa(ack["body"]) == ("AA", control_id)
    assert post(installation, raw, token)[1]["body"] == ack["body"]  # a duplicate: the first ACK
    wait_until(lambda: patient(installation, mrn), timeout=30, message="the patient sent over HTTP")
    status, bad = post(installation, a04(unique("H"), ""), token)
    assert status == 200 and msa(bad["body"])[0] == "AE"
    status, body = installation.http("POST", "/api/v1/hl7", raw=b'{"x": 1}', token=token)
    assert status == 415 and body["error"]["code"] == "unsupported_media_type"
    audit = installation.http("GET", f"/api/v1/audit?patient_id=mrn:{mrn}", token=admin)[1]["items"]
    assert [(a["route"], a["status"], a["user"]) for a in audit][:1] == [
        ("/api/v1/hl7", 200, "his-engine")
    ]
    # The admin page's view: the message, no text of it, counts by trigger and ACK code.
    status, page = installation.http("GET", "/api/v1/hl7/messages?limit=500", token=admin)
    assert status == 200
    mine = [item for item in page["items"] if item["control_id"] == control_id]
    assert [(m["transport"], m["ack_code"], m["trigger"]) for m in mine] == [("http", "AA", "A04")]
    assert "raw" not in mine[0] and "陈" not in str(page["items"])
    assert page["counts"]["by_ack_code"]["AA"] >= 1 and page["counts"]["by_trigger"]["ADT^A04"] >= 1
    assert installation.http("GET", "/api/v1/hl7/messages", token=token)[0] == 403


def post(platform, raw, token):
    import urllib.error
    import urllib.request

    request = urllib.request.Request(
        platform.gateway_url + "/api/v1/hl7",
        data=raw,
        method="POST",
        headers={"Content-Type": "x-application/hl7-v2+er7", "Authorization": f"Bearer {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, {
                "body": response.read(),
                "content_type": response.headers["Content-Type"],
            }
    except urllib.error.HTTPError as exc:
        return exc.code, {"body": exc.read(), "content_type": exc.headers["Content-Type"]}


def test_hcrm_hl7_send_and_replay(installation, tmp_path):
    ids, mrn = [unique("F") for _ in range(3)], unique("M")
    # Three messages in one file: \n line ends, no blank line between the first two.
    text = b"".join(
        a04(cid, mrn if n == 0 else unique("M")).replace(b"\r", b"\n")
        for n, cid in enumerate(ids[:2])
    )
    text += b"\n# a comment\n\n" + a04(ids[2], "").replace(b"\r", b"\r\n")  # no MRN: AE
    path = tmp_path / "feed.hl7"
    path.write_bytes(text)
    assert len(split_messages(text)) == 3
    env = {
        "PATH": "/usr/bin:/bin",
        "HCRM_AMQP_URI": installation.amqp_uri,
        "PYTHONWARNINGS": "ignore",
    }
    done = subprocess.run(
        [
            PYTHON,
            "-m",
            "shared.cli",
            "hl7",
            "send",
            str(path),
            "--port",
            str(installation.hl7_port),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [line.split("\t") for line in done.stdout.splitlines()]
    assert [(line[0], line[1], line[2]) for line in lines] == [
        (ids[0], "ADT^A04", "AA"),
        (ids[1], "ADT^A04", "AA"),
        (ids[2], "ADT^A04", "AE"),
    ]
    assert "PID-3" in lines[2][3] and done.returncode == 1
    wait_until(
        lambda: patient(installation, mrn), timeout=30, message="the patient sent from the file"
    )
    done = subprocess.run(
        [PYTHON, "-m", "shared.cli", "hl7", "replay", "--control-id", ids[0], "--dry-run"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "1 stored message(s) read; would publish 1 event(s): 0 new, 1 unchanged" in done.stdout
    done = subprocess.run(
        [PYTHON, "-m", "shared.cli", "hl7", "replay", "--control-id", ids[0]],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "published 1 event(s)" in done.stdout, done.stdout + done.stderr
    wait_until(
        lambda: installation.hl7_db.messages.find_one(
            {"control_id": ids[0], "outbox_state": "published", "replays": 1}
        ),
        timeout=30,
        message="the replayed event published",
    )
    assert (
        installation.intake_db.events.count_documents({"data.patient.mrn": mrn}) == 1
    )  # a no-op for intake


def test_a_week_of_a_hospital_feed_from_the_samples_reaches_intake_whole(installation):
    """tests/hl7_samples/hospital-week.txt through `hcrm hl7 send`: every message AA, every
    event it maps to recorded by intake (v1.1: cancellations, merges, scheduling), none
    refused."""
    env = {"PATH": "/usr/bin:/bin", "PYTHONWARNINGS": "ignore"}
    done = subprocess.run(
        [
            PYTHON,
            "-m",
            "shared.cli",
            "hl7",
            "send",
            str(SAMPLES / "hospital-week.txt"),
            "--port",
            str(installation.hl7_port),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    lines = [line.split("\t") for line in done.stdout.splitlines()]
    assert done.returncode == 0 and len(lines) == 21, done.stdout + done.stderr
    assert {line[2] for line in lines} == {"AA"}
    sent = {
        doc["control_id"]: len(doc["events"])
        for doc in installation.hl7_db.messages.find(
            {"sending_application": "HIS", "control_id": {"$regex": "^W0"}},
            {"control_id": 1, "events": 1},
        )
    }
    assert len(sent) == 21 and sent["W0020"] == 0  # the A02: answered AA, no event
    wait_until(
        lambda: (
            installation.intake_db.events.count_documents(
                {"source": "hl7", "source_event_id": {"$regex": "^HIS\\|XHYY\\|W0"}}
            )
            == sum(sent.values())
        ),
        timeout=60,
        message="every event of the week at intake",
    )
    assert installation.queue_depth("hospital.events.rejected") == 0
    assert patient(installation, "M1001")["view"]["name"] == "陈秀兰"
