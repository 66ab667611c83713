"""One hospital week in two forms, built from one list of facts: the HL7 v2 messages a HIS
sends over MLLP (ER7 bytes, templates below) and the JSON events of docs/EVENTS.md that state
exactly what those messages imply (docs/HL7.md, § Mapping), as a HIS writing JSON would send
them. tests/e2e/test_hl7_equals_json.py feeds each form into its own installation and
compares what comes out.

Each fact is a dataclass that knows both of its forms: `segments()` (the ER7 segments after
MSH) and `data()` (the event's `data`); the week adds the envelope. The JSON side is derived
from the facts, never from services/hl7/mapping.py, so a mapping that reads a field wrongly
shows as a difference. What the JSON side takes from docs/HL7.md:
- `event_id` = MSH-3|MSH-4|MSH-10 and `source` = the listener's (`hl7`), so both
  installations hold the same canonical event ids;
- `occurred_at`: the time of the fact (EVN-6 / PV1-44 / PV1-45), EVN-2 for A11 and A13, MSH-7
  for SIU; times are the hospital's (Asia/Shanghai, +08:00), in ER7 mostly without an offset;
- `visit_type`: `emergency` for PV1-2 `E`, `return` when PV1-13 says re-admission or the
  listener saw an earlier visit of the MRN, else `first` (checked when the week is built);
- departments through DEPARTMENTS (the listener's HL7_DEPARTMENTS), PV1-14 through
  PATIENT_SOURCES, dispositions through HL7 table 0112 (01 home, 02 transfer, 20 expired);
- a death (PID-30 `Y`) gives the patient contact_consent and marketing_consent false.
"""

import dataclasses
import datetime
import json
import zoneinfo

HOSPITAL_TZ = zoneinfo.ZoneInfo("Asia/Shanghai")
SOURCE = "hl7"  # the listener's configured source (its default)
SENDER = ("HIS", "XHYY")  # MSH-3, MSH-4

# The listener's code tables (HL7_DEPARTMENTS, HL7_PATIENT_SOURCES); the JSON side uses the
# same names. "0999" is deliberately missing: an unmapped code is used as it is.
DEPARTMENTS = {
    "0301": "心内科",
    "CARD": "心内科",
    "EM": "急诊科",
    "EMR": "急诊科",
    "0502": "妇科",
    "0701": "骨科",
    "ONC": "肿瘤科",
    "SURG": "普外科",
}
PATIENT_SOURCES = {"7": "friend_referral", "3": "online"}
DISPOSITION_CODES = {"home": "01", "transfer": "02", "deceased": "20"}  # HL7 table 0112


def listener_env():
    """The environment of the HL7 listener that reads this week."""
    return {
        "HL7_DEPARTMENTS": json.dumps(DEPARTMENTS, ensure_ascii=False),
        "HL7_PATIENT_SOURCES": json.dumps(PATIENT_SOURCES),
    }


def department(code):
    return DEPARTMENTS.get(code, code)


# -- ER7 -----------------------------------------------------------------------------------
def esc(text):
    """ER7 escaping of a value (the escape character first)."""
    for char, sequence in (
        ("\\", "\\E\\"),
        ("|", "\\F\\"),
        ("^", "\\S\\"),
        ("&", "\\T\\"),
        ("~", "\\R\\"),
    ):
        text = text.replace(char, sequence)
    return text


def segment(name, fields):
    """`name|f1|f2…` from {field number: ER7 text}; missing fields are empty."""
    last = max(fields)
    return "|".join([name] + [fields.get(n, "") for n in range(1, last + 1)])


def ts(moment, offset=False):
    """HL7 DTM in the hospital's local time, with `+0800` when `offset`."""
    local = moment.astimezone(HOSPITAL_TZ)
    return local.strftime("%Y%m%d%H%M%S") + (local.strftime("%z") if offset else "")


def iso(moment):
    return moment.astimezone(HOSPITAL_TZ).isoformat()


# -- people --------------------------------------------------------------------------------
@dataclasses.dataclass
class Person:
    mrn: str
    family: str
    given: str
    sex: str  # PID-8: M / F
    born: datetime.date
    phone: str = None
    district: str = None  # PID-11 XAD-9 (with the city in XAD-3)
    charset: str = "UNICODE UTF-8"  # MSH-18 of this person's messages ("" = the default, UTF-8)
    version: str = "2.5"
    national_id: str = None  # a PID-3 repetition before the MRN (never the MRN)
    pinyin: tuple = None  # a phonetic PID-5 repetition after the ideographic one
    phone_in_xtn12: bool = False

    @property
    def name(self):
        return self.family + self.given  # CJK: family + given, no space (docs/HL7.md)

    def pid(self, died_at=None):
        ids = f"{self.mrn}^^^XHYY^MR"
        if self.national_id:
            ids = f"{self.national_id}^^^CHN^NNCHN~{ids}"
        names = f"{esc(self.family)}^{esc(self.given)}^^^^^L^I"
        if self.pinyin:
            names += f"~{self.pinyin[0]}^{self.pinyin[1]}^^^^^L^P"
        fields = {1: "1", 3: ids, 5: names, 7: self.born.strftime("%Y%m%d"), 8: self.sex}
        if self.district:
            fields[11] = f"^^北京市^北京市^^CHN^H^^{esc(self.district)}"
        if self.phone:
            fields[13] = f"^PRN^CP^^^^^^^^^{self.phone}" if self.phone_in_xtn12 else self.phone
        if died_at:
            fields.update({29: ts(died_at), 30: "Y"})
        return segment("PID", fields)

    def patient(self, died=False):
        body = {
            "mrn": self.mrn,
            "name": self.name,
            "gender": {"M": "male", "F": "female"}[self.sex],
            "birth_date": self.born.isoformat(),
        }
        if self.phone:
            body["phone"] = self.phone
        if self.district:
            body["region"] = self.district
        if died:
            body.update(contact_consent=False, marketing_consent=False)
        return body


# -- facts ---------------------------------------------------------------------------------
# Each fact: `who`, `sent` (MSH-7, and EVN-2 where there is an EVN), `trigger`, and:
#   segments(week) -> the ER7 segments after MSH;
#   events(week) -> [(event_type, occurred_at, data)].
@dataclasses.dataclass
class Visit:
    """ADT^A04: an outpatient (or emergency) visit."""

    who: Person
    at: datetime.datetime
    visit_id: str
    clinic: str  # PV1-3 point of care (the department code)
    visit_type: str  # what the hospital means: first / return / emergency
    doctor: tuple = None  # (id, family, given) in PV1-7
    source: str = None  # source_channel, sent as its PV1-14 code
    flagged: bool = False  # PV1-13 = R (re-admission)
    offset: bool = False  # EVN-6 written with +0800
    trigger = "ADT^A04^ADT_A01"

    @property
    def sent(self):
        return self.at + datetime.timedelta(minutes=5)

    def segments(self, week):
        doctor = (
            f"{self.doctor[0]}^{self.doctor[1]}^{self.doctor[2]}^^^^^^XHYY" if self.doctor else ""
        )
        code = next((c for c, name in PATIENT_SOURCES.items() if name == self.source), "")
        pv1 = {
            1: "1",
            2: "E" if self.visit_type == "emergency" else "O",
            3: f"{self.clinic}^^^XHYY",
            7: doctor,
            13: "R" if self.flagged else "",
            14: code,
            19: self.visit_id,
        }
        return [
            segment("EVN", {1: "A04", 2: ts(self.sent), 6: ts(self.at, self.offset)}),
            self.who.pid(),
            segment("PV1", pv1),
        ]

    def events(self, week):
        data = {
            "patient": self.who.patient(),
            "visit_id": self.visit_id,
            "department": department(self.clinic),
            "visit_type": self.visit_type,
            "visited_at": iso(self.at),
        }
        if self.doctor:
            data.update(doctor_id=self.doctor[0], doctor_name=self.doctor[1] + self.doctor[2])
        if self.source:
            data["source_channel"] = self.source
        return [("PatientVisited", self.at, data)]


@dataclasses.dataclass
class Admission:
    """ADT^A01: admitted to a ward (PV1-3) of a hospital service (PV1-10)."""

    who: Person
    at: datetime.datetime
    admission_id: str
    service: str
    ward: str
    trigger = "ADT^A01^ADT_A01"

    @property
    def sent(self):
        return self.at + datetime.timedelta(minutes=5)

    def pv1(self, extra=None):
        return segment(
            "PV1",
            {
                1: "1",
                2: "I",
                3: f"{self.ward}^01^1^XHYY",
                10: self.service,
                19: self.admission_id,
                44: ts(self.at),
                **(extra or {}),
            },
        )

    def segments(self, week):
        return [segment("EVN", {1: "A01", 2: ts(self.sent)}), self.who.pid(), self.pv1()]

    def events(self, week):
        return [
            (
                "PatientAdmitted",
                self.at,
                {
                    "patient": self.who.patient(),
                    "admission_id": self.admission_id,
                    "department": department(self.service),
                    "admitted_at": iso(self.at),
                    "ward": self.ward,
                },
            )
        ]


@dataclasses.dataclass
class Discharge:
    """ADT^A03 of an admission; `died_at` (PID-29/30) for a death."""

    admission: Admission
    at: datetime.datetime
    disposition: str
    died_at: datetime.datetime = None
    trigger = "ADT^A03^ADT_A03"

    @property
    def who(self):
        return self.admission.who

    @property
    def sent(self):
        return self.at + datetime.timedelta(minutes=10)

    def segments(self, week):
        return [
            segment("EVN", {1: "A03", 2: ts(self.sent)}),
            self.who.pid(self.died_at),
            self.admission.pv1({36: DISPOSITION_CODES[self.disposition], 45: ts(self.at)}),
        ]

    def events(self, week):
        return [
            (
                "PatientDischarged",
                self.at,
                {
                    "patient": self.who.patient(died=bool(self.died_at)),
                    "admission_id": self.admission.admission_id,
                    "department": department(self.admission.service),
                    "discharged_at": iso(self.at),
                    "disposition": self.disposition,
                },
            )
        ]


@dataclasses.dataclass
class Cancel:
    """ADT^A11 (a visit or an admission entered in error) or ADT^A13 (a discharge cancelled);
    `sent` is also EVN-2, the time the correction was recorded (its occurred_at)."""

    of: object  # the Visit or Admission it corrects
    sent: datetime.datetime
    discharge: bool = False  # A13
    reason: tuple = None  # EVN-4 (code, text)

    @property
    def who(self):
        return self.of.who

    @property
    def trigger(self):
        return "ADT^A13^ADT_A01" if self.discharge else "ADT^A11^ADT_A09"

    def segments(self, week):
        evn = {1: self.trigger[4:7], 2: ts(self.sent)}
        if self.reason:
            evn[4] = f"{self.reason[0]}^{esc(self.reason[1])}"
        if isinstance(self.of, Admission):
            pv1 = segment(
                "PV1",
                {
                    1: "1",
                    2: "I",
                    3: f"{self.of.ward}^01^1^XHYY",
                    10: self.of.service,
                    19: self.of.admission_id,
                },
            )
        else:
            pv1 = segment(
                "PV1", {1: "1", 2: "O", 3: f"{self.of.clinic}^^^XHYY", 19: self.of.visit_id}
            )
        return [segment("EVN", evn), self.who.pid(), pv1]

    def events(self, week):
        data = {"patient": self.who.patient()}
        if isinstance(self.of, Admission):
            data["admission_id"] = self.of.admission_id
            kind = "DischargeCancelled" if self.discharge else "AdmissionCancelled"
        else:
            data["visit_id"], kind = self.of.visit_id, "VisitCancelled"
        if self.reason:
            data["reason"] = self.reason[1]
        return [(kind, self.sent, data)]


@dataclasses.dataclass
class Profile:
    """ADT^A08 (a profile update) or A28 (a person added): PatientRegistered at EVN-2."""

    who: Person
    sent: datetime.datetime
    trigger: str = "ADT^A08^ADT_A01"

    def segments(self, week):
        return [
            segment("EVN", {1: self.trigger[4:7], 2: ts(self.sent)}),
            self.who.pid(),
            segment("PV1", {1: "1", 2: "N"}),
        ]

    def events(self, week):
        return [("PatientRegistered", self.sent, {"patient": self.who.patient()})]


@dataclasses.dataclass
class Merge:
    """ADT^A40: `retired`'s record is `who`'s (MRG-1)."""

    who: Person
    retired: Person
    sent: datetime.datetime
    trigger = "ADT^A40^ADT_A39"

    def segments(self, week):
        return [
            segment("EVN", {1: "A40", 2: ts(self.sent)}),
            self.who.pid(),
            segment("MRG", {1: f"{self.retired.mrn}^^^XHYY^MR"}),
        ]

    def events(self, week):
        return [
            (
                "PatientsMerged",
                self.sent,
                {"patient": self.who.patient(), "merged_mrn": self.retired.mrn},
            )
        ]


@dataclasses.dataclass
class Booking:
    """SIU^S12 (booked) or S13 (moved): the appointment as the scheduling system holds it.
    Version 2.5 puts the start in TQ1-7, 2.4 in SCH-11.4; the duration in SCH-9/10 or AIS-7/8;
    the department in AIL-3, else PV1-3."""

    who: Person
    sent: datetime.datetime
    appointment_id: str
    starts: datetime.datetime
    clinic: str
    minutes: int = None
    doctor: tuple = None
    moved: bool = False
    hours: bool = False  # the duration written in hours (SCH-10 h)
    duration_in_ais: bool = False
    location_in_pv1: bool = False

    @property
    def trigger(self):
        return "SIU^S13^SIU_S12" if self.moved else "SIU^S12^SIU_S12"

    def segments(self, week):
        old = self.who.version < "2.5"
        sch = {
            1: f"PL{self.appointment_id[2:]}^HIS",
            2: f"{self.appointment_id}^HIS",
            6: "RESCHED^改约" if self.moved else "ROUTINE^复诊",
        }
        if self.minutes and not self.duration_in_ais:
            sch.update(
                {9: f"{self.minutes / 60:g}", 10: "h^hours"}
                if self.hours
                else {9: str(self.minutes), 10: "min^分钟"}
            )
        if old:
            sch[11] = f"^^^{ts(self.starts)}"
        out = [segment("SCH", sch)]
        if not old:
            out.append(segment("TQ1", {1: "1", 7: ts(self.starts)}))
        out.append(self.who.pid())
        if self.location_in_pv1:
            out.append(segment("PV1", {1: "1", 2: "O", 3: f"{self.clinic}^^^XHYY"}))
        out.append(segment("RGS", {1: "1", 2: "A"}))
        ais = {1: "1", 2: "A", 3: "FU^复诊", 4: ts(self.starts)}
        if self.minutes and self.duration_in_ais:
            ais.update({7: str(self.minutes), 8: "min"})
        out.append(segment("AIS", ais))
        if not self.location_in_pv1:
            out.append(segment("AIL", {1: "1", 2: "A", 3: f"{self.clinic}^^^XHYY"}))
        if self.doctor:
            out.append(
                segment(
                    "AIP",
                    {1: "1", 2: "A", 3: f"{self.doctor[0]}^{self.doctor[1]}^{self.doctor[2]}"},
                )
            )
        return out

    def events(self, week):
        data = {
            "patient": self.who.patient(),
            "appointment_id": self.appointment_id,
            "department": department(self.clinic),
            "starts_at": iso(self.starts),
        }
        if self.minutes:
            data["duration_minutes"] = self.minutes
        if self.doctor:
            data["doctor_id"] = self.doctor[0]
        return [("AppointmentScheduled", self.sent, data)]


@dataclasses.dataclass
class AppointmentEnd:
    """SIU^S15 (withdrawn, SCH-6 the reason) or S26 (the patient did not come)."""

    booking: Booking
    sent: datetime.datetime
    missed: bool = False
    reason: tuple = None

    @property
    def who(self):
        return self.booking.who

    @property
    def trigger(self):
        return "SIU^S26^SIU_S26" if self.missed else "SIU^S15^SIU_S12"

    def segments(self, week):
        sch = {1: f"PL{self.booking.appointment_id[2:]}", 2: self.booking.appointment_id}
        if self.reason:
            sch[6] = f"{self.reason[0]}^{esc(self.reason[1])}"
        return [segment("SCH", sch), self.who.pid(), segment("RGS", {1: "1", 2: "A"})]

    def events(self, week):
        data = {"patient": self.who.patient(), "appointment_id": self.booking.appointment_id}
        if self.missed:
            return [("AppointmentMissed", self.sent, data)]
        if self.reason:
            data["reason"] = self.reason[1]
        return [("AppointmentWithdrawn", self.sent, data)]


# -- the week ------------------------------------------------------------------------------
@dataclasses.dataclass
class Message:
    control_id: str
    fact: object
    er7: bytes
    events: list  # the JSON events (envelopes) it stands for


class Week:
    """The facts of one week, in the order the HIS sends them (by MSH-7), in both forms."""

    def __init__(self, monday, today, facts):
        self.monday, self.today = monday, today
        self.facts = sorted(facts, key=lambda fact: fact.sent)
        self.messages = []
        seen_visits = set()
        for n, fact in enumerate(self.facts, start=1):
            if isinstance(fact, Visit):
                self._check_visit_type(fact, seen_visits)
                seen_visits.add(fact.who.mrn)
            control_id = f"WK{n:04d}"
            self.messages.append(
                Message(
                    control_id, fact, self._er7(fact, control_id), self._events(fact, control_id)
                )
            )

    @staticmethod
    def _check_visit_type(visit, seen_visits):
        """The JSON side may only state what the listener infers (docs/HL7.md)."""
        implied = (
            "emergency"
            if visit.visit_type == "emergency"
            else "return"
            if visit.flagged or visit.who.mrn in seen_visits
            else "first"
        )
        if implied != visit.visit_type:
            raise ValueError(
                f"{visit.visit_id}: HL7 implies {implied}, the fact says {visit.visit_type}"
            )

    def _er7(self, fact, control_id):
        who = fact.who
        msh = "|".join(
            [
                "MSH",
                "^~\\&",
                *SENDER,
                "HCRM",
                "HCRM",
                ts(fact.sent),
                "",
                fact.trigger,
                control_id,
                "P",
                who.version,
                "",
                "",
                "",
                "",
                "",
                who.charset,
            ]
        )
        text = "\r".join([msh, *fact.segments(self)]) + "\r"
        return text.encode("gb18030" if "18030" in who.charset else "utf-8")

    def _events(self, fact, control_id):
        stated = fact.events(self)
        base = "|".join([*SENDER, control_id])
        return [
            {
                "event_id": f"{base}#{n}" if len(stated) > 1 else base,
                "event_type": kind,
                "occurred_at": iso(occurred_at),
                "source": SOURCE,
                "data": data,
            }
            for n, (kind, occurred_at, data) in enumerate(stated, start=1)
        ]

    @property
    def events(self):
        return [event for message in self.messages for event in message.events]


def at(day, hhmm):
    hour, minute = map(int, hhmm.split(":"))
    return datetime.datetime.combine(day, datetime.time(hour, minute), HOSPITAL_TZ)


# Ten people (eleven MRNs: 张伟 was registered twice). GB18030 for some, UTF-8 (declared or
# by default) for the others; one name has a character outside GBK (䶮, four bytes in GB18030).
CHEN = Person(
    "M2001",
    "陈",
    "秀兰",
    "F",
    datetime.date(1958, 3, 12),
    "13900001111",
    "东城区",
    national_id="110101195803120025",
    pinyin=("Chen", "Xiulan"),
    phone_in_xtn12=True,
)
WANG = Person(
    "M2002",
    "王",
    "建国",
    "M",
    datetime.date(1965, 8, 20),
    "13800002222",
    "朝阳区",
    charset="GB 18030-2000",
    version="2.4",
)
LI = Person(
    "M2003", "李", "娜", "F", datetime.date(1990, 1, 5), "010-6512 3456", charset="", version="2.4"
)
ZHANG = Person("M2004", "张", "伟", "M", datetime.date(1978, 11, 11), "13700003333", "西城区")
ZHANG_AGAIN = dataclasses.replace(ZHANG, mrn="M2005")
ZHAO = Person(
    "M2006",
    "赵",
    "敏",
    "F",
    datetime.date(1940, 2, 14),
    "13600004444",
    charset="GB 18030-2000",
    version="2.4",
)
SUN = Person("M2007", "孙", "小梅", "F", datetime.date(1985, 6, 1), "13500005555", "丰台区")
HUANG = Person(
    "M2010",
    "黄",
    "丽",
    "F",
    datetime.date(1972, 9, 30),
    "13400006666",
    "通州区",
    charset="GB 18030-2000",
)
OUYANG = Person(
    "M2008", "欧阳", "娜娜", "F", datetime.date(2000, 12, 24), "13300007777", "海淀区&中关村"
)  # an escape sequence (\T\) in XAD-9
LIU = Person(
    "M2009",
    "刘",
    "䶮",
    "M",
    datetime.date(1995, 4, 18),
    "13200008888",
    "昌平区",
    charset="GB 18030-2000",
)
ZHOU = Person("M2011", "周", "杰", "M", datetime.date(1988, 7, 7), "13100009999", charset="")

DR_LIU = ("D017", "刘", "洋")
DR_SUN = ("D031", "孙", "丽")


def hospital_week(monday, today):
    """Last week's feed (Monday `monday`), with appointments reaching into the days after
    `today`: booked, moved, withdrawn, missed and attended."""

    def d(n, hhmm):
        return at(monday + datetime.timedelta(days=n), hhmm)

    def ahead(n, hhmm):
        return at(today + datetime.timedelta(days=n), hhmm)

    chen_phone_changed = dataclasses.replace(CHEN, phone="13900009999")
    wang_in = Admission(WANG, d(0, "23:25"), "IP3003", "CARD", "5B")
    zhao_in = Admission(ZHAO, d(1, "10:55"), "IP3005", "ONC", "3A")
    sun_in = Admission(SUN, d(2, "14:00"), "IP3008", "CARD", "4C")
    huang_in = Admission(HUANG, d(3, "16:00"), "IP3010", "SURG", "6A")
    li_visit = Visit(LI, d(1, "10:00"), "V3004", "0502", "return", flagged=True)
    chen_booking = Booking(CHEN, d(0, "09:20"), "AP5001", ahead(2, "09:00"), "0301", 15, DR_LIU)
    li_booking = Booking(
        LI, d(3, "14:00"), "AP5002", ahead(4, "08:30"), "0502", 30, hours=True, location_in_pv1=True
    )
    zhang_booking = Booking(
        ZHANG, d(3, "09:30"), "AP5003", d(4, "14:00"), "0701", 20, DR_SUN, duration_in_ais=True
    )
    liu_booking = Booking(LIU, d(5, "09:00"), "AP5004", d(6, "10:00"), "0701")
    return Week(
        monday,
        today,
        [
            # Monday
            Visit(CHEN, d(0, "08:50"), "V3001", "0301", "first", DR_LIU, source="friend_referral"),
            chen_booking,
            Visit(WANG, d(0, "22:35"), "V3002", "EM", "emergency"),
            wang_in,
            # Tuesday
            li_visit,
            Cancel(li_visit, d(1, "10:40"), reason=("ERR", "登记错误")),
            zhao_in,
            Profile(chen_phone_changed, d(1, "15:00")),
            # Wednesday
            Visit(
                SUN, d(2, "09:10"), "V3006", "0301", "first", DR_LIU, source="online", offset=True
            ),
            Discharge(wang_in, d(2, "09:20"), "home"),
            Cancel(wang_in, d(2, "09:50"), discharge=True, reason=("CANC", "取消出院")),
            Visit(ZHANG_AGAIN, d(2, "11:00"), "V3007", "0701", "first", DR_SUN),
            sun_in,
            Cancel(sun_in, d(2, "14:30")),
            Discharge(wang_in, d(2, "16:00"), "home"),
            # Thursday
            Profile(HUANG, d(3, "08:30"), trigger="ADT^A28^ADT_A05"),
            Visit(ZHANG, d(3, "09:00"), "V3009", "0701", "first", DR_SUN),
            zhang_booking,
            Merge(ZHANG, ZHANG_AGAIN, d(3, "11:00")),
            li_booking,
            huang_in,
            # Friday
            AppointmentEnd(li_booking, d(4, "09:00"), reason=("PATCAN", "患者取消")),
            Visit(chen_phone_changed, d(4, "09:30"), "V3011", "0301", "return", DR_LIU),
            Visit(OUYANG, d(4, "10:20"), "V3012", "0502", "first", source="friend_referral"),
            AppointmentEnd(zhang_booking, d(4, "15:00"), missed=True),
            # Saturday
            Discharge(zhao_in, d(5, "04:00"), "deceased", died_at=d(5, "03:50")),
            Visit(LIU, d(5, "08:40"), "V3013", "0701", "first", DR_SUN),
            liu_booking,
            # Sunday
            Visit(LIU, d(6, "10:05"), "V3014", "0701", "return", DR_SUN),  # attends AP5004
            Discharge(huang_in, d(6, "11:00"), "transfer"),
            Visit(ZHOU, d(6, "19:30"), "V3015", "0999", "first"),
            dataclasses.replace(
                chen_booking,
                who=chen_phone_changed,
                sent=d(6, "18:00"),
                starts=ahead(3, "10:00"),
                minutes=30,
                moved=True,
            ),
        ],
    )
