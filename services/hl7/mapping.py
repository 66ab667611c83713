"""HL7 v2 ADT/SIU messages -> the inbound events of docs/EVENTS.md (v1.1), per docs/HL7.md.

The ER7 library is python-hl7 (`hl7` on PyPI), chosen over hl7apy after trying both on the
samples of tests/hl7_samples/ (versions 2.3-2.8, Z-segments, repetitions, escapes, GB18030):
- both read every sample; neither decodes bytes by MSH-18 (both take text), so that is ours.
- escapes: hl7apy does not decode escape sequences on read at all (its issue #96 is open) and
  re-escapes `\\X..\\` on output; python-hl7 decodes `\\F\\ \\S\\ \\T\\ \\R\\ \\E\\` and
  `\\X..\\`, and takes an application map, through which `\\X..\\` becomes bytes of the message's
  character set (the library alone makes each byte a character, which garbles UTF-8/GB18030).
- hl7apy builds a versioned, grouped tree (about 35 ms a message here against 2 ms) and
  raises UnsupportedVersion on versions it has no tables for; its named fields are handy, but
  the fields we read move by version anyway (SCH-11 vs TQ1-7), which a flat segment list,
  python-hl7's model, handles plainly - as it does A40's PID/MRG pairs.
- python-hl7: BSD, pure Python, no dependencies; last release 0.4.5 (2022), tracker active
  (2025 issues, 2026 pull requests); hl7apy's last release is 1.3.5 (2024).

The public interface (used by the listener, services/hl7/receiving.py): Hl7Error, Header,
read_header, parse, Parsed, MappingSettings, to_events. Reading bytes is hl7_message.py,
the patient object hl7_patient.py, the ACK ack.py.

Choices the contract leaves open (also in tests/hl7_samples/README.md):
- A death in PID-30 on a profile update (A08/A28/A31): the contract's patient object has no
  "deceased", so the patient is sent with contact_consent=false and marketing_consent=false,
  which ends every call and campaign (on any event mapped from a message with PID-30 = Y).
- occurred_at: the time of the fact (visit, admission, discharge: EVN-6/PV1-44/PV1-45…);
  corrections (A11, A13) use EVN-2, the time the correction was recorded, so a cancellation
  is never older than the discharge it cancels; SIU uses MSH-7, so reschedules keep order.
- Departments: of PV1-3 (point of care) and PV1-10 (hospital service) a code found in the
  table wins; else the first present code, as it is: PV1-3 first for outpatients (the
  clinic), PV1-10 first for inpatients (their PV1-3 is the ward, A01's `ward`).
- A patient class outside the table is AE; a known class that the row does not cover (A04 of
  an inpatient, A01 of an outpatient, an outpatient A03 or A13) yields no event.
"""

import dataclasses
import functools
import math
import re

from services.hl7.hl7_message import (
    DATA_TYPE_ERROR,
    REQUIRED_FIELD_MISSING,
    SEGMENT_SEQUENCE_ERROR,
    TABLE_VALUE_NOT_FOUND,
    UNSUPPORTED_MESSAGE_TYPE,
    UNSUPPORTED_VERSION,
    Header,
    Hl7Error,
    Parsed,
    codec_of,
    parse,
    read_datetime,
    read_header,
    zone_of,
)
from services.hl7.hl7_patient import died, doctor, merged_mrn, patient
from shared.events import DISPOSITIONS, SOURCE_CHANNELS

__all__ = [
    "MAPPED_TRIGGERS",
    "Header",
    "Hl7Error",
    "MappingSettings",
    "Parsed",
    "parse",
    "read_header",
    "to_events",
]

SUPPORTED_VERSIONS = ((2, 3), (2, 8))  # MSH-12 major.minor, inclusive

# PV1-36 discharge disposition (HL7 table 0112; and the 离院方式 codes of China's inpatient
# front sheet, 1-5 and 9) -> the contract's disposition. Keys compare case-insensitively.
DEFAULT_DISPOSITIONS = {
    "01": "home",
    "06": "home",
    "08": "home",
    "HOME": "home",
    "02": "transfer",
    "03": "transfer",
    "04": "transfer",
    "05": "transfer",
    "43": "transfer",
    "51": "transfer",
    "61": "transfer",
    "62": "transfer",
    "63": "transfer",
    "64": "transfer",
    "65": "transfer",
    "66": "transfer",
    "70": "transfer",
    "07": "against_advice",
    "20": "deceased",
    "40": "deceased",
    "41": "deceased",
    "42": "deceased",
    "EXPIRED": "deceased",
    "DIED": "deceased",
    "09": "other",
    "30": "other",
    "50": "other",
    "1": "home",
    "2": "transfer",
    "3": "transfer",
    "4": "against_advice",
    "5": "deceased",
    "9": "other",
}
# PV1-2 patient class (HL7 table 0004) -> what the mapping rows need.
PATIENT_CLASS_KINDS = ("outpatient", "emergency", "inpatient")
DEFAULT_PATIENT_CLASSES = {
    "O": "outpatient",
    "R": "outpatient",
    "E": "emergency",
    "I": "inpatient",
    "B": "inpatient",
}
# PID-8 administrative sex (HL7 table 0001; GB/T 2261.1 codes 1/2 and the characters).
DEFAULT_GENDERS = {
    "M": "male",
    "F": "female",
    "O": "other",
    "A": "other",
    "U": "unknown",
    "N": "unknown",
    "1": "male",
    "2": "female",
    "男": "male",
    "女": "female",
}
# SCH-10 / AIS-8 duration units -> minutes; HL7 says minutes when the unit is empty.
DURATION_UNITS = {
    "S": 1 / 60,
    "SEC": 1 / 60,
    "SECOND": 1 / 60,
    "SECONDS": 1 / 60,
    "M": 1,
    "MIN": 1,
    "MINS": 1,
    "MINUTE": 1,
    "MINUTES": 1,
    "分钟": 1,
    "H": 60,
    "HR": 60,
    "HRS": 60,
    "HOUR": 60,
    "HOURS": 60,
    "小时": 60,
    "D": 1440,
    "DAY": 1440,
    "DAYS": 1440,
}


def _upper_keys(table):
    return {str(k).strip().upper(): v for k, v in (table or {}).items()}


def _checked(name, table, allowed):
    for code, value in table.items():
        if value not in allowed:
            raise ValueError(f"{name}: {code!r} -> {value!r} is not one of {', '.join(allowed)}")
    return table


@dataclasses.dataclass
class MappingSettings:
    """The hospital's side of the mapping (configuration: services/hl7/config.py). The
    tables given are merged over the defaults (a code may be overridden, never lost)."""

    source: str = "hl7"
    timezone: str = "Asia/Shanghai"
    mrn_type_codes: tuple = ("MR",)
    mrn_assigning_authority: str | None = None
    departments: dict = dataclasses.field(default_factory=dict)  # PV1-3/PV1-10/AIL-3 -> name
    dispositions: dict | None = None  # PV1-36 -> home/transfer/against_advice/deceased/other
    patient_classes: dict | None = None  # PV1-2 -> outpatient/emergency/inpatient
    readmission_codes: tuple = ("R",)  # PV1-13 values that make an A04 a return visit
    patient_sources: dict = dataclasses.field(default_factory=dict)  # PV1-14 -> source_channel
    genders: dict | None = None  # PID-8 -> male/female/other/unknown
    default_charset: str = "UTF-8"  # when MSH-18 is empty

    def __post_init__(self):
        self.mrn_type_codes = tuple(self.mrn_type_codes)
        if not self.mrn_type_codes:
            raise ValueError("mrn_type_codes: at least one identifier type code")
        self.readmission_codes = tuple(c.upper() for c in self.readmission_codes)
        self.departments = dict(self.departments or {})
        self.dispositions = _checked(
            "dispositions",
            _upper_keys({**DEFAULT_DISPOSITIONS, **(self.dispositions or {})}),
            DISPOSITIONS,
        )
        self.patient_classes = _checked(
            "patient_classes",
            _upper_keys({**DEFAULT_PATIENT_CLASSES, **(self.patient_classes or {})}),
            PATIENT_CLASS_KINDS,
        )
        self.patient_sources = _checked(
            "patient_sources", _upper_keys(self.patient_sources), SOURCE_CHANNELS
        )
        self.genders = _upper_keys({**DEFAULT_GENDERS, **(self.genders or {})})
        if not codec_of(self.default_charset):
            raise ValueError(f"default_charset: unknown character set {self.default_charset!r}")
        zone_of(self.timezone)  # fails now, not on the first message

    @functools.cached_property
    def zone(self):
        return zone_of(self.timezone)


class _Message:
    """One parsed message with the settings: the lookups every row shares."""

    def __init__(self, parsed, settings, has_earlier_visit):
        self.parsed, self.settings = parsed, settings
        self.has_earlier_visit = has_earlier_visit
        self.evn, self.pv1 = parsed.first("EVN"), parsed.first("PV1")

    def required(self, name):
        segment = self.parsed.first(name)
        if segment is None:
            raise Hl7Error("AE", f"{name}: segment missing", f"{name}^1", SEGMENT_SEQUENCE_ERROR)
        return segment

    def patient(self, pid=None):
        return patient(pid or self.required("PID"), self.settings)

    def time(self, what, *candidates):
        """The first present of ("SEG", field[, component]) (the first such segment) as an
        aware datetime; a present but malformed one is an AE naming it, none at all an AE
        naming the first candidate."""
        for name, field, *component in candidates:
            segment = self.parsed.first(name)
            if segment is not None and segment.text(field, *component):
                return read_datetime(segment, field, self.settings.zone, *component)
        name, field, *_ = candidates[0]
        refs = ", ".join(f"{n}-{f}" for n, f, *_ in candidates)
        raise Hl7Error(
            "AE", f"{name}-{field}: no {what} ({refs})", f"{name}^1^{field}", REQUIRED_FIELD_MISSING
        )

    def event_time(self):
        return self.time("event time", ("EVN", 6), ("EVN", 2), ("MSH", 7))

    def recorded_time(self):
        return self.time("recorded time", ("EVN", 2), ("MSH", 7))

    def message_time(self):
        return self.time("message time", ("MSH", 7))

    def patient_class(self):
        pv1 = self.required("PV1")
        code = pv1.text(2).upper()
        if not code:
            raise pv1.missing(2, "no patient class")
        kind = self.settings.patient_classes.get(code)
        if kind is None:
            raise pv1.error(2, f"unknown patient class {code!r}", TABLE_VALUE_NOT_FOUND)
        return kind

    def record_id(self, segment, field, what, component=1):
        value = segment.text(field, component)
        if not value:
            raise segment.missing(field, f"no {what}")
        if len(value) > 128:
            raise segment.error(field, f"the {what} is longer than 128 characters")
        return value

    def department(self, *candidates):
        """Of the codes at `candidates` (("SEG", field): PL-1 / IS / CWE-1), the first one in
        the departments table gives its name; else the first present code, as it is."""
        table = self.settings.departments
        present = []
        for name, field in candidates:
            segment = self.parsed.first(name)
            if segment is not None and segment.text(field, 1):
                present.append((segment, field, segment.text(field, 1)))
        for _, _, code in present:
            if code in table:
                return table[code]
        if not present:
            name, field = candidates[0]
            refs = ", ".join(f"{n}-{f}" for n, f in candidates)
            raise Hl7Error(
                "AE",
                f"{name}-{field}: no department ({refs})",
                f"{name}^1^{field}",
                REQUIRED_FIELD_MISSING,
            )
        segment, field, code = present[0]
        if len(code) > 100:
            raise segment.error(field, "the department code is longer than 100 characters")
        return code

    def pv1_department(self, inpatient=False):
        """An inpatient's PV1-3 is the ward (nursing unit): PV1-10, the hospital service,
        comes first for them; an outpatient's PV1-3 is the clinic."""
        return self.department(
            *(("PV1", 10), ("PV1", 3)) if inpatient else (("PV1", 3), ("PV1", 10))
        )


def _iso(moment):
    return moment.isoformat()


def _reason(segment, field):
    """A coded reason (CE/CWE): its text, else its code; None when empty."""
    if segment is None:
        return None
    value = segment.text(field, 2) or segment.text(field, 1)
    return value[:500] or None


# -- ADT ----------------------------------------------------------------------------------
def _visit(m):
    kind = m.patient_class()
    if kind == "inpatient":
        return []
    pv1, person = m.pv1, m.patient()
    visited_at = m.time("visit time", ("EVN", 6), ("PV1", 44), ("EVN", 2), ("MSH", 7))
    if kind == "emergency":
        visit_type = "emergency"
    elif pv1.text(13).upper() in m.settings.readmission_codes or m.has_earlier_visit(person["mrn"]):
        visit_type = "return"
    else:
        visit_type = "first"
    data = {
        "patient": person,
        "visit_id": m.record_id(pv1, 19, "visit number"),
        "department": m.pv1_department(),
        "visit_type": visit_type,
        "visited_at": _iso(visited_at),
    }
    doctor_id, doctor_name = doctor(pv1, 7)
    if doctor_id:
        data["doctor_id"] = doctor_id
    if doctor_name:
        data["doctor_name"] = doctor_name
    channel = m.settings.patient_sources.get(pv1.text(14).upper())
    if channel:
        data["source_channel"] = channel
    return [("PatientVisited", visited_at, data)]


def _admission(m):
    if m.patient_class() != "inpatient":
        return []
    pv1 = m.pv1
    admitted_at = m.time("admission time", ("PV1", 44), ("EVN", 6), ("EVN", 2), ("MSH", 7))
    data = {
        "patient": m.patient(),
        "admission_id": m.record_id(pv1, 19, "visit number"),
        "department": m.pv1_department(inpatient=True),
        "admitted_at": _iso(admitted_at),
    }
    ward = pv1.text(3, 1)
    if ward:
        data["ward"] = ward[:100]
    return [("PatientAdmitted", admitted_at, data)]


def _disposition(m):
    if died(m.required("PID")):
        return "deceased"
    code = m.pv1.text(36).upper()
    return m.settings.dispositions.get(code, "other")


def _discharge(m):
    if m.patient_class() != "inpatient":
        return []  # an outpatient A03 closes the visit: nothing to report
    pv1 = m.pv1
    death = died(m.required("PID"))  # then PID-29, the time of death, stands in for PV1-45
    discharged_at = m.time(
        "discharge time",
        ("PV1", 45),
        *([("PID", 29)] if death else []),
        ("EVN", 6),
        ("EVN", 2),
        ("MSH", 7),
    )
    data = {
        "patient": m.patient(),
        "admission_id": m.record_id(pv1, 19, "visit number"),
        "department": m.pv1_department(inpatient=True),
        "discharged_at": _iso(discharged_at),
        "disposition": _disposition(m),
    }
    return [("PatientDischarged", discharged_at, data)]


def _registration(m):
    return [("PatientRegistered", m.event_time(), {"patient": m.patient()})]


def _with_reason(data, reason):
    if reason:
        data["reason"] = reason
    return data


def _cancel_visit_or_admission(m):
    kind, pv1 = m.patient_class(), m.pv1
    reason = _reason(m.evn, 4)
    if kind == "inpatient":
        data = {"patient": m.patient(), "admission_id": m.record_id(pv1, 19, "visit number")}
        return [("AdmissionCancelled", m.recorded_time(), _with_reason(data, reason))]
    data = {"patient": m.patient(), "visit_id": m.record_id(pv1, 19, "visit number")}
    return [("VisitCancelled", m.recorded_time(), _with_reason(data, reason))]


def _cancel_discharge(m):
    if m.patient_class() != "inpatient":
        return []  # an outpatient discharge was never reported
    data = {"patient": m.patient(), "admission_id": m.record_id(m.pv1, 19, "visit number")}
    return [("DischargeCancelled", m.recorded_time(), _with_reason(data, _reason(m.evn, 4)))]


def _merges(m):
    """One PatientsMerged per PID/MRG pair (ADT_A39's PATIENT group repeats)."""
    occurred_at, events, pid = m.event_time(), [], None
    for segment in m.parsed.segments:
        if segment.name == "PID":
            pid = segment
        elif segment.name == "MRG" and pid is not None:
            survivor = m.patient(pid)
            retired = merged_mrn(segment, pid, m.settings)
            if retired == survivor["mrn"]:
                raise segment.error(1, "the retired MRN is the surviving patient's MRN")
            events.append(
                ("PatientsMerged", occurred_at, {"patient": survivor, "merged_mrn": retired})
            )
            pid = None
    if not events:
        m.required("PID")
        raise Hl7Error("AE", "MRG: segment missing", "MRG^1", SEGMENT_SEQUENCE_ERROR)
    return events


# -- SIU ----------------------------------------------------------------------------------
def _appointment_id(m):
    sch = m.required("SCH")
    for field in (2, 1):
        if sch.text(field, 1):
            return m.record_id(sch, field, "appointment id")
    raise sch.missing(2, "no appointment id (SCH-2, SCH-1)")


def _version(header):
    match = re.match(r"^(\d+)\.(\d+)", header.version)
    return (int(match.group(1)), int(match.group(2))) if match else None


def _duration(segment, field):
    """Minutes from a duration (NM) and its units (CE, the next field); None when empty."""
    if segment is None or not segment.text(field):
        return None
    value = segment.text(field)
    try:
        amount = float(value)
    except ValueError:
        amount = math.nan
    if not math.isfinite(amount):
        raise segment.error(field, f"{value!r} is not a number")
    units = [u for u in (segment.text(field + 1, 1), segment.text(field + 1, 2)) if u]
    factor = next(
        (DURATION_UNITS[u.upper()] for u in units if u.upper() in DURATION_UNITS),
        None if units else 1,
    )
    if factor is None:
        raise segment.error(field + 1, f"unknown duration unit {units[0]!r}", TABLE_VALUE_NOT_FOUND)
    minutes = math.ceil(amount * factor - 1e-9)
    if not 1 <= minutes <= 24 * 60:
        raise segment.error(field, f"a duration of {minutes} minutes is outside 1-1440")
    return minutes


def _scheduled(m):
    sch, ais, ail = m.required("SCH"), m.parsed.first("AIS"), m.parsed.first("AIL")
    before_25 = (_version(m.parsed.header) or (2, 5)) < (2, 5)
    # SCH-11 (TQ) is where <= 2.4 puts the start; from 2.5 it is TQ1-7 (SCH-11 deprecated,
    # kept as the last resort).
    starts = [("SCH", 11, 4)] if before_25 else []
    starts += [("TQ1", 7), ("AIS", 4)] + ([] if before_25 else [("SCH", 11, 4)])
    starts_at = m.time("appointment start", *starts)
    appointment_id, person = _appointment_id(m), m.patient()
    if ail is not None and ail.text(3, 1):
        department = m.department(("AIL", 3))  # AIL-3 when sent, mapped or as it is
    else:
        department = m.department(("AIL", 3), ("PV1", 3), ("PV1", 10))
    data = {
        "patient": person,
        "appointment_id": appointment_id,
        "department": department,
        "starts_at": _iso(starts_at),
    }
    duration = _duration(sch, 9)
    if duration is None:
        duration = _duration(ais, 7)
    if duration is not None:
        data["duration_minutes"] = duration
    doctor_id = next((doctor(s, 3)[0] for s in m.parsed.all("AIP") if s.text(3, 1)), "")
    if doctor_id:
        data["doctor_id"] = doctor_id
    return [("AppointmentScheduled", m.message_time(), data)]


def _withdrawn(m):
    data = {"patient": m.patient(), "appointment_id": _appointment_id(m)}
    return [
        (
            "AppointmentWithdrawn",
            m.message_time(),
            _with_reason(data, _reason(m.parsed.first("SCH"), 6)),
        )
    ]


def _missed(m):
    data = {"patient": m.patient(), "appointment_id": _appointment_id(m)}
    return [("AppointmentMissed", m.message_time(), data)]


ROWS = {
    ("ADT", "A04"): _visit,
    ("ADT", "A01"): _admission,
    ("ADT", "A03"): _discharge,
    ("ADT", "A08"): _registration,
    ("ADT", "A28"): _registration,
    ("ADT", "A31"): _registration,
    ("ADT", "A11"): _cancel_visit_or_admission,
    ("ADT", "A13"): _cancel_discharge,
    ("ADT", "A40"): _merges,
    ("SIU", "S12"): _scheduled,
    ("SIU", "S13"): _scheduled,
    ("SIU", "S14"): _scheduled,
    ("SIU", "S15"): _withdrawn,
    ("SIU", "S17"): _withdrawn,
    ("SIU", "S26"): _missed,
}
MAPPED_TRIGGERS = tuple(sorted(f"{kind}^{trigger}" for kind, trigger in ROWS))


def check_supported(header):
    """AR for a message type other than ADT/SIU or a version outside 2.3-2.8."""
    if header.message_type not in ("ADT", "SIU"):
        raise Hl7Error(
            "AR",
            f"MSH-9: message type {header.message_type or '(none)'!r} is not accepted "
            "(ADT and SIU only)",
            "MSH^1^9",
            UNSUPPORTED_MESSAGE_TYPE,
        )
    version = _version(header)
    if version is None or not SUPPORTED_VERSIONS[0] <= version <= SUPPORTED_VERSIONS[1]:
        raise Hl7Error(
            "AR",
            f"MSH-12: version {header.version or '(none)'!r} is not supported (2.3-2.8)",
            "MSH^1^12",
            UNSUPPORTED_VERSION,
        )


def trigger_of(parsed):
    """MSH-9.2; a 2.3 ADT may leave it to EVN-1."""
    evn = parsed.first("EVN")
    return parsed.header.trigger or (evn.text(1).upper() if evn is not None else "")


def to_events(parsed, settings=None, has_earlier_visit=lambda mrn: False):
    """The contract events of one parsed message (JSON-ready dicts: event_id, event_type,
    occurred_at, source, data). [] for an ADT/SIU trigger without a row (answered AA and
    ignored). Raises Hl7Error: AR for another message type or version, AE for content that
    breaks the contract. `has_earlier_visit(mrn)` tells whether the listener has already
    seen a visit of that MRN (an A04 is then a return visit)."""
    settings = settings or MappingSettings()
    header = parsed.header
    check_supported(header)
    row = ROWS.get((header.message_type, trigger_of(parsed)))
    if row is None:
        return []
    if not header.control_id:
        raise Hl7Error("AE", "MSH-10: no message control id", "MSH^1^10", REQUIRED_FIELD_MISSING)
    facts = row(_Message(parsed, settings, has_earlier_visit))
    base = f"{header.sending_application}|{header.sending_facility}|{header.control_id}"
    events = []
    for n, (event_type, occurred_at, data) in enumerate(facts, start=1):
        event_id = f"{base}#{n}" if len(facts) > 1 else base
        if len(event_id) > 128:
            raise Hl7Error(
                "AE",
                "MSH-10: MSH-3|MSH-4|MSH-10 is longer than the 128 characters of an event_id",
                "MSH^1^10",
                DATA_TYPE_ERROR,
            )
        events.append(
            {
                "event_id": event_id,
                "event_type": event_type,
                "occurred_at": _iso(occurred_at),
                "source": settings.source,
                "data": data,
            }
        )
    return events
