"""The customer-service center's own work in `make demo`, done the way its staff do it:
through the gateway, signed in as agents. Nothing is written into a service's store from
outside it.

Once intake and followup have handled the demo's events (their inbound queues drained, the
number of follow-ups steady):
  - the calls due before today are recorded by six agents, as a working center would have
    (mostly reached with a score; some unreachable, tried again tomorrow; a few declined;
    one low score, which opens a service-recovery complaint), except the last OVERDUE_LEFT;
  - TODAY_DONE of today's calls are recorded (this morning's work); the others are today's
    worklist;
  - four complaints of the last day and a half: one past its deadline (escalated by the
    timer), one resolved, one acknowledged, one just received.
An outcome is dated when it is recorded (it is a user's action, now): the calls count on
their due days, but satisfaction scores and complaint handling fall on today. That is why
only one low score is given: each opens a complaint today.
"""

import concurrent.futures
import datetime
import json
import os
import pathlib
import random
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Self

ROOT = pathlib.Path(__file__).resolve().parent.parent
SECRETS = ROOT / ".local" / "secrets.env"
AGENTS = ("li.na", "wang.fang", "zhang.wei", "liu.yang", "chen.jing", "zhou.min")
OVERDUE_LEFT, TODAY_DONE = 3, 2
SCORES = [(5, 48), (4, 38), (3, 14)]
LOW_SCORE = {"outcome": "reached", "satisfaction": 2, "complaint": "候诊时间太长，没有人解释原因。"}
# (hours ago, channel, category, severity, description, what the agent did)
COMPLAINTS = [
    (30, "phone", "waiting_time", "high", "候诊超过两小时，无人解释。", None),
    (20, "wechat", "billing", "medium", "收费明细与医生所开项目不符，希望核对。", "resolve"),
    (6, "visit", "environment", "low", "门诊三楼卫生间没有洗手液。", "acknowledge"),
    (1, "phone", "attitude", "medium", "挂号窗口工作人员态度冷淡。", None),
]


class GatewayError(Exception):
    pass


class Gateway:
    """A small JSON client of the gateway that waits out 429s as a polite caller does."""

    def __init__(self, base_url: str, creds: Mapping[str, str]) -> None:
        self.base_url = base_url.rstrip("/")
        self.creds = creds

    @classmethod
    def local(cls) -> Self:
        base = (
            os.environ.get("HCRM_GATEWAY_URL")
            or f"http://127.0.0.1:{os.environ.get('GATEWAY_PORT', '8080')}"
        )
        if not SECRETS.exists():
            raise SystemExit(
                f"hcrm simulate: {SECRETS.relative_to(ROOT)} is missing: run `make up` first"
            )
        return cls(base, read_secrets())

    def call(
        self,
        method: str,
        path: str,
        body: object = None,
        token: str | None = None,
        expect: Iterable[int] = (200,),
    ) -> tuple[int, Any]:
        data = json.dumps(body, ensure_ascii=False).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        for _ in range(20):
            request = urllib.request.Request(self.base_url + path, data, headers, method=method)
            try:
                with urllib.request.urlopen(request, timeout=30) as response:
                    status, payload = response.status, response.read()
            except urllib.error.HTTPError as exc:
                status, payload = exc.code, exc.read()
                if status == 429:
                    time.sleep(float(exc.headers.get("Retry-After") or 1))
                    continue
            except OSError as exc:
                raise GatewayError(
                    f"{method} {path}: the gateway at {self.base_url} does not "
                    f"answer ({exc}); is it up (`make up`)?"
                ) from None
            parsed = json.loads(payload) if payload else None
            if status not in expect:
                raise GatewayError(f"{method} {path}: {status} {parsed}")
            return status, parsed
        raise GatewayError(f"{method} {path}: still rate limited")

    def login(self, username: str, password: str) -> str | None:
        status, body = self.call(
            "POST",
            "/api/v1/auth/token",
            {"username": username, "password": password},
            expect=(200, 401),
        )
        return body["access_token"] if status == 200 else None

    def admin_token(self) -> str:
        token = self.login(self.creds["HCRM_ADMIN_USERNAME"], self.creds["HCRM_ADMIN_PASSWORD"])
        if token is None:
            raise GatewayError(f"the admin login in {SECRETS.relative_to(ROOT)} is refused")
        return token


def read_secrets() -> dict[str, str]:
    return dict(line.split("=", 1) for line in SECRETS.read_text().split())


def demo_password() -> str:
    """The demo agents' password, generated once into .local/secrets.env (mode 600)."""
    creds = read_secrets()
    if "HCRM_DEMO_AGENT_PASSWORD" not in creds:
        creds["HCRM_DEMO_AGENT_PASSWORD"] = secrets.token_urlsafe(12)
        with open(SECRETS, "a") as file:
            file.write(f"HCRM_DEMO_AGENT_PASSWORD={creds['HCRM_DEMO_AGENT_PASSWORD']}\n")
    return creds["HCRM_DEMO_AGENT_PASSWORD"]


def agent_tokens(gateway: Gateway, admin: str) -> dict[str, str]:
    """{username: token} of the demo agents, created when missing."""
    password = demo_password()
    tokens = {}
    for username in AGENTS:
        gateway.call(
            "POST",
            "/api/v1/users",
            {"username": username, "password": password, "role": "agent"},
            token=admin,
            expect=(201, 409),
        )
        token = gateway.login(username, password)
        if token:
            tokens[username] = token
    return tokens


def queue_depths(amqp_uri: str, queues: Iterable[str]) -> list[int]:
    from kombu import Connection

    with Connection(amqp_uri) as connection:
        channel = connection.channel()
        return [channel.queue_declare(queue, passive=True).message_count for queue in queues]


def wait_settled(amqp_uri: str, gateway: Gateway, token: str, timeout: float = 240) -> int:
    """Until intake and followup have handled every event: their inbound queues are empty
    and the number of follow-ups has not changed for two seconds."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        busy = any(queue_depths(amqp_uri, ["intake.inbound", "followup.inbound"]))
        seen.append(
            None
            if busy
            else gateway.call("GET", "/api/v1/followups?limit=1", token=token)[1]["total"]
        )
        if len(seen) >= 3 and seen[-1] and seen[-1] == seen[-2] == seen[-3]:
            return seen[-1]
        time.sleep(1.0)
    raise SystemExit(
        f"hcrm simulate: the services did not handle the events within {timeout}s "
        "(`make status`, .local/log/)"
    )


def pending(
    gateway: Gateway,
    token: str,
    due_before: datetime.datetime,
    due_after: datetime.datetime | None = None,
) -> list[dict[str, Any]]:
    """Every pending follow-up due before `due_before` (and from `due_after`), earliest first."""
    items, offset = [], 0
    while True:
        query = urllib.parse.urlencode(
            {
                "status": "pending",
                "due_before": due_before.isoformat(),
                **({"due_after": due_after.isoformat()} if due_after else {}),
                "limit": 500,
                "offset": offset,
            }
        )
        page = gateway.call("GET", f"/api/v1/followups?{query}", token=token)[1]
        items += page["items"]
        offset += len(page["items"])
        if not page["items"] or offset >= page["total"]:
            return items


def outcome(rng: random.Random) -> dict[str, Any]:
    """What one call gave: mostly reached with a score of 3 to 5."""
    roll = rng.random()
    if roll < 0.08:
        return {"outcome": "unreachable"}
    if roll < 0.12:
        return {"outcome": "declined"}
    if roll < 0.16:
        return {"outcome": "reached"}
    return {
        "outcome": "reached",
        "satisfaction": rng.choices([s for s, _ in SCORES], [w for _, w in SCORES])[0],
    }


def record_calls(
    gateway: Gateway,
    tokens: Mapping[str, str],
    tasks: Sequence[Mapping[str, Any]],
    rng: random.Random,
    low_scores: int = 0,
) -> int:
    """Each agent records its share of `tasks` (one thread per agent: each has its own rate
    limit), the last `low_scores` with a low score; returns how many were recorded (a task
    cancelled meanwhile answers 409)."""
    shares: dict[str, list[tuple[str, dict[str, Any]]]] = {username: [] for username in tokens}
    for index, task in enumerate(tasks):
        body = LOW_SCORE if index >= len(tasks) - low_scores else outcome(rng)
        shares[list(tokens)[index % len(tokens)]].append((task["followup_id"], body))

    def work(username: str) -> int:
        done = 0
        for followup_id, body in shares[username]:
            status, _ = gateway.call(
                "POST",
                f"/api/v1/followups/{followup_id}/complete",
                body,
                token=tokens[username],
                expect=(200, 409),
            )
            done += status == 200
        return done

    with concurrent.futures.ThreadPoolExecutor(len(tokens)) as pool:
        return sum(pool.map(work, list(tokens)))


def log_complaints(gateway: Gateway, tokens: Mapping[str, str], now: datetime.datetime) -> int:
    token = next(iter(tokens.values()))
    patients = gateway.call("GET", "/api/v1/patients?limit=20", token=token)[1]["items"]
    for index, (hours, channel, category, severity, text, action) in enumerate(COMPLAINTS):
        patient = patients[index % len(patients)] if patients else {}
        received = (now - datetime.timedelta(hours=hours)).isoformat()
        _, complaint = gateway.call(
            "POST",
            "/api/v1/complaints",
            {
                "channel": channel,
                "category": category,
                "severity": severity,
                "description": text,
                "received_at": received,
                "patient_id": patient.get("patient_id"),
            },
            token=token,
            expect=(201,),
        )
        steps = {"acknowledge": ["acknowledge"], "resolve": ["acknowledge", "resolve"]}.get(
            action or "", []
        )
        for step in steps:
            gateway.call(
                "POST",
                f"/api/v1/complaints/{complaint['complaint_id']}/{step}",
                {
                    "note": "已致电患者说明情况。",
                    **({"resolution": "已核对并退还多收费用。"} if step == "resolve" else {}),
                },
                token=token,
            )
    return len(COMPLAINTS)


def run(config: Mapping[str, Any], now: datetime.datetime, rng: random.Random) -> int:
    """The center's work on the demo's history (`now`: aware, in the hospital's zone)."""
    try:
        gateway = Gateway.local()
        admin = gateway.admin_token()
        tokens = agent_tokens(gateway, admin) or {"admin": admin}
        print("waiting for the services to handle the events ...", flush=True)
        total = wait_settled(config["amqp_uri"], gateway, admin)
        midnight = datetime.datetime.combine(now.date(), datetime.time(0), now.tzinfo)
        earlier = pending(gateway, admin, midnight - datetime.timedelta(seconds=1))
        recorded = record_calls(
            gateway, tokens, earlier[: max(0, len(earlier) - OVERDUE_LEFT)], rng, low_scores=1
        )
        today = pending(gateway, admin, midnight + datetime.timedelta(days=1), due_after=midnight)
        recorded_today = record_calls(gateway, tokens, today[:TODAY_DONE], rng)
        complaints = log_complaints(gateway, tokens, now)
    except GatewayError as exc:
        print(f"hcrm simulate: the events are published, but the center's work was not done: {exc}")
        return 1
    print(
        f"the center's work, through the gateway as agents {', '.join(tokens)}: "
        f"{recorded} earlier calls recorded ({min(OVERDUE_LEFT, len(earlier))} left overdue), "
        f"{recorded_today} of today's; {complaints} complaints of the last day and a half "
        f"({total} follow-ups in all)"
    )
    gateway_port = os.environ.get("GATEWAY_PORT", "8080")
    agents = ", ".join(AGENTS)
    month = f"{now:%Y-%m}"
    print(f"""
Today's worklist:  http://127.0.0.1:{gateway_port}/portal/ (sign in as admin, or as
                   an agent: {agents}, password HCRM_DEMO_AGENT_PASSWORD in .local/secrets.env)
This month's report: .venv/bin/hcrm report monthly --month {month} --out report-{month}.html""")
    return 0
