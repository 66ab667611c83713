"""What the listener does with one message, whichever transport brought it (MLLP or the
gateway's POST /api/v1/hl7), and the replay of stored messages (docs/HL7.md).

One message:
  1. read the header (MSH); none readable -> AR, kept for the record, nothing published;
  2. a message with this (MSH-3, MSH-4, MSH-10) was recorded before -> its first ACK again;
  3. parse and map it to events (services/hl7/mapping.py); content that breaks the contract
     -> AE (or AR for a type or version not accepted), with the reason, nothing published;
  4. ONE insert: the raw message, its outcome, the ACK and its events (the outbox), under
     the unique key -- AA only after it returned, so AA always means durable; a duplicate
     key there means another connection recorded the same message first: its ACK;
  5. the events go to the outbox's sender; if the process dies first, the relay timer
     publishes them. Events keep the ids the mapping derives from the message, so intake
     recognises a message sent twice or replayed.
Failures of the store are not answered at all (the sender sends again); a bug in the
mapping is answered AE so one message cannot hold up a feed, and the message is kept for a
replay once it is fixed.
"""

import dataclasses
import hashlib
import json
import logging

from prometheus_client import Counter
from pymongo.errors import DuplicateKeyError

from services.hl7.ack import build_ack, build_reject_for_garbage
from services.hl7.mapping import Hl7Error, parse, read_header, to_events
from services.hl7.store import hospital_day, message_key
from shared.log import mask_text
from shared.metrics import EVENTS_DUPLICATE, EVENTS_IN
from shared.outbox import Outbox
from shared.topology import HOSPITAL_EXCHANGE

log = logging.getLogger(__name__)

ACCEPTED, ERROR, REJECTED = "accepted", "error", "rejected"
STATUS_OF = {"AA": ACCEPTED, "AE": ERROR, "AR": REJECTED}
UNREADABLE = "unreadable"  # the trigger label of a message without a readable header
# What a replay counts (per page; `hcrm hl7 replay` adds the pages up).
REPLAY_COUNTS = (
    "messages",
    "events",
    "new",
    "changed",
    "unchanged",
    "failed",
    "ignored",
    "skipped",
)

HL7_MESSAGES = Counter(
    "hcrm_hl7_messages_total",
    "HL7 messages answered, by trigger and ACK code "
    "(duplicates included: they are answered with their first ACK's code)",
    ["service", "trigger", "ack_code"],
)


@dataclasses.dataclass
class Outcome:
    """The answer to one message and what the transports need to know about it."""

    ack: bytes  # unframed; None = no answer (an oversized frame with no header)
    ack_code: str  # AA | AE | AR
    status: str  # accepted | error | rejected
    trigger: str  # "ADT^A04", or "unreadable"
    control_id: str = None
    charset: str = "utf-8"  # of the ACK (the message's, by MSH-18)
    duplicate: bool = False
    mrns: tuple = ()  # of the patients it names (the gateway's audit log)
    doc: dict = None  # the new document, when it has events to publish


def trigger_of(header):
    return f"{header.message_type or '?'}^{header.trigger or '?'}"


def charset_of(header):
    """The codec the message was read with (MSH-18's, else the default): the ACK's too."""
    return getattr(header, "encoding", None) or "utf-8"


def digest(event):
    """A short fingerprint of an event's content: a replay tells changed events from
    unchanged ones by it."""
    text = json.dumps(event, sort_keys=True, ensure_ascii=False, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:20]


def _summaries(events):
    return [
        {"event_id": e.get("event_id"), "event_type": e.get("event_type"), "digest": digest(e)}
        for e in events
    ]


def _mrns(events):
    return tuple(
        dict.fromkeys(
            e["data"]["patient"]["mrn"]
            for e in events
            if isinstance(e.get("data"), dict) and (e["data"].get("patient") or {}).get("mrn")
        )
    )


def _visit_mrns(events):
    return [
        e["data"]["patient"]["mrn"]
        for e in events
        if e.get("event_type") == "PatientVisited" and (e["data"].get("patient") or {}).get("mrn")
    ]


class VisitLookup:
    """has_earlier_visit for the mapping, remembering its answers: a visit of an MRN that
    already had an earlier one need not be recorded (the earlier one answers every later
    question the same way), which saves the write for most return visits."""

    def __init__(self, store, before, key):
        self.store, self.before, self.key = store, before, key
        self.answers = {}

    def __call__(self, mrn):
        if mrn not in self.answers:
            self.answers[mrn] = self.store.has_earlier_visit(mrn, self.before, self.key)
        return self.answers[mrn]

    def record(self, events):
        """Remember the visits of `events` that are this listener's first of their MRN."""
        mrns = [mrn for mrn in _visit_mrns(events) if not self.answers.get(mrn)]
        if mrns:
            self.store.record_visits(self.key, mrns, self.before)


def _outbox_fields(events, now):
    """Outbox.fields holds one event; a message may map to several (an A40 merge and its
    profile): their queues are joined, in order, into one document's outbox."""
    parts = [Outbox.fields(HOSPITAL_EXCHANGE, event["event_type"], event, now) for event in events]
    joined = dict(parts[0])
    joined["outbox_queue"] = [entry for part in parts for entry in part["outbox_queue"]]
    return joined


def _header_fields(header):
    fields = {
        "sending_application": header.sending_application or "",
        "sending_facility": header.sending_facility or "",
        "receiving_application": header.receiving_application or "",
        "receiving_facility": header.receiving_facility or "",
        "message_type": header.message_type,
        "trigger_event": header.trigger,
        "structure": getattr(header, "structure", None),
        "version": header.version,
        "charset": getattr(header, "charset", None),
        "processing_id": getattr(header, "processing_id", None),
    }
    if header.control_id:
        fields["control_id"] = header.control_id  # absent: not deduplicated (partial index)
    return fields


class Receiver:
    """One message in, its Outcome out. `store` is the Hl7Store (or a fake with its verbs);
    `settings` the mapping's MappingSettings; `zone` the hospital's time zone (tallies by day)."""

    def __init__(self, store, settings, zone, max_frame_bytes, service="hl7"):
        self.store = store
        self.settings = settings
        self.zone = zone
        self.max_frame_bytes = max_frame_bytes
        self.service = service

    def receive(self, raw, now, transport="mllp", oversized_bytes=0, default_charset=None):
        default_charset = default_charset or self.settings.default_charset
        if oversized_bytes:
            return self._oversized(raw, oversized_bytes, now, transport, default_charset)
        try:
            header = read_header(raw, default_charset)
        except Hl7Error as exc:
            return self._unreadable(raw, exc.reason, now, transport)
        except Exception as exc:  # a bug in the reader: still an answer, never a stalled feed
            log.exception("HL7 header reader failed")
            return self._unreadable(
                raw, f"unreadable header ({exc.__class__.__name__})", now, transport
            )
        trigger, key, earlier = self._arrived(header, transport, now)
        if earlier is not None:
            return earlier
        visits = VisitLookup(self.store, now, message_key(*key))
        events, ack_code, reason, location, error_code = [], "AA", None, None, None
        try:
            events = to_events(parse(raw, default_charset), self.settings, has_earlier_visit=visits)
        except Hl7Error as exc:
            ack_code, reason, location, error_code = (
                exc.code,
                exc.reason,
                exc.location,
                exc.error_code,
            )
        except Exception as exc:  # a mapping bug: AE, kept for a replay once fixed
            log.exception(
                "HL7 mapping failed", extra={"control_id": header.control_id, "trigger": trigger}
            )
            ack_code, reason = (
                "AE",
                f"internal error while mapping ({exc.__class__.__name__}); kept for replay",
            )
        if ack_code == "AA":
            visits.record(events)  # before the insert: a resend of this message excludes it by key
        ack = build_ack(
            header, ack_code, text=reason, error_location=location, now=now, error_code=error_code
        )
        doc = {
            "received_at": now,
            "transport": transport,
            **_header_fields(header),
            "raw": bytes(raw),
            "raw_size": len(raw),
            "default_charset": default_charset,
            "status": STATUS_OF[ack_code],
            "ack_code": ack_code,
            "ack": ack,
            "ack_charset": charset_of(header),
            "reason": reason,
            "error_location": location,
            "events": _summaries(events),
            "mrns": list(_mrns(events)),
        }
        if events:
            doc.update(_outbox_fields(events, now))
        try:
            self.store.insert_message(doc)
        except DuplicateKeyError:  # the same message, recorded meanwhile through another connection
            return self._duplicate(self.store.find_message(*key), trigger, now)
        self._count(now, trigger, ack_code)
        log.info(
            "HL7 message recorded",
            extra={
                "control_id": header.control_id,
                "trigger": trigger,
                "ack_code": ack_code,
                "events": len(events),
                "reason": reason,
                "transport": transport,
            },
        )
        return Outcome(
            ack,
            ack_code,
            STATUS_OF[ack_code],
            trigger,
            header.control_id,
            charset_of(header),
            mrns=_mrns(events),
            doc=doc if events else None,
        )

    def _arrived(self, header, transport, now):
        """Count a message with a readable header in: its trigger, its key (MSH-3, MSH-4,
        MSH-10), and the answer when it was recorded before (its first ACK again), else None."""
        trigger = trigger_of(header)
        EVENTS_IN.labels(self.service, transport, trigger).inc()
        key = (header.sending_application or "", header.sending_facility or "", header.control_id)
        if header.control_id:
            stored = self.store.find_message(*key)
            if stored is not None:
                return trigger, key, self._duplicate(stored, trigger, now)
        return trigger, key, None

    # -- the other outcomes ----------------------------------------------------------------
    def _duplicate(self, stored, trigger, now):
        if (
            stored is None
        ):  # the key is taken, yet its message does not read back: no ACK (resent later)
            raise RuntimeError(
                "a message with this (MSH-3, MSH-4, MSH-10) exists but could not be read"
            )
        EVENTS_DUPLICATE.labels(self.service, trigger).inc()
        self._count(now, trigger, stored["ack_code"], duplicate=True)
        log.info(
            "HL7 duplicate answered with its first ACK",
            extra={"control_id": stored.get("control_id"), "trigger": trigger},
        )
        return Outcome(
            bytes(stored["ack"]),
            stored["ack_code"],
            stored["status"],
            trigger,
            stored.get("control_id"),
            stored.get("ack_charset") or "utf-8",
            duplicate=True,
            mrns=tuple(stored.get("mrns") or ()),
        )

    def _unreadable(self, raw, reason, now, transport):
        EVENTS_IN.labels(self.service, transport, UNREADABLE).inc()
        ack = build_reject_for_garbage(reason)
        self.store.insert_message(
            {
                "received_at": now,
                "transport": transport,
                "raw": bytes(raw),
                "raw_size": len(raw),
                "status": REJECTED,
                "ack_code": "AR",
                "ack": ack,
                "reason": reason,
                "events": [],
                "mrns": [],
            }
        )
        self._count(now, UNREADABLE, "AR")
        log.warning(
            "HL7 message without a readable header: AR", extra={"reason": reason, "bytes": len(raw)}
        )
        return Outcome(ack, "AR", REJECTED, UNREADABLE)

    def _oversized(self, head, size, now, transport, default_charset):
        """A frame over the limit: only its head was kept. AR when the head has a readable
        MSH (then recorded, and deduplicated, like any message); else no answer."""
        cut = max(head.rfind(b"\r"), head.rfind(b"\n"))
        try:
            header = read_header(head[: cut + 1] if cut > 0 else head, default_charset)
        except Exception:
            self._count(now, UNREADABLE, "dropped")
            return Outcome(None, None, REJECTED, UNREADABLE)
        trigger, key, earlier = self._arrived(header, transport, now)
        if earlier is not None:
            return earlier
        reason = f"message of {size} bytes: over the {self.max_frame_bytes}-byte limit"
        ack = build_ack(header, "AR", text=reason, now=now)
        try:
            self.store.insert_message(
                {
                    "received_at": now,
                    "transport": transport,
                    **_header_fields(header),
                    "raw": bytes(head),
                    "raw_size": size,
                    "raw_truncated": True,
                    "status": REJECTED,
                    "ack_code": "AR",
                    "ack": ack,
                    "ack_charset": charset_of(header),
                    "reason": reason,
                    "events": [],
                    "mrns": [],
                }
            )
        except DuplicateKeyError:
            return self._duplicate(self.store.find_message(*key), trigger, now)
        self._count(now, trigger, "AR")
        log.warning(
            "HL7 oversized message: AR",
            extra={"control_id": header.control_id, "trigger": trigger, "bytes": size},
        )
        return Outcome(ack, "AR", REJECTED, trigger, header.control_id, charset_of(header))

    def _count(self, now, trigger, ack_code, duplicate=False):
        """Metrics and the admin page's tallies: best effort, after the message is durable
        (a failed tally must not cost the sender its ACK)."""
        HL7_MESSAGES.labels(self.service, trigger, ack_code).inc()
        try:
            self.store.tally(hospital_day(now, self.zone), trigger, ack_code, duplicate)
        except Exception as exc:
            log.warning(
                "HL7 tally not written",
                extra={
                    "trigger": trigger,
                    "ack_code": ack_code,
                    "reason": f"{exc.__class__.__name__}: {exc}",
                },
            )

    # -- replay ----------------------------------------------------------------------------
    def replay(self, now, since=None, control_id=None, after=None, limit=100, dry_run=False):
        """Re-derive the events of stored messages through the current mapping (after a fix
        of a mapping table, or of intake) and publish them again through the outbox, with
        the same event ids. What intake makes of them (docs/EVENTS.md, duplicates): an unchanged
        event is a duplicate and changes nothing; an event it never recorded (its message was
        answered AE, or intake refused it then) is recorded now; a CHANGED event is a
        conflicting duplicate: intake keeps the first version and puts the copy in
        hospital.events.rejected. Returns what was found, and `next` (resume from there)."""
        summary = {
            **dict.fromkeys(REPLAY_COUNTS, 0),
            "changed_events": [],
            "failures": [],
            "next": None,
            "dry_run": dry_run,
        }
        docs = self.store.messages_to_replay(since, control_id, after, limit)
        for doc in docs:
            summary["messages"] += 1
            if doc.get("raw_truncated") or doc.get("raw_removed"):
                # An oversized message (only its head was kept), or one whose text is gone
                # (its patient erased, or past raw_retention_days: privacy.py).
                summary["skipped"] += 1
                continue
            visits = VisitLookup(
                self.store,
                doc["received_at"],
                message_key(
                    doc.get("sending_application"), doc.get("sending_facility"), doc["control_id"]
                ),
            )
            try:
                raw = bytes(doc["raw"])
                events = to_events(
                    parse(raw, doc.get("default_charset") or self.settings.default_charset),
                    self.settings,
                    has_earlier_visit=visits,
                )
            except (
                Exception
            ) as exc:  # Hl7Error, or a mapping bug: this message, not the replay, fails
                summary["failed"] += 1
                if not isinstance(exc, Hl7Error):
                    log.exception(
                        "HL7 mapping failed during a replay",
                        extra={"control_id": doc["control_id"]},
                    )
                if len(summary["failures"]) < 50:
                    summary["failures"].append(
                        {
                            "control_id": doc["control_id"],
                            "code": getattr(exc, "code", "AE"),
                            "reason": mask_text(
                                getattr(exc, "reason", None) or exc.__class__.__name__
                            ),
                        }
                    )
                continue
            if not events:
                summary["ignored"] += 1
                continue
            before = {e["event_id"]: e.get("digest") for e in doc.get("events") or []}
            now_summaries = _summaries(events)
            for entry in now_summaries:
                if entry["event_id"] not in before:
                    summary["new"] += 1
                elif before[entry["event_id"]] != entry["digest"]:
                    summary["changed"] += 1
                    if len(summary["changed_events"]) < 100:
                        summary["changed_events"].append(
                            {
                                "control_id": doc["control_id"],
                                "event_id": entry["event_id"],
                                "event_type": entry["event_type"],
                            }
                        )
                else:
                    summary["unchanged"] += 1
            summary["events"] += len(events)
            if dry_run:
                continue
            visits.record(events)
            changes = {
                "status": ACCEPTED,
                "events": now_summaries,
                "mrns": list(_mrns(events)),
                "replayed_at": now,
            }
            if doc.get("status") != ACCEPTED:
                changes["status_before_replay"] = doc.get("status")
            updated = self.store.record_replay(doc["_id"], changes, events, now)
            if updated is not None:
                self.store.outbox.publish_or_leave(updated)
        if len(docs) == limit:
            summary["next"] = str(docs[-1]["_id"])
        return summary
