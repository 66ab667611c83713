"""ComplaintsService: complaints from the gateway and from follow-up service recovery, their
deadlines, history, automatic escalation and the weekly service-opinion report; merged
patients (PatientsMerged from intake) are followed to their survivor."""

import datetime
import functools
import json
import logging
import uuid
import zoneinfo

from prometheus_client import Gauge, Histogram

from services.complaints import domain
from services.complaints.config import ComplaintsConfig, deadline_table
from services.complaints.privacy import ComplaintsPrivacyMixin
from services.complaints.store import ComplaintsStore, history_entry
from shared import outbound
from shared.clock import utcnow
from shared.errors import BadRequest, Conflict, InvalidMessage
from shared.listing import set_filters
from shared.messaging import reliable_consumer, rpc
from shared.metrics import MetricsServer
from shared.paging import page
from shared.privacy import ERASED_EVENT
from shared.service import HealthMixin
from shared.timers import configured_timer
from shared.times import AWARE_TIME_HINT, parse_aware

log = logging.getLogger(__name__)

OPEN_GAUGE = Gauge("hcrm_complaints_open", "Unresolved complaints")
BREACHED_GAUGE = Gauge("hcrm_complaints_breached", "Unresolved complaints with a deadline breached")
ACK_SECONDS = Histogram(
    "hcrm_complaint_ack_seconds",
    "Time from receipt to acknowledgement",
    buckets=(600, 3600, 2 * 3600, 6 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400),
)
RESOLVE_SECONDS = Histogram(
    "hcrm_complaint_resolve_seconds",
    "Time from receipt to resolution",
    buckets=(3600, 6 * 3600, 86400, 2 * 86400, 4 * 86400, 7 * 86400, 30 * 86400),
)
PUBLIC = (
    "patient_id",
    "channel",
    "category",
    "department",
    "severity",
    "description",
    "status",
    "received_at",
    "ack_due_at",
    "resolve_due_at",
    "acknowledged_at",
    "resolved_at",
    "escalated_at",
    "assigned_to",
    "resolution",
    "followup_id",
    "ack_breach",
    "resolve_breach",
    "opened_by",
)
SYSTEM = "system"


class ComplaintsService(ComplaintsPrivacyMixin, HealthMixin):
    name = "complaints"
    config_schema = ComplaintsConfig

    store = ComplaintsStore()
    metrics = MetricsServer()

    # -- opening --------------------------------------------------------------------------
    @rpc
    def open_complaint(
        self,
        channel,
        category,
        severity,
        description,
        received_at=None,
        patient_id=None,
        department=None,
        opened_by=None,
    ):
        errors = {}
        if category not in self.config["categories"]:
            errors["category"] = [f"Must be one of: {', '.join(self.config['categories'])}."]
        if severity not in domain.SEVERITIES:
            errors["severity"] = [f"Must be one of: {', '.join(domain.SEVERITIES)}."]
        if channel not in domain.CHANNELS:
            errors["channel"] = [f"Must be one of: {', '.join(domain.CHANNELS)}."]
        now = utcnow()
        patient_id = self._current_patient(patient_id)  # a merged-away id files for its survivor
        received = parse_aware(received_at) if received_at else now
        if received is None:
            errors["received_at"] = [AWARE_TIME_HINT]
        if received and received > now + datetime.timedelta(minutes=5):
            errors["received_at"] = ["Cannot lie in the future."]
        if errors:
            raise BadRequest("invalid complaint", errors)
        doc = self._new(
            str(uuid.uuid4()),
            now,
            (patient_id, department, opened_by),
            channel=channel,
            category=category,
            severity=severity,
            description=description,
            received=received,
        )
        saved, _ = self.store.open(doc, self._message("ComplaintOpened", doc, now), now)
        self.store.outbox.publish_or_leave(saved)
        self._follow_merge(patient_id, now)
        return self._public(saved)

    # -- inbound events (complaints.inbound) ------------------------------------------------
    @reliable_consumer("complaints.inbound")
    def handle_inbound(self, message):
        """ServiceRecoveryRequested (followup) and PatientsMerged (intake), by event_type; any
        other type is not for this service and is ignored."""
        event = message.body
        if not isinstance(event, dict) or not event.get("event_type"):
            raise InvalidMessage({"event_type": ["A canonical event with an event_type."]})
        if event["event_type"] == "ServiceRecoveryRequested":
            self._open_for_recovery(event)
        elif event["event_type"] == "PatientsMerged":
            self._merge(event)
        elif event["event_type"] == ERASED_EVENT:
            self.erase_patient(event)  # the person's data goes (privacy.py)
        else:
            log.debug("event ignored", extra={"event_type": str(event["event_type"])[:64]})

    def _open_for_recovery(self, event):
        data = event.get("data")
        if (
            not isinstance(data, dict)
            or not data.get("followup_id")
            or not event.get("occurred_at")
        ):
            raise InvalidMessage(
                {"data.followup_id": ["ServiceRecoveryRequested needs a followup_id."]}
            )
        now = utcnow()
        patient_id = self._current_patient(event.get("patient_id"))
        description = domain.recovery_description(data)
        doc = self._new(
            domain.complaint_id_for_followup(data["followup_id"]),
            now,
            (patient_id, data.get("department"), data.get("agent") or SYSTEM),
            channel="follow_up",
            category="other",
            severity=domain.severity_for_recovery(domain.recovery_score(data)),
            description=description[:4000],
            received=datetime.datetime.fromisoformat(event["occurred_at"]),
        )
        doc["followup_id"] = data["followup_id"]
        saved, new = self.store.open(doc, self._message("ComplaintOpened", doc, now), now)
        if new:
            self.store.outbox.publish_or_leave(saved)
        self._follow_merge(patient_id, now)

    def _merge(self, event):
        """PatientsMerged(patient_id = survivor S, data.merged_patient_id = retired R): record
        R -> S (idempotent; chains resolve transitively) and re-point R's complaints to S."""
        data = event.get("data") if isinstance(event.get("data"), dict) else {}
        survivor = self._current_patient(event.get("patient_id"))
        retired = data.get("merged_patient_id")
        if not domain.merge_is_usable(retired, survivor, self.store.alias_of):
            log.warning("merge not applied", extra={"retired": retired, "survivor": survivor})
            return
        self.store.add_alias(retired, survivor)
        self._follow_merge(retired, utcnow())

    def _current_patient(self, patient_id):
        return domain.resolve_alias(patient_id, self.store.alias_of) if patient_id else patient_id

    def _follow_merge(self, patient_id, now):
        """If `patient_id` is merged (also by a merge that landed while a complaint was being
        opened under it), its complaints move to the survivor."""
        target = self._current_patient(patient_id)
        if target != patient_id:
            moved = self.store.repoint(
                patient_id,
                target,
                history_entry(now, SYSTEM, "patient_merged", f"{patient_id} -> {target}"),
            )
            if moved:
                log.info(
                    "complaints re-pointed to the surviving patient",
                    extra={"retired": patient_id, "survivor": target, "complaints": moved},
                )

    def _new(
        self,
        complaint_id,
        now,
        opener,
        *,
        channel,
        category,
        severity,
        description,
        received,
    ):
        """A new complaint's document; `opener` is (patient_id, department, opened_by): who it
        is about, where and who filed it; the keywords say what it is and when it came."""
        patient_id, department, opened_by = opener
        ack_due, resolve_due = domain.deadlines(received, severity, deadline_table(self.config))
        return {
            "_id": complaint_id,
            "patient_id": patient_id,
            "channel": channel,
            "category": category,
            "department": department,
            "severity": severity,
            "description": description,
            "status": domain.OPEN,
            "opened_by": opened_by,
            "received_at": received.isoformat(),
            "received_ts": received.timestamp(),
            "ack_due_at": ack_due.isoformat(),
            "ack_due_ts": ack_due.timestamp(),
            "resolve_due_at": resolve_due.isoformat(),
            "resolve_due_ts": resolve_due.timestamp(),
            "acknowledged_ts": 0.0,
            "resolved_ts": 0.0,
            "escalated_ts": 0.0,
            "ack_breach": "no",
            "resolve_breach": "no",
            "assigned_to": None,
            "history": [history_entry(now, opened_by, "open", None, None, domain.OPEN)],
        }

    # -- state ----------------------------------------------------------------------------
    @rpc
    def acknowledge(self, complaint_id, actor, note=None):
        return self._transition(complaint_id, "acknowledge", actor, note)

    @rpc
    def resolve(self, complaint_id, actor, note=None, resolution=None):
        return self._transition(complaint_id, "resolve", actor, note, resolution=resolution)

    @rpc
    def escalate(self, complaint_id, actor, note=None):
        return self._transition(complaint_id, "escalate", actor, note)

    @rpc
    def assign(self, complaint_id, actor, agent):
        complaint = self.store.get(complaint_id)
        if complaint["status"] == domain.RESOLVED:
            raise Conflict("a resolved complaint cannot be assigned")
        now = utcnow()
        done = self.store.change(
            complaint, {"assigned_to": agent}, history_entry(now, actor, "assign", agent), [], now
        )
        if done is None:
            raise Conflict("the complaint changed meanwhile; reload it")
        return self._public(done)

    def _transition(self, complaint_id, action, actor, note, resolution=None):
        complaint = self.store.get(complaint_id)
        try:
            target = domain.next_status(action, complaint)
        except domain.IllegalTransition as exc:
            raise Conflict(str(exc)) from None
        now = utcnow()
        fields = {"status": target}
        event_type = {
            "acknowledge": "ComplaintAcknowledged",
            "resolve": "ComplaintResolved",
            "escalate": "ComplaintEscalated",
        }[action]
        extra = {"actor": actor, "note": note}
        if action == "acknowledge":
            fields.update(acknowledged_ts=now.timestamp(), acknowledged_at=now.isoformat())
        elif action == "resolve":
            fields.update(
                resolved_ts=now.timestamp(), resolved_at=now.isoformat(), resolution=resolution
            )
            extra["resolution"] = resolution
        else:
            fields.update(escalated_ts=now.timestamp(), escalated_at=now.isoformat())
        message = self._message(
            event_type, {**complaint, **fields}, now, extra, discriminator=action
        )
        done = self.store.change(
            complaint,
            fields,
            history_entry(now, actor, action, note, complaint["status"], target),
            [(event_type, message)],
            now,
        )
        if done is None:
            raise Conflict("the complaint changed meanwhile; reload it")
        if action == "acknowledge":
            ACK_SECONDS.observe(max(0.0, now.timestamp() - complaint["received_ts"]))
        elif action == "resolve":
            RESOLVE_SECONDS.observe(max(0.0, now.timestamp() - complaint["received_ts"]))
        self.store.outbox.publish_or_leave(done)
        return self._public(done)

    # -- automatic escalation ---------------------------------------------------------------
    @configured_timer("sla_check_interval_s")
    def check_deadlines(self):
        self.escalate_breaches(utcnow())
        self.measure()

    def escalate_breaches(self, now):
        """Record each passed deadline once and escalate: claimed atomically per deadline
        (the breach flag is part of the filter), so replicas and restarts never repeat one."""
        count = 0
        for complaint in self.store.breach_candidates(now.timestamp()):
            for deadline in domain.breached_deadlines(complaint, now.timestamp()):
                flag = "ack_breach" if deadline == "acknowledge" else "resolve_breach"
                fields = {flag: "breached"}
                messages = [
                    (
                        "ComplaintSlaBreached",
                        self._message(
                            "ComplaintSlaBreached",
                            complaint,
                            now,
                            {"deadline": deadline},
                            discriminator=deadline,
                        ),
                    )
                ]
                escalating = complaint["status"] in (domain.OPEN, domain.ACKNOWLEDGED)
                if escalating:
                    fields.update(
                        status=domain.ESCALATED,
                        escalated_ts=now.timestamp(),
                        escalated_at=now.isoformat(),
                    )
                    messages.append(
                        (
                            "ComplaintEscalated",
                            self._message(
                                "ComplaintEscalated",
                                {**complaint, **fields},
                                now,
                                {"actor": SYSTEM, "note": f"{deadline} deadline passed"},
                                discriminator="escalate",
                            ),
                        )
                    )
                history = history_entry(
                    now,
                    SYSTEM,
                    "sla_breach",
                    f"{deadline} deadline passed",
                    complaint["status"],
                    fields.get("status", complaint["status"]),
                )
                done = self.store.change(
                    complaint, fields, history, messages, now, guard={flag: "no"}
                )
                if done is not None:
                    count += 1
                    complaint = done
                    self.store.outbox.publish_or_leave(done)
                    log.warning(
                        "complaint deadline breached",
                        extra={"complaint_id": complaint["_id"], "deadline": deadline},
                    )
        return count

    def measure(self):
        unresolved = {"status": {"$in": list(domain.UNRESOLVED)}}
        OPEN_GAUGE.set(self.store.count(unresolved))
        BREACHED_GAUGE.set(
            self.store.count(
                {"$or": [{"ack_breach": "breached"}, {"resolve_breach": "breached"}], **unresolved}
            )
        )

    @configured_timer("outbox_relay_interval_s")
    def relay_outbox(self):
        self.store.relay()

    @configured_timer("report_check_interval_s")
    def send_weekly_report(self):
        self.publish_weekly_report(utcnow())

    def publish_weekly_report(self, now):
        """Seed 004: the service-opinion report is filled in every week and sent to the
        departments. Once the week is over its report is stored (once) and published as
        ServiceOpinionReportPublished, which departments' systems and BI consume."""
        today = now.astimezone(self._tz).date()
        week_start = today - datetime.timedelta(days=today.weekday() + 7)
        report = self.weekly_report(week_start.isoformat())
        message = outbound.build(
            "ServiceOpinionReportPublished",
            report,
            patient_id=None,
            now=now,
            event_id=domain.event_id(f"report:{week_start}", "ServiceOpinionReportPublished"),
        )
        doc = self.store.publish_report(week_start.isoformat(), report, message, now)
        if doc:
            self.store.report_outbox.publish_or_leave(doc)
            log.info(
                "weekly service-opinion report published",
                extra={"week_start": week_start.isoformat()},
            )
        return doc is not None

    # -- reading --------------------------------------------------------------------------
    @rpc
    def list_complaints(
        self,
        status=None,
        severity=None,
        patient_id=None,
        category=None,
        department=None,
        limit=50,
        offset=0,
    ):
        query = set_filters(
            {
                "status": status,
                "severity": severity,
                "patient_id": self._current_patient(patient_id),
                "category": category,
                "department": department,
            }
        )
        items, total = self.store.find(query, *page(limit, offset))
        return {"items": [self._public(c) for c in items], "total": total}

    @rpc
    def get_complaint(self, complaint_id):
        return self._public(self.store.get(complaint_id), history=True)

    @rpc
    def weekly_report(self, week_start=None, format="json"):
        now = utcnow()
        if week_start:
            try:
                day = datetime.date.fromisoformat(week_start)
            except ValueError:
                raise BadRequest("invalid week", {"week_start": ["A date YYYY-MM-DD."]}) from None
        else:
            today = now.astimezone(self._tz).date()
            day = today - datetime.timedelta(days=today.weekday() + 7)  # last full week
        start, end = domain.week_bounds(day, self._tz)
        report = domain.weekly_report(
            self.store.received_between(start.timestamp(), end.timestamp()), day, self._tz, now
        )
        return domain.report_csv(report) if format == "csv" else report

    # -- helpers --------------------------------------------------------------------------
    @functools.cached_property
    def _tz(self):
        return zoneinfo.ZoneInfo(self.config["timezone"])

    def _message(self, event_type, complaint, now, extra=None, discriminator=""):
        return outbound.build(
            event_type,
            {
                "complaint_id": complaint["_id"],
                "category": complaint["category"],
                "department": complaint.get("department"),
                "severity": complaint["severity"],
                "channel": complaint["channel"],
                "status": complaint["status"],
                "received_at": complaint["received_at"],
                "ack_due_at": complaint["ack_due_at"],
                "resolve_due_at": complaint["resolve_due_at"],
                "followup_id": complaint.get("followup_id"),
                **(extra or {}),
            },
            event_id=domain.event_id(complaint["_id"], event_type, discriminator),
            patient_id=complaint.get("patient_id"),
            now=now,
        )

    def _public(self, complaint, history=False):
        body = {field: complaint.get(field) for field in PUBLIC}
        body["complaint_id"] = complaint["_id"]
        if history:
            body["history"] = [
                json.loads(h) if isinstance(h, str) else h for h in complaint.get("history") or []
            ]
        return body
