"""`hcrm simulate` / `make demo`: a hospital's last months, believable on the day it runs.

Patients with Chinese names and Beijing districts; the departments of a general hospital;
patient sources weighted as docs/DOMAIN.md describes (friend referral, nearby, passing by,
advertising, online...); consultations that sometimes convert; admissions and discharges.

`make demo` (`hcrm simulate --months 3`):
  1. `demo_plan` dates the events from the 1st of the month two months back up to now:
     more on weekdays and in opening hours, always some outpatients yesterday (their calls
     fall due today) and some this morning, so today's worklist, this month's dashboard,
     the comparison with last month and `hcrm report monthly --month <this month>` all
     have figures;
  2. the events go to hospital.events like the HIS sends them (or through the gateway,
     `--via http`);
  3. then the center's own work is done the way its staff do it, through the gateway
     (shared/demo_center.py): earlier calls recorded by the agents, two of today's, a few
     left overdue, and recent complaints. No service's store is written from outside.
`--months 0` publishes the events dated in the last ten hours instead (load, benchmarks).
"""

import argparse
import datetime
import random
import time
import uuid
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = [
    "伟",
    "芳",
    "娜",
    "秀英",
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "军",
    "洋",
    "勇",
    "艳",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀兰",
    "霞",
    "平",
    "刚",
    "桂英",
    "建华",
    "子涵",
    "浩然",
    "雨桐",
]
DEPARTMENTS = [
    "心内科",
    "呼吸内科",
    "消化内科",
    "神经内科",
    "内分泌科",
    "骨科",
    "普外科",
    "泌尿外科",
    "妇产科",
    "儿科",
    "眼科",
    "耳鼻喉科",
    "口腔科",
    "皮肤科",
    "中医科",
    "康复医学科",
]
INPATIENT_DEPARTMENTS = ["心内科", "骨科", "普外科", "神经内科", "妇产科"]
REGIONS = [
    "朝阳区",
    "海淀区",
    "东城区",
    "西城区",
    "丰台区",
    "石景山区",
    "通州区",
    "昌平区",
    "大兴区",
    "顺义区",
]
SOURCES = [
    ("friend_referral", 30),
    ("nearby", 20),
    ("passing_by", 8),
    ("advertising", 12),
    ("online", 15),
    ("phone_consultation", 8),
    ("doctor_referral", 5),
    ("other", 2),
]
CHANNELS = [("phone", 50), ("web", 15), ("wechat", 25), ("qq", 3), ("email", 2), ("walk_in", 5)]
TZ = datetime.timezone(datetime.timedelta(hours=8))

# What a day of the hospital's systems sends, by share.
KINDS = [
    ("consultation", 15),
    ("visit", 55),
    ("registration", 10),
    ("admission", 10),
    ("discharge", 10),
]
# Outpatients come on weekdays mostly (Monday busiest); Saturday mornings, few on Sundays.
DAY_WEIGHTS = (1.3, 1.1, 1.0, 1.0, 1.0, 0.6, 0.3)
# Yesterday's outpatients are today's post-visit calls: never fewer than this.
YESTERDAY_VISITS = 6
# Events of today before now (this morning's patients), when the day has begun.
TODAY_EVENTS = 3
MIN_STAY = datetime.timedelta(days=2)  # a discharge follows its admission by two days at least
Value = TypeVar("Value")  # what `weighted` picks


def weighted(rng: random.Random, pairs: Sequence[tuple[Value, float]]) -> Value:
    return rng.choices([value for value, _ in pairs], [weight for _, weight in pairs])[0]


# -- the date plan (pure: `now` and the random generator are parameters) ---------------------
def history_start(today: datetime.date, months: int) -> datetime.date:
    """The first day of the month `months - 1` months before `today`'s month."""
    index = today.year * 12 + today.month - 1 - (months - 1)
    return datetime.date(index // 12, index % 12 + 1, 1)


def demo_plan(
    now: datetime.datetime, count: int, months: int, rng: random.Random
) -> list[tuple[datetime.datetime, str]]:
    """`(when, kind)` for about `count` events, oldest first, from `history_start` to `now`
    (an aware datetime in the hospital's zone). Days are weighted by DAY_WEIGHTS, today by
    the share of it already past; at least YESTERDAY_VISITS visits fall on yesterday and,
    once today has begun, TODAY_EVENTS events on today before now."""
    today = now.date()
    start = history_start(today, months)
    days = [start + datetime.timedelta(days=n) for n in range((today - start).days + 1)]
    midnight = datetime.datetime.combine(today, datetime.time(0), now.tzinfo)
    past_today = (now - midnight) / datetime.timedelta(days=1)
    weights = [DAY_WEIGHTS[day.weekday()] * (past_today if day == today else 1.0) for day in days]
    plan = [
        (moment_on(day, now, rng), weighted(rng, KINDS))
        for day in rng.choices(days, weights, k=count)
    ]
    yesterday = today - datetime.timedelta(days=1)
    if yesterday >= start:
        visits = sum(1 for when, kind in plan if when.date() == yesterday and kind == "visit")
        plan += [
            (moment_on(yesterday, now, rng), "visit") for _ in range(YESTERDAY_VISITS - visits)
        ]
    if now > midnight:
        already = sum(1 for when, _ in plan if when.date() == today)
        plan += [
            (moment_on(today, now, rng), kind)
            for kind in ["visit", "consultation", "visit"][: max(0, TODAY_EVENTS - already)]
        ]
    return sorted(plan, key=lambda item: item[0])


def moment_on(day: datetime.date, now: datetime.datetime, rng: random.Random) -> datetime.datetime:
    """A time on `day`, in opening hours (07:30-18:00) nine times in ten, else at any hour
    (the emergency department); never after `now`."""
    minute = rng.randint(450, 1080) if rng.random() < 0.9 else rng.randint(0, 1439)
    moment = datetime.datetime.combine(day, datetime.time(minute // 60, minute % 60), now.tzinfo)
    if moment > now:  # today: somewhere between midnight and now
        midnight = datetime.datetime.combine(day, datetime.time(0), now.tzinfo)
        moment = midnight + (now - midnight) * rng.random()
    return moment.replace(microsecond=0)


# -- the events ------------------------------------------------------------------------------
class Hospital:
    """Patients, prospects and admissions that events refer to, built up as time passes:
    `event(kind, when)` is called in time order, so a discharge follows its admission and a
    returning patient visited before."""

    def __init__(self, seed: int | None = None, now: datetime.datetime | None = None) -> None:
        self.rng = random.Random(seed)
        self.patients: list[dict[str, Any]] = []
        self.prospects: list[dict[str, Any]] = []
        # (admitted_at, admission) still in hospital
        self.admissions: list[tuple[datetime.datetime, dict[str, Any]]] = []
        self.now = now or datetime.datetime.now(TZ).replace(microsecond=0)

    def _person(self) -> dict[str, Any]:
        rng = self.rng
        birth = datetime.date(rng.randint(1940, 2022), rng.randint(1, 12), rng.randint(1, 28))
        return {
            "name": rng.choice(SURNAMES) + rng.choice(GIVEN),
            "phone": f"1{rng.choice('3589')}{rng.randint(0, 999999999):09d}",
            "gender": rng.choice(["male", "female"]),
            "birth_date": birth.isoformat(),
            "region": rng.choice(REGIONS),
        }

    def _new_patient(self, person: dict[str, Any] | None = None) -> dict[str, Any]:
        person = dict(person or self._person(), mrn=f"MRN{len(self.patients) + 100000}")
        self.patients.append(person)
        return person

    def _envelope(
        self, event_type: str, source: str, data: dict[str, Any], when: datetime.datetime
    ) -> dict[str, Any]:
        return {
            "event_id": uuid.uuid4().hex,
            "event_type": event_type,
            "occurred_at": when.isoformat(),
            "source": source,
            "data": data,
        }

    def next_event(self) -> dict[str, Any]:
        """One event of the last ten hours (`--months 0`)."""
        return self.event(
            weighted(self.rng, KINDS),
            self.now - datetime.timedelta(minutes=self.rng.randint(0, 600)),
        )

    def event(self, kind: str, when: datetime.datetime) -> dict[str, Any]:
        rng = self.rng
        if kind == "consultation":
            person = self._person()
            if rng.random() < 0.5:
                self.prospects.append(person)
            return self._envelope(
                "ConsultationLogged",
                "call-center",
                {
                    "consultation_id": f"C{uuid.uuid4().hex[:10]}",
                    "channel": weighted(rng, CHANNELS),
                    "patient": {"name": person["name"], "phone": person["phone"]},
                    "department": rng.choice(DEPARTMENTS),
                    "topic": "咨询就诊时间与专家号",
                    "agent_id": f"agent-{rng.randint(1, 8)}",
                },
                when,
            )
        if kind == "registration":
            return self._envelope(
                "PatientRegistered", "his", {"patient": self._new_patient()}, when
            )
        if kind == "admission" and self.patients:
            person = rng.choice(self.patients)
            admission = {
                "patient": person,
                "admission_id": f"A{uuid.uuid4().hex[:8]}",
                "department": rng.choice(INPATIENT_DEPARTMENTS),
            }
            self.admissions.append((when, admission))
            return self._envelope(
                "PatientAdmitted",
                "inpatient",
                dict(
                    admission,
                    ward=f"{rng.randint(3, 12)}{rng.choice('AB')}",
                    admitted_at=when.isoformat(),
                ),
                when,
            )
        ready = [
            index
            for index, (admitted, _) in enumerate(self.admissions)
            if admitted <= when - MIN_STAY
        ]
        if kind == "discharge" and ready:
            _, admission = self.admissions.pop(rng.choice(ready))
            return self._envelope(
                "PatientDischarged",
                "inpatient",
                dict(
                    admission,
                    discharged_at=when.isoformat(),
                    disposition=weighted(
                        rng, [("home", 90), ("transfer", 6), ("against_advice", 3), ("deceased", 1)]
                    ),
                ),
                when,
            )
        return self._visit(when)  # and an admission or discharge with no one to admit or discharge

    def _visit(self, when: datetime.datetime) -> dict[str, Any]:
        rng = self.rng
        first = rng.random() < 0.45 or not self.patients
        if first:
            prospect = self.prospects.pop() if self.prospects and rng.random() < 0.3 else None
            person = self._new_patient(prospect)
        else:
            person = rng.choice(self.patients)
        data = {
            "patient": person,
            "visit_id": f"V{uuid.uuid4().hex[:10]}",
            "department": rng.choice(DEPARTMENTS),
            "doctor_id": f"D{rng.randint(100, 160)}",
            "visit_type": "first" if first else rng.choice(["return", "return", "walk_in"]),
            "visited_at": when.isoformat(),
        }
        if first:
            data["source_channel"] = weighted(rng, SOURCES)
        return self._envelope("PatientVisited", "his", data, when)


def main(args: argparse.Namespace) -> int:
    import zoneinfo

    from shared.config import BaseConfig, load_config
    from shared.messaging import publish

    config = load_config("simulate", BaseConfig)
    now = datetime.datetime.now(zoneinfo.ZoneInfo(config["timezone"])).replace(microsecond=0)
    hospital = Hospital(args.seed, now)
    months = getattr(args, "months", 0)
    plan = demo_plan(now, args.count, months, hospital.rng) if months else None
    send = (
        _http_sender()
        if args.via == "http"
        else (
            lambda event: publish(config["amqp_uri"], "hospital.events", event["event_type"], event)
        )
    )
    counts: dict[str, int] = {}
    total = len(plan) if plan else args.count
    interval = 1.0 / args.rate if args.rate > 0 else 0
    started = time.monotonic()
    for index in range(total):
        event = hospital.event(plan[index][1], plan[index][0]) if plan else hospital.next_event()
        send(event)
        counts[event["event_type"]] = counts.get(event["event_type"], 0) + 1
        if interval:
            time.sleep(max(0.0, started + (index + 1) * interval - time.monotonic()))
    elapsed = time.monotonic() - started
    print(
        f"published {total} events via {args.via} in {elapsed:.1f}s: "
        + ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items()))
    )
    if not plan:
        print("see them: GET /api/v1/patients on the gateway (make up prints how to get a token)")
        return 0
    print(f"dated {plan[0][0].date()} .. {now.date()} ({months} months up to now, hospital time)")
    if getattr(args, "events_only", False):
        return 0
    from shared import demo_center

    return demo_center.run(config, now, hospital.rng)


def _http_sender() -> Callable[[dict[str, Any]], None]:
    from shared.demo_center import Gateway

    gateway = Gateway.local()
    token = gateway.admin_token()

    def send(event: dict[str, Any]) -> None:
        gateway.call("POST", "/api/v1/events", event, token=token, expect=(202,))

    return send
