"""FollowupService: intake's events (and no-shows) in, the center's call tasks out.

docs/DOMAIN.md: call every outpatient the next day, every discharged patient within
two business days, check recovery, remind the return visit, call prospects back. A low
satisfaction score opens a complaint by an event (service recovery).
"""

import datetime
import functools
import json
import logging
import zoneinfo

import holidays
from prometheus_client import Counter, Gauge, Histogram

from services.followup import domain
from services.followup import survey as surveys
from services.followup.config import FollowupConfig, rules_of, scripts_of
from services.followup.privacy import FollowupPrivacyMixin
from services.followup.store import FollowupStore, local_day_bounds
from shared import outbound
from shared.clock import utcnow
from shared.errors import BadRequest, InvalidMessage
from shared.messaging import reliable_batch_consumer, rpc
from shared.metrics import MetricsServer
from shared.notifier import notifier_for
from shared.paging import page
from shared.phones import phone_digits
from shared.privacy import ERASED_EVENT
from shared.service import HealthMixin
from shared.timers import configured_timer
from shared.times import aware_time

log = logging.getLogger(__name__)

# The most events one batch handles: what arrived together, without waiting for more (the
# worklist should show a visit's call at once).
BATCH_MAX = 100
# Events that may void a visit: a prospect call waits for a visit that still counts.
VOIDING = ("PatientVisited", "VisitCancelled", "PatientsMerged")

TASKS_CREATED = Counter("hcrm_followups_created_total", "Follow-up tasks scheduled", ["kind"])
TASKS_COMPLETED = Counter(
    "hcrm_followups_completed_total", "Follow-up tasks completed", ["kind", "outcome"]
)
TASKS_CANCELLED = Counter("hcrm_followups_cancelled_total", "Follow-up tasks cancelled", ["reason"])
TASKS_DUE = Gauge("hcrm_followups_due", "Pending follow-ups due today (hospital time zone)")
TASKS_OVERDUE = Gauge("hcrm_followups_overdue", "Pending follow-ups past their due time")
CALL_LATENESS = Histogram(
    "hcrm_followup_lateness_seconds",
    "How late after due_at a call was made",
    ["kind"],
    buckets=(0, 3600, 4 * 3600, 12 * 3600, 86400, 2 * 86400, 7 * 86400),
)
PUBLIC = (
    "patient_id",
    "kind",
    "department",
    "reason",
    "due_at",
    "status",
    "outcome",
    "satisfaction",
    "notes",
    "attempts",
    "claimed_by",
    "completed_at",
    "completed_by",
    "cancel_reason",
    "patient_name",
    "doctor_id",
    "survey",
    "survey_channel",
    "survey_state",
)


@functools.lru_cache(maxsize=8192)
def is_holiday(country, day):
    """Cached per day: a lookup in the holidays calendar re-checks its years on every call,
    an eighth of followup's CPU per event uncached (bench/README.md)."""
    return day in _calendar(country)


@functools.cache
def _calendar(country):
    return holidays.country_holidays(country)


class FollowupService(FollowupPrivacyMixin, HealthMixin):
    name = "followup"
    config_schema = FollowupConfig

    store = FollowupStore()
    metrics = MetricsServer()

    # -- scheduling -----------------------------------------------------------------------
    @reliable_batch_consumer(
        "followup.inbound", max_batch=BATCH_MAX, check=lambda inbound: _checked(inbound.body)
    )
    def handle_events(self, messages):
        """The events that arrived together, in bulk: one read of their people's aliases, one
        insert of the events, one read of each person's history for the batch and one insert
        of the new tasks, instead of several round trips per event.

        Every message is checked as it arrives (`check`), so a bad one is rejected alone and
        never joins a batch; called directly, the handler checks every message before anything
        is written (shared/messaging.BatchReliableConsumer). Every write is idempotent, so a
        batch that crashed half-way is completed by its redelivery.
        """
        events = [message.checked or _checked(message.body) for message in messages]
        now = utcnow()
        # An erasure or a merge changes who the person is: handled one at a time, in its
        # place among the others, as the consumer of one message did.
        run = []
        for event in events:
            if event["event_type"] in (ERASED_EVENT, "PatientsMerged"):
                self._handle_together(run, now)
                run = []
                self._handle_alone(event, now)
            else:
                run.append(event)
        self._handle_together(run, now)

    def _handle_alone(self, event, now):
        """An erasure, or a merge: the retired id's events and tasks move to the survivor."""
        if event["event_type"] == ERASED_EVENT:
            return self.erase_patient(event)  # the person's data goes (privacy.py)
        patient_id = self.store.resolve(event["patient_id"])  # a retired id: its survivor
        self.store.record_events([(event, patient_id)])
        patient_id = self.store.merge(
            event["data"]["merged_patient_id"], patient_id, event["event_id"], now
        )
        self._replan({patient_id: [event]}, now, merged=True)
        self._follow_merges({patient_id: [event]}, now)

    def _handle_together(self, events, now):
        """Events that change no one's identity: filed under each person's live id, then
        each person's tasks planned once for all of their events in the batch."""
        if not events:
            return
        live = self.store.resolve_many({event["patient_id"] for event in events})
        self.store.record_events([(event, live[event["patient_id"]]) for event in events])
        people = {}
        for event in events:
            people.setdefault(live[event["patient_id"]], []).append(event)
        self._replan(people, now)
        self._follow_merges(people, now)

    def _follow_merges(self, people, now):
        """A merge handled meanwhile by another worker may have retired one of these people:
        what was just filed under the retired id follows it (FollowupStore.repoint)."""
        live = self.store.resolve_many(set(people))
        moved = {}
        for patient_id, events in people.items():
            if live[patient_id] != patient_id:
                self.store.repoint(patient_id, live[patient_id])
                moved.setdefault(live[patient_id], []).extend(events)
        if moved:
            self._replan(moved, now, merged=True)

    def _replan(self, people, now, merged=False):
        """Make each person's tasks match what all of their events call for (domain.reconcile).
        `people`: {live patient_id: the events just received for them}."""
        histories = self.store.events_of_many(set(people))
        rules, departments = rules_of(self.config)
        touched, planned, contacts, visits = [], [], {}, []
        for patient_id, received in people.items():
            events = histories.get(patient_id, [])
            contacts[patient_id] = contact = domain.contact_of(events)
            void = domain.void_reasons(events)
            if any(e["event_type"] in VOIDING for e in received):
                self.store.forget_visits(
                    [event_id for event_id, why in void.items() if why == "visit_cancelled"]
                )
            plan = domain.plan(
                patient_id, events, self._tz, self._is_holiday, rules, departments, void
            )
            tasks = self.store.tasks_of(patient_id) if domain.history_matters(events, void) else []
            changes = domain.reconcile(patient_id, plan, tasks, void)
            touched += [self._cancel(task, reason, now) for task, reason in changes.cancel]
            planned.append(
                (patient_id, changes.insert, contact, self._message_maker(patient_id, now))
            )
            visits += [
                event
                for event in received
                if event["event_type"] == "PatientVisited" and event["event_id"] not in void
            ]
        for doc in self.store.schedule_many(planned, now):
            TASKS_CREATED.labels(doc["kind"]).inc()
            self.store.outbox.publish_new(doc)
            if doc["kind"] == domain.PROSPECT_CALL and self.store.visited_since(
                doc["phone_digits"], doc["anchor_ts"]
            ):
                touched.append(self._cancel(doc, "visited", now))
        for patient_id, received in people.items():
            contact = contacts[patient_id]
            if not contact.callable:  # deceased, consent withdrawn: never call again
                touched += [
                    self._cancel(task, contact.why_not, now)
                    for task in self.store.pending_of(patient_id)
                ]
            elif any(e["event_type"] == "MarketingConsentWithdrawn" for e in received):
                touched += [  # campaigns: no campaign call any more
                    self._cancel(task, "no_consent", now)
                    for task in self.store.pending_of(patient_id)
                    if task["kind"] == domain.CAMPAIGN_CALL
                ]
            elif merged:  # the pending tasks of both records now show the one person
                self.store.restate_contact(patient_id, contact)
        # The prospect came: no need to call.
        touched += [
            self._cancel(task, "visited", now)
            for task in self.store.pending_prospect_calls_many(
                [
                    (
                        phone_digits((event["data"].get("patient") or {}).get("phone")),
                        domain.parse_time(event["data"]["visited_at"]).timestamp(),
                    )
                    for event in visits
                ]
            )
        ]
        for doc in filter(None, touched):
            self.store.outbox.publish_or_leave(doc)

    def _cancel(self, task, reason, now):
        doc = self.store.cancel(
            task["_id"],
            reason,
            self._message("FollowUpCancelled", task, now, {"reason": reason}),
            now,
        )
        if doc:
            TASKS_CANCELLED.labels(reason).inc()
        return doc

    # -- agents' work ---------------------------------------------------------------------
    @rpc
    def list_followups(
        self,
        status=None,
        kind=None,
        patient_id=None,
        department=None,
        due_after=None,
        due_before=None,
        overdue=None,
        due_today=None,
        limit=50,
        offset=0,
    ):
        now = utcnow()
        query = {}
        if patient_id:  # a retired record's id lists the person it was merged into
            patient_id = self.store.resolve(patient_id)
        for field, value in (
            ("status", status),
            ("kind", kind),
            ("patient_id", patient_id),
            ("department", department),
        ):
            if value:
                query[field] = value
        due = {}
        if due_after:
            due["$gte"] = aware_time(due_after, "due_after").timestamp()
        if due_before:
            due["$lte"] = aware_time(due_before, "due_before").timestamp()
        if overdue:
            query["status"] = domain.PENDING
            due["$lt"] = now.timestamp()
        if due_today:
            _start, end = local_day_bounds(now.astimezone(self._tz).date(), self._tz)
            query["status"] = domain.PENDING
            due["$lt"] = min(due.get("$lt", end), end)
        if due:
            query["due_ts"] = due
        items, total = self.store.find(query, *page(limit, offset))
        return {"items": [self._public(task, now) for task in items], "total": total}

    @rpc
    def get_followup(self, followup_id):
        return self._public(self.store.get(followup_id), utcnow())

    @rpc
    def contact(self, followup_id):
        """The number to dial; the gateway audits who asked."""
        task = self.store.get(followup_id)
        events = self.store.events_of(task["patient_id"])
        return {
            "followup_id": followup_id,
            "patient_id": task["patient_id"],
            "phone": domain.contact_of(events).phone,
        }

    @rpc
    def claim(self, followup_id, agent):
        return self._public(
            self.store.claim(followup_id, agent, utcnow(), self.config["claim_minutes"]), utcnow()
        )

    @rpc
    def complete(
        self,
        followup_id,
        outcome,
        agent=None,
        satisfaction=None,
        notes=None,
        complaint_text=None,
        survey=None,
    ):
        errors = {}
        if outcome not in domain.OUTCOMES:
            errors["outcome"] = [f"Must be one of: {', '.join(domain.OUTCOMES)}."]
        if satisfaction is not None and (
            isinstance(satisfaction, bool)
            or not isinstance(satisfaction, int)
            or not 1 <= satisfaction <= 5
        ):
            errors["satisfaction"] = ["An integer from 1 to 5."]
        if survey is not None:  # answered during the call: the patient was reached
            reached = outcome == domain.REACHED
            errors.update(
                surveys.scores_errors(survey, self._survey_items)
                if reached
                else {"survey": ["Only with outcome reached."]}
            )
        if errors:
            raise BadRequest("invalid completion", errors)
        now = utcnow()
        task = self.store.get(followup_id)
        step, retry_due = domain.completion(
            task, outcome, now, self.config["max_attempts"], self._tz
        )
        attempts = task.get("attempts", 0) + 1
        fields = {
            "attempts": attempts,
            "last_outcome": outcome,
            "notes": notes,
            "claimed_by": None,
            "claim_until_ts": 0.0,
        }
        messages = []
        # Every outcome recorded is a call of the agent's (docs/RULES.md § Agents): its event
        # carries who, which attempt, and the due_at it was made against (data.due_at).
        call = {"outcome": outcome, "agent": agent, "completed_by": agent, "attempts": attempts}
        if step == "retry":  # an unreachable patient is tried again the next day
            fields.update(due_at=retry_due.isoformat(), due_ts=retry_due.timestamp())
            messages.append(
                (
                    "FollowUpAttempted",
                    self._message(
                        "FollowUpAttempted",
                        task,
                        now,
                        {
                            **call,
                            "recorded_at": now.isoformat(),
                            "next_due_at": retry_due.isoformat(),
                        },
                    ),
                )
            )
        else:
            scores = surveys.ordered(survey, self._survey_items) if survey else None
            low = surveys.low_items(scores)
            fields.update(
                status=domain.DONE,
                outcome=outcome,
                satisfaction=satisfaction,
                completed_at=now.isoformat(),
                completed_by=agent,
                complaint=complaint_text,
            )
            if scores:
                fields.update(
                    survey=scores,
                    survey_channel="call",
                    survey_state="answered",
                    survey_answered_at=now.isoformat(),
                )
            elif surveys.link_wanted(
                task, outcome, False, self.config["survey_links"], self.config["survey_link_kinds"]
            ):
                fields["survey_state"] = "to_send"  # the timer sends it (send_survey_links)
            extra = {**call, "satisfaction": satisfaction, "completed_at": now.isoformat()}
            messages.append(
                ("FollowUpCompleted", self._message("FollowUpCompleted", task, now, extra))
            )
            if satisfaction is not None:
                messages.append(
                    (
                        "SatisfactionRecorded",
                        self._message(
                            "SatisfactionRecorded",
                            task,
                            now,
                            {"satisfaction": satisfaction, "agent": agent},
                        ),
                    )
                )
            if scores:
                messages.append(("SurveyAnswered", self._survey_message(task, scores, "call", now)))
            if domain.needs_recovery(satisfaction, complaint_text, low):
                messages.append(
                    (
                        "ServiceRecoveryRequested",
                        self._message(
                            "ServiceRecoveryRequested",
                            task,
                            now,
                            {
                                "satisfaction": satisfaction,
                                "complaint": complaint_text,
                                "notes": notes,
                                "agent": agent,
                                **({"low_items": low} if low else {}),
                            },
                        ),
                    )
                )
        done = self.store.complete(task, fields, messages, now, agent)
        if step == "done":
            TASKS_COMPLETED.labels(task["kind"], outcome).inc()
            CALL_LATENESS.labels(task["kind"]).observe(max(0.0, now.timestamp() - task["due_ts"]))
        self.store.outbox.publish_or_leave(done)
        return self._public(done, now)

    # -- surveys by link (services/followup/survey.py; the gateway's /survey pages) --------
    @rpc
    def survey_form(self, token):
        """What the public survey page shows for a link: its state and, while open, the
        department, the day of the visit or discharge and the items; nothing about the person."""
        task = self._survey_task(token)
        if task is None:
            return {"status": "unknown"}
        state = surveys.link_state(task, utcnow().timestamp())
        if state != "open":
            return {"status": state}
        return {
            "status": "open",
            "department": task.get("department"),
            "visit_date": surveys.visit_date(task, self._tz),
            "expires_at": task.get("survey_expires_at"),
            "items": [dict(item) for item in self._survey_items],
        }

    @rpc
    def answer_survey(self, token, scores):
        """The patient's answer through the link: once, before it expires. Answers
        {"status": "answered"} or the state that refused it ("used", "expired", "unknown")."""
        task = self._survey_task(token)
        if task is None:
            return {"status": "unknown"}
        now = utcnow()
        state = surveys.link_state(task, now.timestamp())
        if state != "open":
            return {"status": state}
        errors = surveys.scores_errors(scores, self._survey_items)
        if errors:
            raise BadRequest("invalid survey", errors)
        scores = surveys.ordered(scores, self._survey_items)
        low = surveys.low_items(scores)
        messages = [("SurveyAnswered", self._survey_message(task, scores, "link", now))]
        if low:
            messages.append(
                (
                    "ServiceRecoveryRequested",
                    self._message(
                        "ServiceRecoveryRequested",
                        task,
                        now,
                        {
                            "satisfaction": None,
                            "complaint": None,
                            "notes": None,
                            "agent": None,
                            "low_items": low,
                        },
                        discriminator="survey",
                    ),
                )
            )
        done = self.store.answer_survey(
            task,
            now.timestamp(),
            {
                "survey": scores,
                "survey_channel": "link",
                "survey_state": "answered",
                "survey_answered_at": now.isoformat(),
            },
            messages,
            now,
        )
        if done is None:  # answered or expired a moment ago
            return {"status": surveys.link_state(self.store.get(task["_id"]), now.timestamp())}
        self.store.outbox.publish_or_leave(done)
        return {"status": "answered"}

    def _survey_task(self, token):
        if not surveys.token_is_well_formed(token):
            return None
        return self.store.by_survey_hash(surveys.token_hash(token))

    @configured_timer("survey_link_interval_s")
    def send_survey_links(self):
        now = utcnow()
        return sum(self._send_link(task, now) for task in self.store.links_to_send())

    def _send_link(self, task, now):
        """Send one task's survey link: claimed first (one sender whatever the replicas); the
        token exists only in the message, the task keeps its hash. A person who may no longer
        be contacted gets none."""
        contact = domain.contact_of(self.store.events_of(task["patient_id"]))
        if not contact.callable:
            self.store.claim_link(task["_id"], {"survey_state": f"skipped_{contact.why_not}"})
            return False
        token, hashed = surveys.new_token()
        days = self.config["survey_link_days"]
        expires = now + datetime.timedelta(days=days)
        if (
            self.store.claim_link(
                task["_id"],
                {
                    "survey_state": "sent",
                    "survey_token_hash": hashed,
                    "survey_expires_ts": expires.timestamp(),
                    "survey_expires_at": expires.isoformat(),
                    "survey_sent_at": now.isoformat(),
                },
            )
            is None
        ):
            return False
        language = self.config["survey_language"]
        text = surveys.link_text(
            self.config["survey_link_text"],
            language,
            task.get("department"),
            surveys.visit_date(task, self._tz),
            surveys.link_url(self.config["survey_link_base"], token),
            days,
        )
        notification = {
            "_id": f"survey:{task['_id']}",
            "followup_id": task["_id"],
            "patient_id": task["patient_id"],
            "kind": "sms",
            "purpose": "survey",
            "language": language,
            "phone": contact.phone,
            "text": text,
            "expires_at": expires.isoformat(),
            "created_at": now.isoformat(),
        }
        try:
            notifier_for(self.config, self.store.db).send(notification)
        except Exception as exc:  # the link stays valid; the notifier's own retries are its concern
            log.error(
                "survey link could not be delivered",
                extra={"followup_id": task["_id"], "reason": exc.__class__.__name__},
            )
        return True

    # -- timers ---------------------------------------------------------------------------
    @configured_timer("outbox_relay_interval_s")
    def relay_outbox(self):
        self.store.relay()

    @configured_timer("gauge_interval_s")
    def measure_worklist(self):
        now = utcnow()
        _, end = local_day_bounds(now.astimezone(self._tz).date(), self._tz)
        pending, now_ts = {"status": domain.PENDING}, now.timestamp()
        TASKS_OVERDUE.set(self.store.count({**pending, "due_ts": {"$lt": now_ts}}))
        TASKS_DUE.set(self.store.count({**pending, "due_ts": {"$gte": now_ts, "$lt": end}}))

    # -- helpers --------------------------------------------------------------------------
    @functools.cached_property
    def _tz(self):
        return zoneinfo.ZoneInfo(self.config["timezone"])

    def _is_holiday(self, day):
        return is_holiday(self.config["holiday_country"], day)

    @property
    def _survey_items(self):
        return self.config["survey_items"]

    def _message_maker(self, patient_id, now):
        def make(event_type, planned):
            return self._message(
                event_type,
                {
                    "_id": planned.followup_id,
                    "patient_id": patient_id,
                    "kind": planned.kind,
                    "department": planned.department,
                    "due_at": planned.due_at.isoformat(),
                    "doctor_id": planned.doctor_id,
                    "reason": planned.reason,
                },
                now,
            )

        return make

    def _survey_message(self, task, scores, channel, now):
        """SurveyAnswered: ids, department, doctor and scores only (no free text, nobody's name)."""
        return self._message(
            "SurveyAnswered",
            task,
            now,
            {
                "scores": scores,
                "channel": channel,
                "visit_date": surveys.visit_date(task, self._tz),
                "answered_at": now.isoformat(),
            },
        )

    def _message(self, event_type, task, now, extra=None, discriminator=None):
        if discriminator is None:
            discriminator = (extra or {}).get("attempts", "")
        return outbound.build(
            event_type,
            {
                "followup_id": task["_id"],
                "kind": task["kind"],
                "department": task.get("department"),
                "doctor_id": task.get("doctor_id"),
                "due_at": task["due_at"],
                **({"reason": task["reason"]} if event_type == "FollowUpScheduled" else {}),
                **(extra or {}),
            },
            event_id=domain.event_id(task["_id"], event_type, discriminator),
            patient_id=task["patient_id"],
            now=now,
        )

    def _public(self, task, now):
        body = {field: task.get(field) for field in PUBLIC}
        body["followup_id"] = task["_id"]
        body["overdue"] = domain.is_overdue(task["status"], task["due_ts"], now.timestamp())
        body["history"] = [
            json.loads(entry) if isinstance(entry, str) else entry
            for entry in task.get("history") or []
        ]
        body["script"] = task.get("script") or scripts_of(self.config)[task["kind"]]
        return body


def _checked(event):
    """A canonical event fit to handle, or InvalidMessage naming what is missing."""
    if not isinstance(event, dict) or not event.get("event_id") or not event.get("patient_id"):
        raise InvalidMessage({"_schema": ["A canonical event with event_id and patient_id."]})
    if event["event_type"] == "PatientsMerged" and not (event.get("data") or {}).get(
        "merged_patient_id"
    ):
        raise InvalidMessage({"data": {"merged_patient_id": ["The retired record's patient_id."]}})
    return event
