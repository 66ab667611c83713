"""Hl7Service: HL7 v2 messages in (MLLP on port 2575, or the gateway's POST /api/v1/hl7),
the contract's events out to hospital.events, where intake takes them like any JSON event.

A table of contents: each entrypoint translates and delegates to the receiver
(services/hl7/receiving.py), the mapping (services/hl7/mapping.py) and the store.
"""

import base64
import binascii
import datetime
import logging
import zoneinfo

from nameko.extensions import DependencyProvider

from services.hl7.config import Hl7Config, mapping_settings
from services.hl7.mllp import KEEP_OF_OVERSIZED, mllp
from services.hl7.privacy import Hl7PrivacyMixin
from services.hl7.receiving import Receiver
from services.hl7.store import Hl7Store
from shared.clock import utcnow
from shared.errors import BadRequest
from shared.log import mask_text
from shared.messaging import rpc
from shared.metrics import MetricsServer
from shared.paging import MAX_PAGE, page
from shared.service import HealthMixin
from shared.timers import configured_timer

log = logging.getLogger(__name__)


class MappingTables(DependencyProvider):
    """The mapping's settings, built once from the validated config: a table the mapping
    refuses stops the service at start, not at the first message."""

    def setup(self):
        self.settings = mapping_settings(self.container.config["HCRM"])

    def get_dependency(self, worker_ctx):
        return self.settings


class Hl7Service(Hl7PrivacyMixin, HealthMixin):
    name = "hl7"
    config_schema = Hl7Config

    store = Hl7Store()
    mapping = MappingTables()
    metrics = MetricsServer()

    @mllp
    def handle_frame(self, payload, oversized_bytes=0):
        """One MLLP frame -> its ACK (None: no answer, the listener closes the connection)."""
        return self._receive(payload, "mllp", oversized_bytes).ack

    @rpc
    def receive(self, raw_base64, charset=None):
        """The gateway's POST /api/v1/hl7: the same path as a frame. `charset`: the HTTP
        body's, used when MSH-18 is empty."""
        try:
            raw = base64.b64decode(raw_base64, validate=True)
        except (binascii.Error, TypeError, ValueError):
            raise BadRequest(
                "The message is not valid base64.", {"raw_base64": ["Not base64."]}
            ) from None
        oversized = len(raw) > self.config["max_frame_bytes"]  # as MLLP would: its head only
        outcome = self._receive(
            raw[:KEEP_OF_OVERSIZED] if oversized else raw,
            "http",
            len(raw) if oversized else 0,
            charset,
        )
        return {
            "ack_base64": base64.b64encode(outcome.ack).decode("ascii") if outcome.ack else None,
            "ack_code": outcome.ack_code,
            "charset": outcome.charset,
            "status": outcome.status,
            "duplicate": outcome.duplicate,
            "control_id": outcome.control_id,
            "trigger": outcome.trigger,
            "mrns": list(outcome.mrns),
        }

    @rpc
    def replay(self, since=None, control_id=None, after=None, limit=100, dry_run=False):
        """Re-derive and republish the events of stored messages (`hcrm hl7 replay`), one
        page at a time: call again with after=<the answer's next> until next is None."""
        since_at = _parse_since(since)
        return self._receiver().replay(
            utcnow(),
            since=since_at,
            control_id=control_id,
            after=after,
            limit=max(1, min(int(limit), MAX_PAGE)),
            dry_run=bool(dry_run),
        )

    @rpc
    def recent(self, limit=50, offset=0):
        """The latest messages for the admin page: no message text, reasons masked."""
        limit, offset = page(limit, offset)
        items, total = self.store.recent(max(1, limit), offset)
        return {"items": [_public(doc) for doc in items], "total": total}

    @rpc
    def counts(self):
        """Messages by trigger and by ACK code, over all time and today (hospital day);
        `rows` by both; duplicates (resends answered with their first ACK) apart."""
        today = utcnow().astimezone(zoneinfo.ZoneInfo(self.config["timezone"])).date().isoformat()
        out = {
            "by_trigger": {},
            "by_ack_code": {},
            "duplicates": 0,
            "today": {"messages": 0, "by_ack_code": {}},
            "rows": [],
        }
        rows = {}
        for tally in self.store.tallies():
            trigger, code = tally["trigger"], tally["ack_code"]
            messages, duplicates = tally.get("messages", 0), tally.get("duplicates", 0)
            out["by_trigger"][trigger] = out["by_trigger"].get(trigger, 0) + messages
            out["by_ack_code"][code] = out["by_ack_code"].get(code, 0) + messages
            out["duplicates"] += duplicates
            if tally["day"] == today:
                out["today"]["messages"] += messages
                out["today"]["by_ack_code"][code] = (
                    out["today"]["by_ack_code"].get(code, 0) + messages
                )
            row = rows.setdefault(
                (trigger, code),
                {"trigger": trigger, "ack_code": code, "messages": 0, "duplicates": 0},
            )
            row["messages"] += messages
            row["duplicates"] += duplicates
        out["rows"] = sorted(
            rows.values(), key=lambda r: (-r["messages"], r["trigger"], r["ack_code"])
        )
        return out

    @configured_timer("outbox_relay_interval_s")
    def relay_outbox(self):
        self.store.relay_outbox()

    def _receiver(self):
        return Receiver(
            self.store,
            self.mapping,
            zoneinfo.ZoneInfo(self.config["timezone"]),
            self.config["max_frame_bytes"],
            self.name,
        )

    def _receive(self, raw, transport, oversized_bytes=0, charset=None):
        outcome = self._receiver().receive(raw, utcnow(), transport, oversized_bytes, charset)
        if outcome.doc is not None:
            self.store.outbox.publish_or_leave(outcome.doc)
        return outcome


def _parse_since(since):
    if not since:
        return None
    try:
        moment = datetime.datetime.fromisoformat(str(since))
    except ValueError:
        raise BadRequest(
            "since: not an ISO 8601 date or time.", {"since": ["Not ISO 8601."]}
        ) from None
    if moment.tzinfo is None:
        raise BadRequest(
            "since: give an offset (2026-03-02T00:00:00+08:00).", {"since": ["No offset."]}
        )
    return moment


def _json(value):
    return value.isoformat() if isinstance(value, datetime.datetime) else value


def _public(doc):
    """What the admin page shows of a message: who sent what, and how it was answered."""
    return {
        "id": str(doc["_id"]),
        "received_at": _json(doc.get("received_at")),
        "transport": doc.get("transport"),
        "sending_application": doc.get("sending_application"),
        "sending_facility": doc.get("sending_facility"),
        "control_id": doc.get("control_id"),
        "message_type": doc.get("message_type"),
        "trigger": doc.get("trigger_event"),
        "version": doc.get("version"),
        "ack_code": doc.get("ack_code"),
        "status": doc.get("status"),
        "reason": mask_text(doc["reason"]) if doc.get("reason") else None,
        "error_location": doc.get("error_location"),
        "size": doc.get("raw_size"),
        "event_types": [e.get("event_type") for e in doc.get("events") or []],
        "replayed_at": _json(doc.get("replayed_at")),
    }
