"""`hcrm simulate` / `make demo`: a realistic stream of hospital events.

Patients with Chinese names and Beijing districts; the departments of a general hospital;
patient sources weighted as seed 002 describes (friend referral, nearby, passing by,
advertising, online...); consultations that sometimes convert; admissions and discharges.
Published to hospital.events over AMQP (default) or through the gateway over HTTP.
"""
import datetime
import json
import os
import random
import time
import urllib.request
import uuid

SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = ["伟", "芳", "娜", "秀英", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟",
         "涛", "明", "超", "秀兰", "霞", "平", "刚", "桂英", "建华", "子涵", "浩然", "雨桐"]
DEPARTMENTS = ["心内科", "呼吸内科", "消化内科", "神经内科", "内分泌科", "骨科", "普外科", "泌尿外科",
               "妇产科", "儿科", "眼科", "耳鼻喉科", "口腔科", "皮肤科", "中医科", "康复医学科"]
INPATIENT_DEPARTMENTS = ["心内科", "骨科", "普外科", "神经内科", "妇产科"]
REGIONS = ["朝阳区", "海淀区", "东城区", "西城区", "丰台区", "石景山区", "通州区", "昌平区", "大兴区", "顺义区"]
SOURCES = [("friend_referral", 30), ("nearby", 20), ("passing_by", 8), ("advertising", 12),
           ("online", 15), ("phone_consultation", 8), ("doctor_referral", 5), ("other", 2)]
CHANNELS = [("phone", 50), ("web", 15), ("wechat", 25), ("qq", 3), ("email", 2), ("walk_in", 5)]
TZ = datetime.timezone(datetime.timedelta(hours=8))


def weighted(rng, pairs):
    return rng.choices([value for value, _ in pairs], [weight for _, weight in pairs])[0]


class Hospital:
    def __init__(self, seed=None):
        self.rng = random.Random(seed)
        self.patients = []
        self.prospects = []
        self.admissions = []
        self.now = datetime.datetime.now(TZ).replace(microsecond=0)

    def _person(self):
        rng = self.rng
        birth = datetime.date(rng.randint(1940, 2022), rng.randint(1, 12), rng.randint(1, 28))
        return {"name": rng.choice(SURNAMES) + rng.choice(GIVEN),
                "phone": f"1{rng.choice('3589')}{rng.randint(0, 999999999):09d}",
                "gender": rng.choice(["male", "female"]), "birth_date": birth.isoformat(),
                "region": rng.choice(REGIONS)}

    def _envelope(self, event_type, source, data, when):
        return {"event_id": uuid.uuid4().hex, "event_type": event_type,
                "occurred_at": when.isoformat(), "source": source, "data": data}

    def next_event(self):
        rng, when = self.rng, self.now - datetime.timedelta(minutes=self.rng.randint(0, 600))
        roll = rng.random()
        if roll < 0.15:
            person = self._person()
            if rng.random() < 0.5:
                self.prospects.append(person)
            return self._envelope("ConsultationLogged", "call-center", {
                "consultation_id": f"C{uuid.uuid4().hex[:10]}", "channel": weighted(rng, CHANNELS),
                "patient": {"name": person["name"], "phone": person["phone"]},
                "department": rng.choice(DEPARTMENTS), "topic": "咨询就诊时间与专家号",
                "agent_id": f"agent-{rng.randint(1, 8)}"}, when)
        if roll < 0.70 or not self.patients:
            first = rng.random() < 0.45 or not self.patients
            if first:
                person = self.prospects.pop() if self.prospects and rng.random() < 0.3 else self._person()
                person = dict(person, mrn=f"MRN{len(self.patients) + 100000}")
                self.patients.append(person)
            else:
                person = rng.choice(self.patients)
            data = {"patient": person, "visit_id": f"V{uuid.uuid4().hex[:10]}",
                    "department": rng.choice(DEPARTMENTS), "doctor_id": f"D{rng.randint(100, 160)}",
                    "visit_type": "first" if first else rng.choice(["return", "return", "walk_in"]),
                    "visited_at": when.isoformat()}
            if first:
                data["source_channel"] = weighted(rng, SOURCES)
            return self._envelope("PatientVisited", "his", data, when)
        if roll < 0.80:
            person = dict(self._person(), mrn=f"MRN{len(self.patients) + 100000}")
            self.patients.append(person)
            return self._envelope("PatientRegistered", "his", {"patient": person}, when)
        if roll < 0.90 or not self.admissions:
            person = rng.choice(self.patients)
            admission = {"patient": person, "admission_id": f"A{uuid.uuid4().hex[:8]}",
                         "department": rng.choice(INPATIENT_DEPARTMENTS)}
            self.admissions.append(admission)
            return self._envelope("PatientAdmitted", "inpatient", dict(
                admission, ward=f"{rng.randint(3, 12)}{rng.choice('AB')}",
                admitted_at=(when - datetime.timedelta(days=rng.randint(3, 10))).isoformat()), when)
        admission = self.admissions.pop(rng.randrange(len(self.admissions)))
        return self._envelope("PatientDischarged", "inpatient", dict(
            admission, discharged_at=when.isoformat(),
            disposition=weighted(rng, [("home", 90), ("transfer", 6), ("against_advice", 3),
                                       ("deceased", 1)])), when)


def main(args):
    from shared.config import BaseConfig, load_config
    from shared.messaging import publish
    config = load_config("simulate", BaseConfig)
    hospital = Hospital(args.seed)
    send = _http_sender() if args.via == "http" else (
        lambda event: publish(config["amqp_uri"], "hospital.events", event["event_type"], event))
    counts = {}
    interval = 1.0 / args.rate if args.rate > 0 else 0
    started = time.monotonic()
    for index in range(args.count):
        event = hospital.next_event()
        send(event)
        counts[event["event_type"]] = counts.get(event["event_type"], 0) + 1
        if interval:
            time.sleep(max(0.0, started + (index + 1) * interval - time.monotonic()))
    elapsed = time.monotonic() - started
    print(f"published {args.count} events via {args.via} in {elapsed:.1f}s: "
          + ", ".join(f"{kind} {n}" for kind, n in sorted(counts.items())))
    print("see them: GET /api/v1/patients on the gateway (make up prints how to get a token)")
    return 0


def _http_sender():
    base = os.environ.get("HCRM_GATEWAY_URL", f"http://127.0.0.1:{os.environ.get('GATEWAY_PORT', '8080')}")
    secrets_file = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                ".local", "secrets.env")
    creds = dict(line.split("=", 1) for line in open(secrets_file).read().split())
    body = json.dumps({"username": creds["HCRM_ADMIN_USERNAME"],
                       "password": creds["HCRM_ADMIN_PASSWORD"]}).encode()
    request = urllib.request.Request(base + "/api/v1/auth/token", body,
                                     {"Content-Type": "application/json"})
    token = json.load(urllib.request.urlopen(request, timeout=10))["access_token"]

    def send(event):
        request = urllib.request.Request(
            base + "/api/v1/events", json.dumps(event, ensure_ascii=False).encode(),
            {"Content-Type": "application/json", "Authorization": f"Bearer {token}"})
        urllib.request.urlopen(request, timeout=10).read()
    return send
