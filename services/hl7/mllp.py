"""MLLP, the HL7 Minimal Lower Layer Protocol: framing, and the listener entrypoint.

A message travels as  0x0B <message> 0x1C 0x0D  over a TCP connection that stays open for
many messages, one at a time: the sender waits for each message's ACK before it sends the
next. Framing is pure (`encode`, `MllpDecoder`) so it is tested without a socket; the
entrypoint (`mllp`) accepts connections with eventlet green sockets and hands each message
to a worker of the service, like any nameko entrypoint, then writes the worker's answer.

What the listener does with what arrives (docs/HL7.md, Ways in):
  a frame                      -> the service method's answer (an ACK) is written back,
                                  before anything else from that connection is read
  bytes outside a frame        -> dropped with a log line (whitespace between frames, which
                                  some senders add after 0x1C 0x0D, silently)
  a frame over max_frame_bytes -> its first bytes go to the service method (which answers AR
                                  when they hold a readable MSH); the rest is counted and
                                  discarded as it arrives, so memory stays bounded; with no
                                  answer the connection is closed
  a new 0x0B inside a frame    -> the unfinished frame is dropped (a sender that gave up on a
                                  message and started again)
  a client that vanishes       -> its unfinished frame is dropped with a log line
  the handler fails (store     -> no ACK: the connection is closed, the sender sends again
  down)                           (AA is never sent before the message is durable)
A slow or stuck connection holds only its own green thread; workers are the service's
(max_workers), so many connections share them.
"""

import dataclasses
import logging
import socket
from functools import partial

import eventlet
from eventlet.event import Event
from nameko.exceptions import ContainerBeingKilled
from nameko.extensions import Entrypoint
from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)

START_BLOCK = 0x0B  # VT
END_BLOCK = 0x1C  # FS
CARRIAGE_RETURN = 0x0D
MESSAGE, OVERSIZED, STRAY = "message", "oversized", "stray"
# What an oversized frame keeps for the service method: enough for any MSH segment.
KEEP_OF_OVERSIZED = 64 * 1024
RECV_BYTES = 64 * 1024
WHITESPACE = b" \t\r\n"

HL7_CONNECTIONS = Gauge("hcrm_hl7_connections", "Open MLLP connections", ["service"])
HL7_DROPPED = Counter(
    "hcrm_hl7_dropped_total",
    "Bytes or frames the MLLP listener dropped, by reason "
    "(stray: outside a frame; unfinished: connection closed mid-frame; "
    "abandoned: a new frame began inside one; oversized_unreadable)",
    ["service", "reason"],
)


def encode(message):
    """One MLLP frame around `message` (bytes)."""
    return b"\x0b" + bytes(message) + b"\x1c\x0d"


@dataclasses.dataclass(frozen=True)
class Frame:
    kind: str  # MESSAGE, OVERSIZED, or STRAY (bytes outside a frame, or an abandoned frame)
    payload: bytes  # MESSAGE: the message; OVERSIZED: its first bytes; STRAY: b""
    size: int  # how many bytes it had
    reason: str = ""  # STRAY: "stray" or "abandoned"


class MllpDecoder:
    """Incremental MLLP decoder: `feed` it whatever a read returned, get the frames completed
    by it, in order. Frames may be split across reads and several may come in one; memory is
    bounded by max_frame_bytes plus one read, whatever the peer sends.

    A frame ends at 0x1C 0x0D; a 0x1C followed by anything else also ends it (senders that
    omit the 0x0D exist), the byte after it being read as outside the frame."""

    def __init__(self, max_frame_bytes=1024 * 1024, keep_of_oversized=KEEP_OF_OVERSIZED):
        self.max_frame_bytes = max_frame_bytes
        self.keep_of_oversized = keep_of_oversized
        self._buffer = bytearray()
        self._in_frame = False
        self._scanned = 0  # the buffer holds no 0x0B / 0x1C before this offset
        self._discarded = 0  # bytes of an oversized frame already thrown away
        self._head = None  # the first bytes of an oversized frame

    def pending(self):
        """Bytes of an unfinished frame held or discarded so far (0 between frames)."""
        return self._discarded + len(self._buffer) if self._in_frame else 0

    def feed(self, data):
        self._buffer += data
        frames = []
        while True:
            if not self._in_frame:
                start = self._buffer.find(START_BLOCK)
                outside = self._buffer if start < 0 else self._buffer[:start]
                if outside.strip(WHITESPACE):
                    frames.append(Frame(STRAY, b"", len(outside), "stray"))
                if start < 0:
                    self._buffer.clear()
                    return frames
                del self._buffer[: start + 1]
                self._in_frame, self._scanned, self._discarded, self._head = True, 0, 0, None
                continue
            end = self._buffer.find(END_BLOCK, self._scanned)
            restart = self._buffer.find(START_BLOCK, self._scanned)
            if restart >= 0 and (end < 0 or restart < end):
                frames.append(Frame(STRAY, b"", self._discarded + restart, "abandoned"))
                del self._buffer[:restart]
                self._in_frame = False
                continue
            if end < 0 or end == len(self._buffer) - 1:
                # Unfinished (or 0x1C is the last byte so far: is 0x0D next?).
                held = len(self._buffer) if end < 0 else end
                self._scanned = held
                if self._head is None and self._discarded + held > self.max_frame_bytes:
                    self._head = bytes(self._buffer[: self.keep_of_oversized])
                if self._head is not None:  # oversized: count and discard, keep 0x1C if last
                    self._discarded += held
                    del self._buffer[:held]
                    self._scanned = 0
                return frames
            size = self._discarded + end
            if self._head is not None or size > self.max_frame_bytes:
                head = (
                    self._head
                    if self._head is not None
                    else bytes(self._buffer[: self.keep_of_oversized])
                )
                frames.append(Frame(OVERSIZED, head, size))
            else:
                frames.append(Frame(MESSAGE, bytes(self._buffer[:end]), size))
            consumed = end + 2 if self._buffer[end + 1] == CARRIAGE_RETURN else end + 1
            del self._buffer[:consumed]
            self._in_frame = False


# -- the entrypoint -----------------------------------------------------------------------------
class _Connection:
    def __init__(self, sock, peer):
        self.sock = sock
        self.peer = peer
        self.idle = True  # waiting for bytes (nothing of ours in flight): safe to close
        self.thread = None


class MllpListener(Entrypoint):
    """Listens on the service's `host`:`port` and calls the decorated method once per frame:
    method(payload: bytes, oversized_bytes: int) -> the answer (bytes, unframed) or None.
    oversized_bytes is 0 for a whole message, else the frame's size (payload = its head).

    Stopping (SIGTERM): the listening socket closes, idle connections are closed, and a
    connection with a message in flight is closed once its ACK is written."""

    STOP_GRACE_S = 30

    def setup(self):
        config = self.container.config["HCRM"]
        self.host, self.port = config["host"], int(config["port"])
        self.max_frame_bytes = int(config["max_frame_bytes"])
        self.idle_timeout_s = float(config["idle_timeout_s"]) or None
        self.max_connections = int(config["max_connections"])
        self.service_name = self.container.service_name
        self._connections = set()
        self._stopping = False
        self._server = self._accepting = None

    def start(self):
        # reuse_port=False: a second listener on the same port must fail, not share it.
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        self._server = eventlet.listen(
            (self.host, self.port), family=family, backlog=128, reuse_addr=True, reuse_port=False
        )
        self.port = self._server.getsockname()[1]
        self._accepting = self.container.spawn_managed_thread(
            self._accept_forever, identifier="mllp.accept"
        )
        log.info(
            "MLLP listening",
            extra={"host": self.host, "port": self.port, "max_frame_bytes": self.max_frame_bytes},
        )

    def stop(self):
        self._stopping = True
        self._close_server()
        for connection in list(self._connections):
            if connection.idle and connection.thread is not None:
                connection.thread.kill()
        with eventlet.Timeout(self.STOP_GRACE_S, False):
            for connection in list(self._connections):
                if connection.thread is not None:
                    connection.thread.wait()
        self.kill()

    def kill(self):
        self._stopping = True
        self._close_server()
        for connection in list(self._connections):
            if connection.thread is not None:
                connection.thread.kill()

    def _close_server(self):
        if self._accepting is not None:
            self._accepting.kill()
            self._accepting = None
        if self._server is not None:
            self._server.close()
            self._server = None

    def _accept_forever(self):
        while not self._stopping:
            try:
                sock, address = self._server.accept()
            except OSError as exc:
                if self._stopping:
                    return
                log.warning("MLLP accept failed", extra={"reason": str(exc)})
                eventlet.sleep(0.1)
                continue
            peer = f"{address[0]}:{address[1]}"
            if len(self._connections) >= self.max_connections:
                log.warning(
                    "MLLP connection refused: too many open",
                    extra={"peer": peer, "max_connections": self.max_connections},
                )
                sock.close()
                continue
            connection = _Connection(sock, peer)
            self._connections.add(connection)
            HL7_CONNECTIONS.labels(self.service_name).inc()
            connection.thread = self.container.spawn_managed_thread(
                partial(self._serve, connection), identifier=f"mllp.{peer}"
            )

    def _serve(self, connection):
        """One connection: read, decode, answer each frame in order, until it closes. Never
        raises (an error in a managed thread would kill the whole service)."""
        sock, peer = connection.sock, connection.peer
        decoder = MllpDecoder(self.max_frame_bytes)
        answered = 0
        try:
            sock.settimeout(self.idle_timeout_s)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
            while not self._stopping:
                connection.idle = True
                try:
                    data = sock.recv(RECV_BYTES)
                except TimeoutError:
                    log.info(
                        "MLLP connection idle too long: closed",
                        extra={"peer": peer, "idle_timeout_s": self.idle_timeout_s},
                    )
                    return
                finally:
                    connection.idle = False
                if not data:
                    if decoder.pending():
                        HL7_DROPPED.labels(self.service_name, "unfinished").inc()
                        log.warning(
                            "MLLP peer closed mid-frame: unfinished frame dropped",
                            extra={"peer": peer, "bytes": decoder.pending()},
                        )
                    return
                for frame in decoder.feed(data):
                    if frame.kind == STRAY:
                        HL7_DROPPED.labels(self.service_name, frame.reason).inc()
                        log.warning(
                            "MLLP bytes outside a frame dropped"
                            if frame.reason == "stray"
                            else "MLLP unfinished frame dropped: a new frame began",
                            extra={"peer": peer, "bytes": frame.size},
                        )
                        continue
                    if self._stopping:
                        return  # not answered: the sender sends it again to another replica
                    answer = self._answer(frame, peer)
                    if answer is None:
                        return  # closed without an answer: the sender sends it again
                    sock.sendall(encode(answer))
                    answered += 1
        except OSError as exc:
            log.info("MLLP connection lost", extra={"peer": peer, "reason": str(exc)})
        except Exception:
            log.exception("MLLP connection failed", extra={"peer": peer})
        finally:
            self._connections.discard(connection)
            HL7_CONNECTIONS.labels(self.service_name).dec()
            try:
                sock.close()
            except OSError:
                pass
            if answered:
                log.info("MLLP connection closed", extra={"peer": peer, "answered": answered})

    def _answer(self, frame, peer):
        """The service method's answer to one frame, or None (no answer: close)."""
        done = Event()

        def handle_result(worker_ctx, result, exc_info):
            done.send((result, exc_info))
            return result, exc_info

        oversized_bytes = frame.size if frame.kind == OVERSIZED else 0
        try:
            self.container.spawn_worker(
                self, (frame.payload, oversized_bytes), {}, handle_result=handle_result
            )
        except ContainerBeingKilled:
            return None
        answer, exc_info = done.wait()
        if exc_info is not None:
            log.error(
                "MLLP message not answered: its handler failed; the sender will resend",
                extra={"peer": peer, "error": exc_info[0].__name__},
            )
            return None
        if answer is None and frame.kind == OVERSIZED:
            HL7_DROPPED.labels(self.service_name, "oversized_unreadable").inc()
            log.warning(
                "MLLP oversized frame without a readable header dropped; connection closed",
                extra={"peer": peer, "bytes": frame.size},
            )
        return answer


mllp = MllpListener.decorator
