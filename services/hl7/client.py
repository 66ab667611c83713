"""`hcrm hl7 send FILE…` and `hcrm hl7 replay`: the tools of whoever runs an HL7 feed.

hcrm hl7 send FILE… [--host H] [--port P] [--timeout S]
    An MLLP client. A file holds one message or many, one after another: separated by blank
    lines or simply by their MSH segments, with segments ending in \\r, \\n or \\r\\n (lines
    starting with # are comments). Each message is sent, its ACK awaited, then the next;
    one line is printed per message: control id, trigger, ACK code, text. The exit status
    is 1 if any message was answered AE or AR or not at all, 2 if nothing could be sent.

hcrm hl7 replay [--since ISO] [--control-id X] [--dry-run]
    Derive the events of the stored messages again through the current mapping (after a
    mapping table was fixed) and publish them with the same event ids (RPC hl7.replay).
    What intake makes of them: an unchanged event is a duplicate, a no-op; an event intake
    never recorded (its message was answered AE, or intake refused it then) is recorded now;
    a CHANGED event is a conflicting duplicate: intake keeps the version it recorded first and
    puts the new one in hospital.events.rejected (`hcrm dlq show hospital.events.rejected`).
    The first ACK a sender got is never changed. --dry-run counts without publishing.
"""

import os
import re
import socket
import sys
import time

from services.hl7.mllp import MESSAGE, MllpDecoder, encode

DEFAULT_PORT = 2575
# MSH-18 names -> Python codecs, to print what an ACK says.
CHARSETS = {
    b"UNICODE UTF-8": "utf-8",
    b"GB 18030-2000": "gb18030",
    b"GB18030": "gb18030",
    b"8859/1": "iso-8859-1",
    b"ASCII": "ascii",
}


# -- files of messages ---------------------------------------------------------------------------
def split_messages(data):
    """The messages of a file's bytes, each with its segments joined by \\r. A message starts
    at an MSH segment and ends at a blank line, the next MSH, or the end."""
    data = data.replace(b"\x0b", b"\n").replace(b"\x1c", b"\n")  # a file saved with MLLP framing
    messages, current = [], []
    for line in re.split(rb"\r\n|\r|\n", data):
        if line.startswith(b"MSH"):
            if current:
                messages.append(current)
            current = [line]
        elif not line.strip() or line.startswith(b"#"):
            if current:
                messages.append(current)
            current = []
        elif current:
            current.append(line)
    if current:
        messages.append(current)
    return [b"\r".join(segments) + b"\r" for segments in messages]


def header_fields(message):
    """(control id, trigger, charset codec) read from a message's MSH, loosely: for printing."""
    msh = re.split(rb"\r\n|\r|\n", message, maxsplit=1)[0]
    if len(msh) < 4:
        return "?", "?", "utf-8"
    fields = msh.split(msh[3:4])
    component = msh[4:5] or b"^"

    def field(n):  # MSH-n: MSH-1 is the separator itself, so MSH-n is fields[n - 1]
        return fields[n - 1] if len(fields) >= n else b""

    trigger = b"^".join(field(9).split(component)[:2]).decode("ascii", "replace") or "?"
    charset = CHARSETS.get(field(18).split(b"~")[0].strip().upper(), "utf-8")
    return field(10).decode("ascii", "replace") or "?", trigger, charset


def ack_summary(ack):
    """(code, text) of an ACK: MSA-1, and MSA-3 or else the ERR segment's message."""
    _, _, charset = header_fields(ack)
    text = ack.decode(charset, "replace")
    separator = text[3:4] if text.startswith("MSH") else "|"
    code, message = "?", ""
    for segment in re.split(r"\r\n|\r|\n", text):
        fields = segment.split(separator)
        if fields[0] == "MSA":
            code = fields[1] if len(fields) > 1 else "?"
            message = fields[3] if len(fields) > 3 else ""
        elif fields[0] == "ERR" and not message:
            message = next((f for f in reversed(fields[1:9]) if f), "")
    return code, message.replace("^", " ").strip()


# -- MLLP ----------------------------------------------------------------------------------------
class NoAnswer(Exception):
    """The listener closed the connection, or said nothing within the timeout."""


class MllpClient:
    """One connection at a time; `send` opens it (again) when needed."""

    def __init__(self, host="127.0.0.1", port=DEFAULT_PORT, timeout=10.0):
        self.host, self.port, self.timeout = host, port, timeout
        self.sock = None
        self.decoder = None

    def connect(self):
        if self.sock is None:
            self.sock = socket.create_connection((self.host, self.port), timeout=self.timeout)
            self.decoder = MllpDecoder(max_frame_bytes=16 * 1024 * 1024)
        return self

    def close(self):
        if self.sock is not None:
            try:
                self.sock.close()
            finally:
                self.sock = None

    def send(self, message):
        """Send one message and return its ACK (bytes). NoAnswer if none came: the
        connection is closed then, and the next send opens a new one."""
        self.connect()
        try:
            self.sock.sendall(encode(message))
            deadline = time.monotonic() + self.timeout
            while True:
                self.sock.settimeout(max(0.01, deadline - time.monotonic()))
                data = self.sock.recv(65536)
                if not data:
                    raise NoAnswer("the listener closed the connection without an ACK")
                for frame in self.decoder.feed(data):
                    if frame.kind == MESSAGE:
                        return frame.payload
        except TimeoutError:
            self.close()
            raise NoAnswer(f"no ACK within {self.timeout:g}s") from None
        except (OSError, NoAnswer):
            self.close()
            raise

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def send_files(paths, host, port, timeout, out=sys.stdout):
    """Send every message of the files, in order; returns the exit status."""
    messages = []
    for path in paths:
        with open(path, "rb") as handle:
            found = split_messages(handle.read())
        if not found:
            print(f"{path}: no message (no MSH segment)", file=sys.stderr)
        messages += found
    if not messages:
        return 2
    failed = 0
    with MllpClient(host, port, timeout) as client:
        for message in messages:
            control_id, trigger, _ = header_fields(message)
            try:
                code, text = ack_summary(client.send(message))
            except ConnectionRefusedError:
                print(f"hcrm hl7 send: nothing listens on {host}:{port}", file=sys.stderr)
                return 2
            except (NoAnswer, OSError) as exc:
                code, text = "-", f"no answer: {exc}"
            failed += code != "AA"
            print("\t".join((control_id, trigger, code, text)), file=out, flush=True)
    print(f"{len(messages)} message(s) sent, {len(messages) - failed} answered AA", file=sys.stderr)
    return 1 if failed else 0


# -- replay --------------------------------------------------------------------------------------
def replay(amqp_uri, since=None, control_id=None, dry_run=False, timeout=120.0, out=sys.stdout):
    from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
    from nameko.standalone.rpc import ClusterRpcProxy

    from services.hl7.receiving import REPLAY_COUNTS

    totals = dict.fromkeys(REPLAY_COUNTS, 0)
    changed, failures, after = [], [], None
    try:
        with ClusterRpcProxy({"AMQP_URI": amqp_uri, "serializer": "json"}, timeout=timeout) as rpc:
            while True:
                page = rpc.hl7.replay(
                    since=since, control_id=control_id, after=after, limit=200, dry_run=dry_run
                )
                for key in totals:
                    totals[key] += page[key]
                changed += page["changed_events"]
                failures += page["failures"]
                after = page["next"]
                if after is None:
                    break
    except UnknownService:
        print("hcrm hl7 replay: the hl7 service is not running", file=sys.stderr)
        return 2
    except RpcTimeout:
        print(
            f"hcrm hl7 replay: no answer from the hl7 service within {timeout:g}s", file=sys.stderr
        )
        return 2
    except RemoteError as exc:
        print(f"hcrm hl7 replay: {exc.value}", file=sys.stderr)
        return 2
    verb = "would publish" if dry_run else "published"
    print(
        f"{totals['messages']} stored message(s) read; {verb} {totals['events']} event(s): "
        f"{totals['new']} new, {totals['unchanged']} unchanged (a no-op for intake), "
        f"{totals['changed']} changed; {totals['failed']} still failing, "
        f"{totals['ignored']} ignored trigger(s), {totals['skipped']} oversized (not kept whole)",
        file=out,
    )
    if totals["changed"]:
        print(
            "Changed events keep the id of the version intake recorded first: intake keeps that "
            "version and puts the new one in hospital.events.rejected as a conflicting duplicate "
            "(hcrm dlq show hospital.events.rejected). To change a recorded fact, the hospital "
            "system sends a correction (A08, A11, A13).",
            file=out,
        )
        for entry in changed[:20]:
            print(
                f"  changed: {entry['control_id']}\t{entry['event_type']}\t{entry['event_id']}",
                file=out,
            )
    for entry in failures[:20]:
        print(
            f"  still failing: {entry['control_id']}\t{entry['code']}\t{entry['reason']}", file=out
        )
    return 0


def main(args):
    if args.hl7_command == "send":
        port = args.port or int(os.environ.get("HL7_PORT") or DEFAULT_PORT)
        return send_files(args.files, args.host, port, args.timeout)
    from services.hl7.config import Hl7Config
    from shared.config import ConfigError, load_config

    try:
        config = load_config("hl7", Hl7Config)
    except ConfigError as exc:
        print(f"hcrm hl7 replay: {exc}", file=sys.stderr)
        return 2
    return replay(
        config["amqp_uri"],
        since=args.since,
        control_id=args.control_id,
        dry_run=args.dry_run,
        timeout=args.timeout,
    )
