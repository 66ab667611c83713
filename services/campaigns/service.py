"""CampaignsService: outreach campaigns with consent (docs/RULES.md § Campaigns).

A manager defines a segment, a channel (SMS through the notifier, or call tasks that followup
puts in the agents' worklist), a template in both languages and a time (or a holiday). On
that time a timer targets the segment: one delivery per person, whose status says whether
and why the person is reached. The same timer sends what is due, each delivery claimed
atomically first (docs/ARCHITECTURE.md rule 5), so every person gets each campaign once
whatever the replicas and restarts. Only people with marketing consent are reached, outside
quiet hours and within the per-day limit; an opt-out (an agent's note, an SMS reply)
withdraws the consent and is published (MarketingConsentWithdrawn).

The people come from intake's canonical events, kept here (rule 1): domain.person_view.
"""

import datetime
import functools
import logging
import uuid
import zoneinfo

import holidays
from prometheus_client import Counter

from services.campaigns import domain
from services.campaigns.config import CampaignsConfig
from services.campaigns.privacy import CampaignsPrivacyMixin
from services.campaigns.store import CampaignsStore
from shared import aliases, outbound
from shared.clock import utcnow
from shared.errors import BadRequest, InvalidMessage
from shared.messaging import reliable_consumer, rpc
from shared.metrics import MetricsServer
from shared.notifier import notifier_for
from shared.paging import page
from shared.phones import phone_digits
from shared.privacy import ERASED_EVENT
from shared.service import HealthMixin
from shared.timers import configured_timer
from shared.times import aware_time

log = logging.getLogger(__name__)

DELIVERIES = Counter(
    "hcrm_campaign_deliveries_total", "Campaign deliveries by final status", ["channel", "status"]
)
MAX_SEND_ATTEMPTS = 5  # a notifier that keeps failing: the delivery is given up ("failed")
CHUNK = 1000
PUBLIC = (
    "name",
    "segment",
    "channel",
    "template",
    "language",
    "holiday",
    "send_at",
    "status",
    "created_by",
    "created_at",
    "targeted_at",
    "done_at",
)


@functools.cache
def _calendar(country):
    return holidays.country_holidays(country, language="en_US")


class CampaignsService(CampaignsPrivacyMixin, HealthMixin):
    name = "campaigns"
    config_schema = CampaignsConfig

    store = CampaignsStore()
    metrics = MetricsServer()

    # -- the people (intake's events) ----------------------------------------------------------
    @reliable_consumer("campaigns.inbound")
    def handle_event(self, message):
        event = message.body
        if (
            not isinstance(event, dict)
            or not event.get("event_id")
            or not event.get("patient_id")
            or not event.get("event_type")
            or not event.get("occurred_at")
        ):
            raise InvalidMessage(
                {
                    "_schema": [
                        "A canonical event with event_id, event_type, occurred_at and patient_id."
                    ]
                }
            )
        if event["event_type"] == ERASED_EVENT:
            return self.erase_patient(event)  # the person's data goes (privacy.py)
        patient_id = self.store.live_patient_id(event["patient_id"])
        if event["event_type"] == "PatientsMerged":
            retired = (event.get("data") or {}).get("merged_patient_id")
            if not retired:
                raise InvalidMessage(
                    {"data": {"merged_patient_id": ["The retired record's patient_id."]}}
                )
            if aliases.merge_is_usable(retired, patient_id, self.store.alias_of):
                patient_id = self.store.merge(retired, patient_id)
        self.store.record_event(event, patient_id)
        self._project(patient_id)
        # A merge handled meanwhile by another worker may have retired this person.
        survivor = self.store.live_patient_id(patient_id)
        if survivor != patient_id:
            self.store.repoint(patient_id, survivor)
            self._project(survivor)

    def _project(self, patient_id):
        self.store.save_view(patient_id, domain.person_view(self.store.events_of(patient_id)))

    # -- campaigns --------------------------------------------------------------------------------
    @rpc
    def create_campaign(
        self,
        name,
        segment,
        channel,
        template,
        send_at=None,
        holiday=None,
        language=None,
        created_by=None,
    ):
        errors = domain.segment_errors(segment)
        if channel not in domain.CHANNELS:
            errors["channel"] = ["sms or call."]
        if (send_at is None) == (holiday is None):
            errors["send_at"] = ["Give send_at or holiday (one of the two)."]
        now = utcnow()
        send = None
        if holiday is not None:
            if holiday not in domain.HOLIDAYS:
                errors["holiday"] = [f"One of: {', '.join(domain.HOLIDAYS)}."]
            else:
                day = domain.holiday_date(
                    self._calendar_years, holiday, now.astimezone(self._tz).date()
                )
                if day is None:
                    errors["holiday"] = [
                        f"Not in the {self.config['holiday_country']} holiday calendar."
                    ]
                else:
                    send = domain.send_time(day, self.config["holiday_send_time"], self._tz)
        elif send_at is not None:
            send = aware_time(send_at, "send_at")
        if errors:
            raise BadRequest("invalid campaign", errors)
        doc = {
            "_id": str(uuid.uuid4()),
            "name": name,
            "segment": segment or {},
            "channel": channel,
            "template": {"zh": template["zh"], "en": template["en"]},
            "language": language or self.config["default_language"],
            "holiday": holiday,
            "send_at": send.isoformat(),
            "send_ts": send.timestamp(),
            "status": "scheduled",
            "claim_until_ts": 0,
            "created_by": created_by,
            "created_at": now.isoformat(),
        }
        self.store.insert_campaign(doc)
        log.info(
            "campaign scheduled",
            extra={"campaign_id": doc["_id"], "channel": channel, "send_at": doc["send_at"]},
        )
        return self._public(doc)

    @rpc
    def get_campaign(self, campaign_id):
        """The campaign with its figures (docs/RULES.md § Campaigns)."""
        campaign = self.store.campaign(campaign_id)
        deliveries = self.store.deliveries_of(campaign_id)
        known = {doc["_id"]: doc.get("to") for doc in self.store.db.aliases.find({})}
        live = {
            d["patient_id"]: aliases.resolve(d["patient_id"], known.get)
            for d in deliveries
            if d["status"] in domain.REACHED
        }
        views = self.store.views(set(live.values())) if live else {}

        def visits_of(patient_id):
            view = views.get(live.get(patient_id, patient_id)) or {}
            return [visit[0] for visit in view.get("visits") or []]

        figures = domain.report(deliveries, visits_of, self.config["return_window_days"])
        return {**self._public(campaign), **figures}

    @rpc
    def list_campaigns(self, status=None, limit=50, offset=0):
        docs, total = self.store.campaigns(*page(limit, offset), status)
        rules = {key: self.config[key] for key in ("quiet_start", "quiet_end", "daily_limit")}
        return {"items": [self._public(doc) for doc in docs], "total": total, "rules": rules}

    @rpc
    def upcoming_holidays(self):
        """The next occurrence of each holiday a greeting may be scheduled for, with its send
        time."""
        today = utcnow().astimezone(self._tz).date()
        items = []
        for key in domain.HOLIDAYS:
            day = domain.holiday_date(self._calendar_years, key, today)
            if day is not None:
                items.append(
                    {
                        "holiday": key,
                        "date": day.isoformat(),
                        "send_at": domain.send_time(
                            day, self.config["holiday_send_time"], self._tz
                        ).isoformat(),
                    }
                )
        return {
            "country": self.config["holiday_country"],
            "items": sorted(items, key=lambda i: i["date"]),
        }

    # -- consent ----------------------------------------------------------------------------------
    @rpc
    def opt_out(self, patient_id, via="agent", note=None, actor=None):
        """The person withdraws marketing consent (an agent's note, or an SMS reply): no campaign
        reaches them any more, and MarketingConsentWithdrawn tells the other services."""
        now = utcnow()
        patient_id = self.store.live_patient_id(patient_id)

        def message(count):
            return self._message(
                "MarketingConsentWithdrawn",
                patient_id,
                patient_id,
                now,
                {"via": via, "withdrawn_at": now.isoformat()},
                discriminator=count,
            )

        doc = self.store.withdraw(
            patient_id, {"via": via, "note": note, "by": actor, "at": now.isoformat()}, message, now
        )
        if doc is not None:
            self.store.opt_out_outbox.publish_or_leave(doc)
            log.info("marketing consent withdrawn", extra={"patient_id": patient_id, "via": via})
        return self._consent(patient_id, changed=doc is not None)

    @rpc
    def restore_consent(self, patient_id, actor=None):
        """The person consented again (in writing, to the hospital): the opt-out is lifted; the
        marketing consent the hospital's systems state applies again."""
        now = utcnow()
        patient_id = self.store.live_patient_id(patient_id)

        def message(count):
            return self._message(
                "MarketingConsentRestored",
                patient_id,
                patient_id,
                now,
                {"restored_at": now.isoformat()},
                discriminator=count,
            )

        doc = self.store.restore(
            patient_id, {"restored_by": actor, "restored_at": now.isoformat()}, message, now
        )
        if doc is not None:
            self.store.opt_out_outbox.publish_or_leave(doc)
        return self._consent(patient_id, changed=doc is not None)

    @rpc
    def consent(self, patient_id):
        return self._consent(self.store.live_patient_id(patient_id))

    @rpc
    def sms_reply(self, phone, text, reply_id=None):
        """A patient's SMS reply, from the SMS gateway: an opt-out keyword withdraws the marketing
        consent of everyone campaigns knows with that number. Answers how many, never who."""
        if not domain.is_opt_out(text, self.config["opt_out_keywords"]):
            return {"opt_out": False, "patients": 0}
        people = self.store.people_with_phone(phone_digits(phone))
        changed = sum(self.opt_out(pid, via="sms_reply")["changed"] for pid in people)
        log.info(
            "opt-out by SMS reply",
            extra={"reply_id": reply_id, "patients": len(people), "changed": changed},
        )
        return {"opt_out": True, "patients": len(people)}

    def _consent(self, patient_id, changed=None):
        view = self.store.view_of(patient_id) or {}
        opt_out = self.store.opt_out_of(patient_id) or {}
        withdrawn = opt_out.get("state") == "withdrawn"
        body = {
            "patient_id": patient_id,
            "marketing_consent": bool(view.get("marketing_consent")) and not withdrawn,
            "stated_marketing_consent": bool(view.get("marketing_consent")),
            "opted_out": withdrawn,
            "opted_out_at": opt_out.get("at") if withdrawn else None,
            "opted_out_via": opt_out.get("via") if withdrawn else None,
        }
        if changed is not None:
            body["changed"] = changed
        return body

    # -- the timer: target, send, finish -----------------------------------------------------------
    @configured_timer("timer_interval_s")
    def run_campaigns(self):
        now = utcnow()
        for campaign in self.store.with_status("scheduled") + self.store.with_status("targeting"):
            if (
                campaign["send_ts"] <= now.timestamp()
                and campaign.get("claim_until_ts", 0) < now.timestamp()
            ):
                self._target(campaign, now)
        drained = self._send_due(now)
        if drained:
            for campaign in self.store.with_status("sending"):
                if not self.store.waiting_of(campaign["_id"]):
                    self.store.set_campaign(
                        campaign["_id"], "sending", {"status": "done", "done_at": now.isoformat()}
                    )

    def _target(self, campaign, now):
        """One delivery per person in the segment on the campaign's day: pending, or final with
        the reason the person is not reached. Idempotent (the deliveries' unique ids), so a
        targeting cut short is simply run again by whoever claims it next."""
        claimed = self.store.claim_campaign(
            campaign, "targeting", now.timestamp(), self.config["claim_seconds"]
        )
        if claimed is None:
            return
        day = datetime.datetime.fromtimestamp(claimed["send_ts"], self._tz).date()
        opted = self.store.opted_out()
        retired = self.store.retired_ids()  # a view a racing worker left under a merged-away id
        docs = []
        for patient_id, view in self.store.views().items():
            if patient_id in retired or not domain.matches(view, claimed["segment"], day, self._tz):
                continue
            why = domain.exclusion(view, patient_id in opted)
            docs.append(
                self._delivery(
                    claimed,
                    patient_id,
                    why or domain.PENDING,
                    claimed["send_ts"] if why is None else domain.DONE_TS,
                    now,
                )
            )
        added = sum(
            self.store.add_deliveries(docs[at : at + CHUNK]) for at in range(0, len(docs), CHUNK)
        )
        self.store.set_campaign(
            claimed["_id"], "targeting", {"status": "sending", "targeted_at": now.isoformat()}
        )
        log.info(
            "campaign targeted",
            extra={"campaign_id": claimed["_id"], "targeted": len(docs), "new": added},
        )

    @staticmethod
    def _delivery(campaign, patient_id, status, queue_ts, now):
        return {
            "_id": domain.delivery_id(campaign["_id"], patient_id),
            "campaign_id": campaign["_id"],
            "patient_id": patient_id,
            "channel": campaign["channel"],
            "status": status,
            "queue_ts": queue_ts,
            "reached_ts": 0,
            "attempts": 0,
            "created_at": now.isoformat(),
        }

    def _send_due(self, now):
        """Send the deliveries due now, a batch per round; outside quiet hours only. Returns
        True when nothing more is due now."""
        config = self.config
        if domain.in_quiet_hours(now, self._tz, config["quiet_start"], config["quiet_end"]):
            return False
        due = self.store.due_deliveries(now.timestamp(), config["send_batch"])
        campaigns = {}
        for delivery in due:
            claimed = self.store.claim_delivery(delivery, now.timestamp(), config["claim_seconds"])
            if claimed is None:
                continue  # another replica has it
            if claimed["campaign_id"] not in campaigns:
                campaigns[claimed["campaign_id"]] = self.store.campaign(claimed["campaign_id"])
            self._send(campaigns[claimed["campaign_id"]], claimed, now)
        return len(due) < config["send_batch"]

    def _send(self, campaign, claimed, now):
        config, patient_id = self.config, claimed["patient_id"]
        survivor = self.store.live_patient_id(patient_id)
        if survivor != patient_id:  # merged since the targeting: the one person gets one message
            self._finish(claimed, domain.MERGED, now)
            self.store.add_deliveries(
                [self._delivery(campaign, survivor, domain.PENDING, now.timestamp(), now)]
            )
            return
        view = self.store.view_of(patient_id)
        why = (
            domain.ERASED
            if view is None
            else domain.exclusion(view, self.store.is_opted_out(patient_id))
        )
        if why:
            self._finish(claimed, why, now)
            return
        slot = self.store.take_daily_slot(
            domain.daily_slot_ids(patient_id, now, self._tz, config["daily_limit"]),
            claimed["_id"],
            patient_id,
        )
        if slot is None:  # the person had their campaign messages of the day
            later = domain.next_day(now, self._tz, config["quiet_start"], config["quiet_end"])
            self.store.defer_delivery(claimed, later.timestamp(), "daily_limit")
            return
        if campaign["channel"] == "sms":
            if not self._deliver_sms(campaign, claimed, view, now):
                return
            data = {"sent_at": now.isoformat()}
            self._finish(claimed, domain.SENT, now, [("CampaignMessageSent", data)], reached=True)
        else:
            data = {
                "requested_at": now.isoformat(),
                "campaign_name": campaign["name"],
                "department": (campaign.get("segment") or {}).get("department"),
                "script": campaign["template"],
            }
            self._finish(
                claimed, domain.CALL_REQUESTED, now, [("CampaignCallRequested", data)], reached=True
            )

    def _deliver_sms(self, campaign, claimed, view, now):
        """Hand the message to the notifier, idempotent by the delivery's id: a sender taking
        over after a crash hands over the same message again, never a second one."""
        language = campaign.get("language") or self.config["default_language"]
        notification = {
            "_id": f"campaign:{claimed['_id']}",
            "campaign_id": campaign["_id"],
            "delivery_id": claimed["_id"],
            "patient_id": claimed["patient_id"],
            "kind": "sms",
            "purpose": "campaign",
            "language": language,
            "phone": view["phone"],
            "text": domain.render(campaign["template"], language, view.get("name")),
            "created_at": now.isoformat(),
        }
        try:
            notifier_for(self.config, self.store.db).send(notification)
            return True
        except Exception as exc:  # tried again when the claim runs out, up to MAX_SEND_ATTEMPTS
            attempts = (
                self.store.db.deliveries.find_one_and_update(
                    {"_id": claimed["_id"]}, {"$inc": {"attempts": 1}}, projection={"attempts": 1}
                )["attempts"]
                + 1
            )
            log.error(
                "campaign message could not be delivered",
                extra={
                    "delivery_id": claimed["_id"],
                    "attempts": attempts,
                    "reason": exc.__class__.__name__,
                },
            )
            if attempts >= MAX_SEND_ATTEMPTS:
                self._finish(claimed, "failed", now)
            return False

    def _finish(self, claimed, status, now, events=(), reached=False):
        fields = {"status": status, "finished_at": now.isoformat()}
        if reached:
            fields.update(reached_ts=now.timestamp(), reached_at=now.isoformat())
        messages = [
            (
                kind,
                self._message(
                    kind,
                    claimed["_id"],
                    claimed["patient_id"],
                    now,
                    {
                        "campaign_id": claimed["campaign_id"],
                        "delivery_id": claimed["_id"],
                        "channel": claimed["channel"],
                        **data,
                    },
                ),
            )
            for kind, data in events
        ]
        done = self.store.finish_delivery(claimed, fields, messages, now)
        if done is not None:
            DELIVERIES.labels(claimed["channel"], status).inc()
            if messages:
                self.store.outbox.publish_or_leave(done)
        return done

    # -- timers and helpers ------------------------------------------------------------------------
    @configured_timer("outbox_relay_interval_s")
    def relay_outbox(self):
        self.store.relay()

    @functools.cached_property
    def _tz(self):
        return zoneinfo.ZoneInfo(self.config["timezone"])

    def _calendar_years(self, years):
        calendar = _calendar(self.config["holiday_country"])
        for year in years:
            calendar.get(datetime.date(year, 1, 1))  # loads the year (the calendar expands lazily)
        return {day: name for day, name in calendar.items() if day.year in years}

    def _message(self, event_type, subject_id, patient_id, now, data, discriminator=""):
        return outbound.build(
            event_type,
            data,
            patient_id=patient_id,
            now=now,
            event_id=domain.event_id(subject_id, event_type, discriminator),
        )

    @staticmethod
    def _public(doc):
        return {"campaign_id": doc["_id"], **{field: doc.get(field) for field in PUBLIC}}
