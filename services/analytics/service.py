"""AnalyticsService: every canonical event in, once; the manager's figures out
(docs/RULES.md § Figures), for any range of days and any department."""

import datetime
import functools
import time
import zoneinfo

from services.analytics import agents as agent_figures
from services.analytics import agents_report, domain, ingest, report
from services.analytics import quality as quality_figures
from services.analytics.config import AnalyticsConfig
from services.analytics.privacy import AnalyticsPrivacyMixin
from services.analytics.store import AnalyticsStore
from shared.errors import BadRequest, InvalidMessage
from shared.messaging import reliable_batch_consumer, rpc
from shared.metrics import MetricsServer
from shared.service import HealthMixin
from shared.timers import configured_timer

MAX_DAYS = domain.MAX_RANGE_DAYS
RUN_DAYS = 7  # the most days a cold range reads at once (a week of a big hospital: ~60k facts)
BATCH_MAX = 100  # events per bulk write (the consumer gathers what arrived together)
# Reports may trail the events by this much; in return a low rate is written in bulk too.
BATCH_LINGER_S = 0.25
ALL = "*"  # the scope of the whole hospital's partials (a department's name otherwise)


def _canonical(event):
    """A canonical event fit to count, or InvalidMessage naming what is missing."""
    if not isinstance(event, dict) or not event.get("event_id") or not event.get("event_type"):
        raise InvalidMessage({"_schema": ["A canonical event with event_id and event_type."]})
    return event


class AnalyticsService(AnalyticsPrivacyMixin, HealthMixin):
    name = "analytics"
    config_schema = AnalyticsConfig

    store = AnalyticsStore()
    metrics = MetricsServer()

    @reliable_batch_consumer(
        "analytics.inbound",
        max_batch=BATCH_MAX,
        linger_s=BATCH_LINGER_S,
        check=lambda inbound: _canonical(inbound.body),
    )
    def handle_events(self, messages):
        """The events that arrived together, written in bulk: a few store round trips for the
        whole batch instead of about five per event. A bad message is rejected alone as it
        arrives (`check`); called directly, the handler checks every message first."""
        events = [message.checked or _canonical(message.body) for message in messages]
        # Writes below are idempotent upserts: a redelivery after a crash completes them. The
        # days they touch are marked changed last, so a partial computed meanwhile goes stale.
        facts = [fact for fact in (domain.fact_of(event, self._tz) for event in events) if fact]
        self.store.add_facts(facts)
        touched = ingest.record_facts(
            self.store, facts
        )  # people, and corrections / merges that came first
        updates = [
            update
            for update in (domain.entity_update(event, self._tz) for event in events)
            if update
        ]
        for (collection, _, fields), before in zip(
            updates, self.store.fold_all(updates), strict=True
        ):
            touched |= domain.entity_days(collection, before, fields)
        touched |= ingest.apply_voids(
            self.store, [void for void in map(domain.void_of, events) if void]
        )
        for merge in filter(None, map(domain.merge_of, events)):
            touched |= ingest.apply_merge(self.store, *merge)
        self.store.touch_days(touched)
        # The agents' work and the survey answers: their own collections, read by range.
        self.store.add_records(
            "agent_work", list(filter(None, (agent_figures.work_of(e, self._tz) for e in events)))
        )
        self.store.add_records(
            "survey_answers",
            list(filter(None, (quality_figures.answer_of(e, self._tz) for e in events))),
        )
        self.erase_from_batch(
            events
        )  # PatientErased: the person's MRN and phone key go (privacy.py)
        # Last: the batch's minimal copies for the analytics stream (privacy.py),
        # through the outbox.
        self.append_to_stream(events)

    @configured_timer("figures_refresh_interval_s")
    def refresh_day_figures(self):
        """Recompute the partials of each day changed since its last refresh: the whole
        hospital's and every department's, so a manager's query finds them ready. A day
        still changing is recomputed at most every figures_refresh_max_delay_s (pacing.py)."""
        dirty = self.store.dirty_days(self.config["figures_refresh_batch"])
        if not dirty:
            return
        scopes = {ALL} | self.store.cached_scopes()
        deadline = time.monotonic() + self.config["figures_refresh_budget_s"]
        pacer, max_delay_s = self.store.refresh_pacer, self.config["figures_refresh_max_delay_s"]
        for day, n in dirty:
            if time.monotonic() > deadline:  # a bulk import dirties many days: share the store
                break
            if not pacer.due(day, n, time.monotonic(), max_delay_s):
                continue  # still changing: recomputed now, it would be stale within seconds
            moment = datetime.date.fromisoformat(day)
            by_scope = self._partials(moment, moment, None, scopes=scopes)[day]
            first_seen = set(by_scope[ALL]["by_department"]) - scopes  # a department new today
            if first_seen:
                by_scope.update(self._partials(moment, moment, None, scopes=first_seen)[day])
                scopes |= first_seen
            for scope, part in by_scope.items():
                self.store.cache_days(scope, [(day, n, part)])
            self.store.mark_clean(day, n)
            pacer.recomputed(day, n, time.monotonic())

    @rpc
    def summary(self, date_from, date_to, department=None, compare=None):
        start, end = self._range(date_from, date_to)
        figures = self._figures(start, end, department)
        figures.update({"from": start.isoformat(), "to": end.isoformat(), "department": department})
        if compare:
            if compare not in ("previous_period", "previous_year"):
                raise BadRequest(
                    "invalid compare", {"compare": ["previous_period or previous_year."]}
                )
            if compare == "previous_period":
                length = end - start + datetime.timedelta(days=1)
                other = (start - length, end - length)
            else:
                other = (_year_before(start), _year_before(end))
            previous = self._figures(*other, department)
            figures["comparison"] = {
                "kind": compare,
                "from": other[0].isoformat(),
                "to": other[1].isoformat(),
                "figures": _scalars(previous),
                "change": {k: _change(v, previous[k]) for k, v in _scalars(figures).items()},
            }
        return figures

    @rpc
    def series(self, date_from, date_to, granularity="day", department=None):
        start, end = self._range(date_from, date_to)
        if granularity not in ("day", "week", "month"):
            raise BadRequest("invalid granularity", {"granularity": ["day, week or month."]})
        points, cursor = [], start
        while cursor <= end:
            if granularity == "day":
                last = cursor
            elif granularity == "week":
                last = cursor + datetime.timedelta(days=6 - cursor.weekday())
            else:
                following = (cursor.replace(day=28) + datetime.timedelta(days=4)).replace(day=1)
                last = following - datetime.timedelta(days=1)
            last = min(last, end)
            points.append(
                {
                    "from": cursor.isoformat(),
                    "to": last.isoformat(),
                    **_scalars(self._figures(cursor, last, department)),
                }
            )
            cursor = last + datetime.timedelta(days=1)
        return {"granularity": granularity, "department": department, "points": points}

    @rpc
    def monthly_report(self, month, department=None, format="json"):
        """The monthly leadership report (report.py) as data, CSV or HTML."""
        if format not in ("json", "csv", "html"):
            raise BadRequest("invalid format", {"format": ["json, csv or html."]})
        try:
            first, last = report.parse_month(month)
        except ValueError as exc:
            raise BadRequest("invalid month", {"month": [str(exc)]}) from None
        figures = self._figures(first, last, department)
        before = report.shift_month(first, -1)
        year_before = report.shift_month(first, -12)
        trend = [
            (
                m,
                figures
                if m == first
                else _scalars(self._figures(m, report.month_end(m), department)),
            )
            for m in report.trend_months(first)
        ]
        previous_month = dict(trend)[before]
        built = report.build(
            first,
            department,
            figures,
            previous_month,
            self._figures(year_before, report.month_end(year_before), department),
            trend,
            quality_figures.figures(
                self.store.records(
                    "survey_answers", first.isoformat(), last.isoformat(), department
                )
            ),
        )
        if format == "csv":
            return report.to_csv(built)
        if format == "html":
            return report.to_html(built)
        return built

    # -- the center's own work (docs/RULES.md § Agents, § Service quality) ----------------
    @rpc
    def agents(self, date_from, date_to, agent=None):
        """The agents' figures over the days, each line assessed against the targets; with
        `agent` (the gateway passes the caller's own name) that agent's line alone."""
        start, end = self._range(date_from, date_to)
        result = self._agents(start, end, agent)
        result.update({"from": start.isoformat(), "to": end.isoformat()})
        return result

    @rpc
    def quality(self, date_from, date_to, department=None):
        start, end = self._range(date_from, date_to)
        answers = self.store.records(
            "survey_answers", start.isoformat(), end.isoformat(), department
        )
        return {
            "from": start.isoformat(),
            "to": end.isoformat(),
            "department": department,
            **quality_figures.figures(answers),
        }

    @rpc
    def agents_report(self, quarter, format="json"):
        """The quarterly assessment (agents_report.py) as data, CSV or HTML."""
        if format not in ("json", "csv", "html"):
            raise BadRequest("invalid format", {"format": ["json, csv or html."]})
        try:  # the quarter before must exist too (0001-Q1 has none)
            first, last = agents_report.parse_quarter(quarter)
            before_first, before_last = agents_report.parse_quarter(
                agents_report.previous_quarter(quarter)
            )
        except ValueError as exc:
            raise BadRequest("invalid quarter", {"quarter": [str(exc)]}) from None
        built = agents_report.build(
            quarter,
            self._agents(first, last),
            self._agents(before_first, before_last),
            agent_figures.targets_of(self.config["agent_targets"]),
        )
        if format == "csv":
            return agents_report.to_csv(built)
        if format == "html":
            return agents_report.to_html(built)
        return built

    def _agents(self, start, end, agent=None):
        work = self.store.records("agent_work", start.isoformat(), end.isoformat())
        summary = self._figures(start, end, None)  # consultations by agent, follow-up completion
        result = agent_figures.figures(work, summary["conversion_by_agent"], only=agent)
        if agent is not None:
            del result["team"]  # an agent sees their own line, not the team's
        targets = agent_figures.targets_of(self.config["agent_targets"])
        return agent_figures.with_assessment(
            result, targets, {"followup_completion_rate": summary["followup_completion_rate"]}
        )

    def _figures(self, start, end, department):
        """The figures over the days start..end: the merge of each day's partial, recomputed
        (together, a run of days at a time) only for the days that changed since stored."""
        a, b = start.isoformat(), end.isoformat()
        scope = department or ALL
        changes = self.store.day_changes(a, b)  # read before computing: a later change shows
        cached = self.store.cached_days(a, b, scope)
        parts, stale, day = [], [], start
        while day <= end:
            d = day.isoformat()
            hit = cached.get(d)
            if hit is not None and hit[0] == changes.get(d, 0):
                parts.append(hit[1])
            else:
                stale.append(day)
            day += datetime.timedelta(days=1)
        for run_start, run_end in _runs(stale):
            fresh = self._partials(run_start, run_end, department)
            self.store.cache_days(
                scope, [(d, changes.get(d, 0), part) for d, part in fresh.items()]
            )
            parts.extend(fresh.values())
        return domain.finish(domain.merge(parts), a)

    def _partials(self, start, end, department, scopes=None):
        """{day: partial} for every day start..end, from one read of the range's facts; with
        `scopes` (ALL and department names), {day: {scope: partial}} from that same read."""
        a, b = start.isoformat(), end.isoformat()

        def by_day(items, field="date"):
            grouped = {}
            for item in items:
                grouped.setdefault(item.get(field), []).append(item)
            return grouped

        facts = {
            kind: []
            for kind in (
                "PatientVisited",
                "PatientAdmitted",
                "PatientDischarged",
                "SatisfactionRecorded",
                "ConsultationLogged",
            )
        }
        for fact in self.store.facts(a, b, department):
            facts.setdefault(fact["type"], []).append(fact)
        consultations, visits = facts["ConsultationLogged"], facts["PatientVisited"]
        # The visits a consultation may convert into share its phone or MRN: looked up by
        # those keys, not by reading every fact of the 30 days after (8x the data at 3M).
        keys = {(key, c[key]) for c in consultations for key in ("phone_key", "mrn") if c.get(key)}
        # The persons of the range's visits and consultations, in one read by _id: their
        # previous visits (unique patients) and their own visits (conversions after a merge).
        people = self.store.people(
            {f.get("patient_id") for f in visits + consultations}, sections=("v",)
        )
        index = domain.VisitIndex(self.store.visits_of(keys), people)
        # A department's own count follows the person's previous visit in that department.
        wanted = {bool(department) or scope != ALL for scope in (scopes or [department or ALL])}
        previous = {
            in_department: {
                v["_id"]: people.previous_visit_day(v, same_department=in_department)
                for v in visits
            }
            for in_department in wanted
        }
        facts = {kind: by_day(items) for kind, items in facts.items()}
        followups = by_day(
            self.store.entities("followups", "due_date", a, b, department), "due_date"
        )
        received = by_day(
            self.store.entities("complaints", "received_date", a, b, department), "received_date"
        )
        resolved = by_day(
            self.store.entities("complaints", "resolved_date", a, b, department), "resolved_date"
        )

        def partial_of(d, scope):
            def of(items):
                items = items.get(d, [])
                return (
                    items
                    if scope in (None, ALL)
                    else [i for i in items if i.get("department") == scope]
                )

            return domain.partial(
                visits=of(facts["PatientVisited"]),
                admissions=of(facts["PatientAdmitted"]),
                discharges=of(facts["PatientDischarged"]),
                consultations=of(facts["ConsultationLogged"]),
                candidate_visits=index,
                followups=of(followups),
                satisfactions=of(facts["SatisfactionRecorded"]),
                complaints=of(received),
                complaints_resolved_in_range=len(of(resolved)),
                previous_days=previous[bool(department) or scope not in (None, ALL)],
            )

        partials, day = {}, start
        while day <= end:
            d = day.isoformat()
            partials[d] = (
                partial_of(d, None)
                if scopes is None
                else {scope: partial_of(d, scope) for scope in scopes}
            )
            day += datetime.timedelta(days=1)
        return partials

    @functools.cached_property
    def _tz(self):
        return zoneinfo.ZoneInfo(self.config["timezone"])

    @staticmethod
    def _range(date_from, date_to):
        errors = {}
        parsed = {}
        for field, value in (("from", date_from), ("to", date_to)):
            try:
                parsed[field] = datetime.date.fromisoformat(value)
            except (TypeError, ValueError):
                errors[field] = ["A date YYYY-MM-DD."]
        if not errors and parsed["to"] < parsed["from"]:
            errors["to"] = ["Must not be before from."]
        if not errors and (parsed["to"] - parsed["from"]).days > MAX_DAYS:
            errors["to"] = [f"At most {MAX_DAYS} days."]
        if errors:
            raise BadRequest("invalid range", errors)
        return parsed["from"], parsed["to"]


def _runs(days, longest=RUN_DAYS):
    """Consecutive days as (first, last) runs of at most `longest` days: one read of the
    store per run, and a run's facts are all the memory a cold range takes."""
    runs = []
    for day in days:
        if (
            runs
            and day - runs[-1][1] == datetime.timedelta(days=1)
            and (day - runs[-1][0]).days < longest
        ):
            runs[-1][1] = day
        else:
            runs.append([day, day])
    return [tuple(run) for run in runs]


def _year_before(day):
    try:
        return day.replace(year=day.year - 1)
    except ValueError:  # 29 February
        return day.replace(year=day.year - 1, day=28)


def _scalars(figures):
    return {
        k: v
        for k, v in figures.items()
        if (isinstance(v, (int, float)) or v is None) and k not in ("from", "to", "department")
    }


def _change(now, before):
    if now is None or before is None:
        return None
    return round(now - before, 4)
