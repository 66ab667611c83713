"""HL7 v2 -> contract events (docs/HL7.md): every mapping row, the identity rules, character
sets, escapes, terminators, versions and the AE/AR answers. Every event produced is run
through shared.events.load_event: an HL7 feed must give events the contract accepts."""

import logging
import pathlib
import re
import zoneinfo

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st

from services.hl7.ack import build_ack
from services.hl7.mapping import Hl7Error, MappingSettings, parse, read_header, to_events
from shared.events import load_event

SAMPLES = pathlib.Path(__file__).resolve().parent.parent / "hl7_samples"
# python-hl7 calls logger.warn (deprecated) on a malformed escape; its log stays quiet.
pytestmark = pytest.mark.filterwarnings("ignore:The 'warn' method is deprecated")


# -- fixtures -----------------------------------------------------------------------------
def _blocks(name):
    """{title: message bytes} of a `### title` block file; message lines joined by \\r."""
    text = (SAMPLES / name).read_text(encoding="utf-8")
    blocks = {}
    for block in re.split(r"^### ", text, flags=re.M)[1:]:
        title, _, body = block.partition("\n")
        lines = [line for line in body.split("\n") if line.strip()]
        blocks[title] = ("\r".join(lines) + "\r").encode("utf-8")
    return blocks


PUBLIC = _blocks("public-samples.txt")


def public(fragment):
    """The public sample whose origin line contains `fragment` (verbatim)."""
    (raw,) = [raw for title, raw in PUBLIC.items() if fragment in title]
    return raw


def week():
    return list(_blocks("hospital-week.txt").items())


def sample(name):
    return (SAMPLES / name).read_bytes()


def msh(trigger="A04", version="2.5", kind="ADT", control="C1", charset="", when="20240301093000"):
    tail = f"||||||{charset}" if charset else ""
    return f"MSH|^~\\&|HIS|XHYY|HCRM|HCRM|{when}||{kind}^{trigger}|{control}|P|{version}{tail}"


def fields(name, values):
    """A segment from {position: text}."""
    return name + "|" + "|".join(values.get(i, "") for i in range(1, max(values) + 1))


def pid(more=None, mrn="M1^^^XHYY^MR", name="陈^秀兰"):
    values = {1: "1", 3: mrn, 5: name, 7: "19580312", 8: "F", 13: "13900001111"}
    values.update(more or {})
    return fields("PID", {k: v for k, v in values.items() if v is not None})


def pv1(klass="O", more=None):
    values = {1: "1", 2: klass, 3: "0301^^^XHYY", 19: "V1"}
    values.update(more or {})
    return fields("PV1", {k: v for k, v in values.items() if v is not None})


def evn(trigger="A04", recorded="20240301093000", occurred="20240301092500"):
    return f"EVN|{trigger}|{recorded}||||{occurred}"


def message(*segments, terminator="\r"):
    return (terminator.join(segments) + terminator).encode("utf-8")


def adt(trigger="A04", klass="O", version="2.5", pid_=None, pv1_=None, evn_=None, extra=()):
    return message(
        msh(trigger, version), evn_ or evn(trigger), pid_ or pid(), pv1_ or pv1(klass), *extra
    )


def mapped(raw, has_earlier_visit=lambda mrn: False, **settings):
    """to_events with every event checked against the contract."""
    events = to_events(parse(raw), MappingSettings(**settings), has_earlier_visit)
    for event in events:
        load_event(event)  # raises EventInvalid naming the field
        assert set(event) == {"event_id", "event_type", "occurred_at", "source", "data"}
    return events


def only(raw, **settings):
    (event,) = mapped(raw, **settings)
    return event


def error(raw, **settings):
    with pytest.raises(Hl7Error) as caught:
        mapped(raw, **settings)
    return caught.value


# -- ADT^A04 -> PatientVisited ---------------------------------------------------------------
def test_a04_public_standard_example_is_a_first_outpatient_visit():
    event = only(public("cabolabs-mirth"))
    assert event == {
        "event_id": "REGADT|MCM|000001",
        "event_type": "PatientVisited",
        "occurred_at": "2003-01-10T14:10:00+08:00",
        "source": "hl7",
        "data": {
            "patient": {
                "mrn": "191919",
                "name": "JAMES MASSIE",
                "phone": "900 485-5344",
                "gender": "male",
                "birth_date": "1956-01-29",
                "region": "ISHPEMING",
            },
            "visit_id": "1400",
            "department": "O/R",
            "visit_type": "first",
            "visited_at": "2003-01-10T14:10:00+08:00",
            "doctor_id": "0148",
            "doctor_name": "ADDISON,JAMES",
        },
    }


def test_a04_of_an_emergency_is_an_emergency_visit():
    assert only(adt(klass="E"))["data"]["visit_type"] == "emergency"


def test_a04_readmission_indicator_makes_a_return_visit():
    assert only(adt(pv1_=pv1("O", {13: "R"})))["data"]["visit_type"] == "return"


def test_a04_of_a_patient_seen_before_is_a_return_visit():
    asked = []

    def earlier(mrn):
        asked.append(mrn)
        return True

    assert only(adt(), has_earlier_visit=earlier)["data"]["visit_type"] == "return"
    assert asked == ["M1"]
    assert only(adt())["data"]["visit_type"] == "first"


def test_a04_of_an_inpatient_has_no_row():
    assert mapped(adt(klass="I")) == []


def test_a04_time_is_evn6_then_pv1_44_and_local_times_are_in_the_hospital_zone():
    assert only(adt())["data"]["visited_at"] == "2024-03-01T09:25:00+08:00"
    no_evn6 = adt(evn_="EVN|A04|20240301093000", pv1_=pv1("O", {44: "20240301091500"}))
    assert only(no_evn6)["data"]["visited_at"] == "2024-03-01T09:15:00+08:00"
    assert only(no_evn6, timezone="Europe/London")["occurred_at"] == "2024-03-01T09:15:00+00:00"
    with_offset = adt(evn_=evn(occurred="20240301092500-0500"))
    assert only(with_offset)["data"]["visited_at"] == "2024-03-01T09:25:00-05:00"


def test_a04_department_doctor_and_source_channel():
    raw = adt(pv1_=pv1("O", {7: "D017^刘^洋", 10: "CARD", 14: "7"}))
    data = only(raw, departments={"0301": "心内科"}, patient_sources={"7": "online"})["data"]
    assert data["department"] == "心内科"
    assert (data["doctor_id"], data["doctor_name"]) == ("D017", "刘洋")
    assert data["source_channel"] == "online"


def test_department_mapped_code_wins_else_the_first_code_as_it_is():
    raw = adt(pv1_=pv1("O", {10: "CARD"}))
    assert only(raw)["data"]["department"] == "0301"
    assert only(raw, departments={"CARD": "心血管内科"})["data"]["department"] == "心血管内科"
    only_service = adt(pv1_=pv1("O", {3: "", 10: "CARD"}))
    assert only(only_service)["data"]["department"] == "CARD"
    neither = adt(pv1_=pv1("O", {3: ""}))
    assert error(neither).reason.startswith("PV1-3: no department")


# -- ADT^A01 -> PatientAdmitted ----------------------------------------------------------------
def test_a01_public_sample_is_an_admission():
    event = only(public("simplesender/samples/TestADT.txt"))
    assert event["event_type"] == "PatientAdmitted"
    assert event["event_id"] == "AccMgr|1|603262"
    data = event["data"]
    assert data["patient"]["mrn"] == "999945612"  # the MR repetition, after a PN one
    assert data["patient"]["name"] == "PATIENT LA TEST"
    assert (data["admission_id"], data["ward"]) == ("6635094", "3E")
    assert data["department"] == "MD"  # PV1-10 first for an inpatient: PV1-3 is the ward
    assert data["admitted_at"] == "2006-03-02T12:06:00+08:00"  # PV1-44


def test_a01_of_an_outpatient_has_no_row():
    assert mapped(adt("A01", klass="O")) == []


def test_a01_ward_and_department_through_the_table():
    raw = adt("A01", pv1_=pv1("I", {3: "5B^12^1", 10: "CARD", 44: "20240304232500"}))
    data = only(raw, departments={"CARD": "心血管内科"})["data"]
    assert (data["ward"], data["department"]) == ("5B", "心血管内科")
    assert data["admitted_at"] == "2024-03-04T23:25:00+08:00"


# -- ADT^A03 -> PatientDischarged --------------------------------------------------------------
def test_a03_public_sample_with_its_identifier_type_configured():
    raw = public("hapi-hl7v2")
    assert error(raw).reason == "PID-3: no identifier of type MR"
    event = only(raw, mrn_type_codes=("PK",))
    assert event["event_type"] == "PatientDischarged"
    data = event["data"]
    assert (data["patient"]["mrn"], data["patient"]["name"]) == ("5520255", "ZZZ ZZZ")
    assert data["admission_id"] == "2008003369"
    assert data["department"] == "6402DH"
    assert data["disposition"] == "other"  # PV1-36 empty
    assert data["discharged_at"] == "2008-03-03T15:08:00+08:00"  # EVN-6, no PV1-45


def test_a03_death_by_pid30_overrides_a_home_disposition():
    event = only(public("A03_death.txt"), mrn_type_codes=("MEDREC",))
    data = event["data"]
    assert data["disposition"] == "deceased"
    assert data["discharged_at"] == "2013-02-11T10:00:00+08:00"  # PV1-45
    assert data["patient"]["contact_consent"] is False
    assert data["patient"]["marketing_consent"] is False
    assert data["patient"]["mrn"] == "40800000"


@pytest.mark.parametrize(
    "code,expected",
    [
        ("20", "deceased"),
        ("01", "home"),
        ("07", "against_advice"),
        ("02", "transfer"),
        ("41", "deceased"),
        ("5", "deceased"),
        ("home", "home"),
        ("ZZ", "other"),
        ("", "other"),
    ],
)
def test_a03_disposition_table(code, expected):
    raw = adt("A03", pv1_=pv1("I", {36: code, 45: "20240306092000"}))
    assert only(raw)["data"]["disposition"] == expected


def test_a03_disposition_table_is_configurable_over_the_defaults():
    raw = adt("A03", pv1_=pv1("I", {36: "ZZ"}))
    settings = {"dispositions": {"ZZ": "transfer"}}
    assert only(raw, **settings)["data"]["disposition"] == "transfer"
    assert MappingSettings(**settings).dispositions["20"] == "deceased"
    with pytest.raises(ValueError):
        MappingSettings(dispositions={"ZZ": "gone"})


def test_a03_death_time_from_pid29_when_pv1_45_is_empty():
    raw = adt(
        "A03",
        evn_="EVN|A03|20240309041000",
        pid_=pid({29: "20240309035000", 30: "Y"}),
        pv1_=pv1("I", {36: "20"}),
    )
    data = only(raw)["data"]
    assert data["discharged_at"] == "2024-03-09T03:50:00+08:00"
    assert data["disposition"] == "deceased"


def test_an_outpatient_a03_closes_the_visit_without_an_event():
    assert mapped(adt("A03", klass="O")) == []


# -- ADT^A08 / A28 / A31 -> PatientRegistered --------------------------------------------------
@pytest.mark.parametrize("trigger", ["A08", "A28", "A31"])
def test_profile_updates_are_registrations(trigger):
    event = only(adt(trigger))
    assert event["event_type"] == "PatientRegistered"
    assert event["data"] == {
        "patient": {
            "mrn": "M1",
            "name": "陈秀兰",
            "phone": "13900001111",
            "gender": "female",
            "birth_date": "1958-03-12",
        }
    }
    assert event["occurred_at"] == "2024-03-01T09:25:00+08:00"


def test_a08_public_sample_without_a_typed_mrn_is_refused_not_guessed():
    failure = error(public("nested/06.hl7"))
    assert (failure.code, failure.location) == ("AE", "PID^1^3")
    assert failure.reason == "PID-3: no identifier of type MR"


def test_a_death_in_pid30_ends_every_call_on_a_registration():
    event = only(adt("A08", pid_=pid({29: "20240301080000", 30: "Y"})))
    patient = event["data"]["patient"]
    assert (patient["contact_consent"], patient["marketing_consent"]) == (False, False)
    assert "contact_consent" not in only(adt("A08", pid_=pid({30: "N"})))["data"]["patient"]


# -- ADT^A11 / A13 -> corrections --------------------------------------------------------------
def test_a11_of_an_outpatient_cancels_the_visit():
    event = only(public("Adt/generic/A11.txt"), mrn_type_codes=("MEDREC",))
    assert event["event_type"] == "VisitCancelled"
    assert event["data"]["visit_id"] == "123412341234"
    assert event["data"]["patient"]["name"] == "BLOOD ORANGE"
    assert event["occurred_at"] == "2013-02-11T10:02:52+08:00"  # EVN-2: when it was recorded


def test_a11_of_an_inpatient_cancels_the_admission():
    raw = adt("A11", evn_="EVN|A11|20240305104000||ERR^登记错误", pv1_=pv1("I"))
    event = only(raw)
    assert event["event_type"] == "AdmissionCancelled"
    assert event["data"]["admission_id"] == "V1"
    assert event["data"]["reason"] == "登记错误"


def test_a13_cancels_the_discharge_at_the_time_it_was_recorded():
    event = only(public("Adt/generic/A13.txt"), mrn_type_codes=("MEDREC",))
    assert event["event_type"] == "DischargeCancelled"
    assert event["data"]["admission_id"] == "123412341234"
    assert event["occurred_at"] == "2013-02-11T10:01:52+08:00"  # EVN-2, not the 2010 EVN-6


def test_a13_of_an_outpatient_has_nothing_to_cancel():
    assert mapped(adt("A13", klass="O")) == []


# -- ADT^A40 -> PatientsMerged -----------------------------------------------------------------
def test_a40_public_sample_merges_by_the_assigning_authority_of_an_untyped_mrg1():
    event = only(public("Adt/generic/A40.txt"), mrn_type_codes=("MEDREC",))
    assert event["event_type"] == "PatientsMerged"
    assert event["event_id"] == "EPIC^PMGL^ADTOUT|RRV03|PPPPP111111111111111"
    assert event["data"]["patient"]["mrn"] == "40800001"
    assert event["data"]["merged_mrn"] == "40800000"


def test_a40_mrg1_is_chosen_by_type_code_too():
    raw = message(
        msh("A40"),
        "EVN|A40|20240307110000",
        pid(),
        "MRG|110101195803120025^^^CHN^NNCHN~M9^^^XHYY^MR",
    )
    assert only(raw)["data"]["merged_mrn"] == "M9"
    no_mrn = message(msh("A40"), "EVN|A40|20240307110000", pid(), "MRG|X1^^^CHN^NNCHN")
    assert (error(no_mrn).reason, error(no_mrn).location) == (
        "MRG-1: no identifier of type MR",
        "MRG^1^1",
    )


def test_a40_with_several_pairs_gives_numbered_events():
    raw = message(
        msh("A40", control="M7"),
        "EVN|A40|20240307110000",
        pid(),
        "MRG|M8^^^XHYY^MR",
        pid(mrn="M2^^^XHYY^MR", name="张^伟"),
        "MRG|M9^^^XHYY^MR",
    )
    events = mapped(raw)
    assert [e["event_id"] for e in events] == ["HIS|XHYY|M7#1", "HIS|XHYY|M7#2"]
    assert [(e["data"]["patient"]["mrn"], e["data"]["merged_mrn"]) for e in events] == [
        ("M1", "M8"),
        ("M2", "M9"),
    ]


def test_a40_merging_a_record_into_itself_is_an_error():
    raw = message(msh("A40"), "EVN|A40|20240307110000", pid(), "MRG|M1^^^XHYY^MR")
    assert error(raw).location == "MRG^1^1"
    assert error(message(msh("A40"), "EVN|A40|20240307110000", pid())).reason == (
        "MRG: segment missing"
    )


# -- SIU -> scheduling -------------------------------------------------------------------------
def siu(trigger="S12", version="2.5", sch="SCH|PL1|AP1|||||||15|min", *rest):
    return message(msh(trigger, version, kind="SIU"), sch, *rest)


def test_s12_books_an_appointment():
    raw = siu(
        "S12",
        "2.5",
        "SCH|PL1^HIS|AP1^HIS|||||||15|min^分钟",
        "TQ1|1||||||20240311090000",
        pid(),
        pv1(),
        "RGS|1|A",
        "AIS|1|A|FU^复诊|20240311100000|||20|min",
        "AIL|1|A|0301^^^XHYY",
        "AIP|1|A|D017^刘^洋",
    )
    event = only(raw, departments={"0301": "心内科"})
    assert event["event_type"] == "AppointmentScheduled"
    assert event["occurred_at"] == "2024-03-01T09:30:00+08:00"  # MSH-7: reschedules keep order
    assert event["data"] == {
        "patient": {
            "mrn": "M1",
            "name": "陈秀兰",
            "phone": "13900001111",
            "gender": "female",
            "birth_date": "1958-03-12",
        },
        "appointment_id": "AP1",
        "department": "心内科",
        "doctor_id": "D017",
        "starts_at": "2024-03-11T09:00:00+08:00",
        "duration_minutes": 15,
    }


def test_s12_up_to_24_starts_at_sch_11_4_even_when_resources_say_otherwise():
    raw = siu(
        "S12",
        "2.3",
        "SCH|PL1|AP1|||||||60|m|^^60^20110617084500^20110617093000",
        pid(),
        "RGS|1|A",
        "AIS|1|A|FU|20110614084500",
        "AIL|1|A|OFFICE^^^OFFICE",
    )
    data = only(raw)["data"]
    assert data["starts_at"] == "2011-06-17T08:45:00+08:00"
    assert (data["duration_minutes"], data["department"]) == (60, "OFFICE")


def test_s12_public_v23_sample_has_no_typed_mrn():
    failure = error(public("nonbatch/01.hl7"))
    assert failure.reason == "PID-3: no identifier of type MR"


def test_s12_from_25_starts_at_tq1_7_else_ais_4():
    with_tq1 = siu(
        "S12",
        "2.5",
        "SCH|PL1|AP1|||||||60|m|^^60^20110617084500",
        "TQ1|1||||||20240311090000",
        pid(),
        pv1(),
        "AIS|1|A|FU|20240311100000",
    )
    assert only(with_tq1)["data"]["starts_at"] == "2024-03-11T09:00:00+08:00"
    without = siu("S12", "2.5", "SCH|PL1|AP1", pid(), pv1(), "AIS|1|A|FU|20240311100000||||")
    assert only(without)["data"]["starts_at"] == "2024-03-11T10:00:00+08:00"
    nothing = siu("S12", "2.5", "SCH|PL1|AP1", pid(), pv1())
    failure = error(nothing)
    assert failure.reason == "TQ1-7: no appointment start (TQ1-7, AIS-4, SCH-11)"
    assert failure.location == "TQ1^1^7"


@pytest.mark.parametrize(
    "sch,ais,minutes",
    [
        ("SCH|P|A|||||||45|m", "", 45),
        ("SCH|P|A|||||||0.5|h^hours", "", 30),
        ("SCH|P|A|||||||90|s", "", 2),
        ("SCH|P|A|||||||20", "", 20),
        ("SCH|P|A", "AIS|1|A|FU|20240311100000|||25|min^Minutes", 25),
        ("SCH|P|A", "", None),
    ],
)
def test_duration_from_sch_9_10_else_ais_7_8(sch, ais, minutes):
    rest = [pid(), pv1(), "TQ1|1||||||20240311090000"] + ([ais] if ais else [])
    data = only(siu("S12", "2.5", sch, *rest))["data"]
    assert data.get("duration_minutes") == minutes


def test_duration_in_an_unknown_unit_or_not_a_number_is_an_error():
    rest = (pid(), pv1(), "TQ1|1||||||20240311090000")
    assert error(siu("S12", "2.5", "SCH|P|A|||||||5|fortnight", *rest)).location == "SCH^1^10"
    assert error(siu("S12", "2.5", "SCH|P|A|||||||soon|m", *rest)).reason.startswith("SCH-9")
    assert error(siu("S12", "2.5", "SCH|P|A|||||||inf|m", *rest)).location == "SCH^1^9"
    assert error(siu("S12", "2.5", "SCH|P|A|||||||0|m", *rest)).location == "SCH^1^9"


def test_scheduling_department_from_ail_3_else_pv1_and_id_from_sch_2_else_sch_1():
    raw = siu(
        "S13", "2.5", "SCH|PL9", "TQ1|1||||||20240311090000", pid(), pv1("O", {3: "", 10: "CARD"})
    )
    event = only(raw)
    assert (event["data"]["appointment_id"], event["data"]["department"]) == ("PL9", "CARD")
    assert (
        error(siu("S14", "2.5", "SCH||", "TQ1|1||||||20240311090000", pid(), pv1())).reason
        == "SCH-2: no appointment id (SCH-2, SCH-1)"
    )


@pytest.mark.parametrize("trigger", ["S15", "S17"])
def test_s15_s17_withdraw_the_appointment(trigger):
    event = only(siu(trigger, "2.5", "SCH|PL1|AP1||||PATCAN^患者取消", pid()))
    assert event["event_type"] == "AppointmentWithdrawn"
    assert event["data"]["appointment_id"] == "AP1"
    assert event["data"]["reason"] == "患者取消"


def test_s26_public_sample_is_a_missed_appointment():
    event = only(public("SIU-S26-01.hl7"))
    assert event["event_type"] == "AppointmentMissed"
    assert event["event_id"] == "SCHApp|GHHSFacility^2.16.840.1.122848.1.30^ISO|MSG00026"
    assert event["occurred_at"] == "2021-09-24T10:00:00+02:15"
    assert event["data"]["appointment_id"] == "36996"  # SCH-2, not SCH-1 12345
    patient = event["data"]["patient"]
    assert (patient["mrn"], patient["name"]) == ("PATID1234", "ADAM EVERYMAN")
    assert patient["birth_date"] == "1988-08-18"


@pytest.mark.parametrize(
    "kind,trigger", [("ADT", "A02"), ("ADT", "A05"), ("ADT", "A34"), ("SIU", "S16"), ("SIU", "S22")]
)
def test_other_adt_and_siu_triggers_yield_nothing(kind, trigger):
    raw = message(msh(trigger, kind=kind), evn(trigger), pid(), pv1("I"))
    assert mapped(raw) == []


def test_a_23_adt_without_trigger_in_msh_9_takes_evn_1():
    raw = message(msh("A04", "2.3").replace("ADT^A04", "ADT"), evn("A04"), pid(), pv1())
    assert only(raw)["event_type"] == "PatientVisited"


# -- identity ----------------------------------------------------------------------------------
def test_mrn_is_chosen_by_type_code_never_by_position():
    first_is_national_id = pid(mrn="110101195803120025^^^CHN^NNCHN~M1^^^XHYY^MR")
    assert only(adt(pid_=first_is_national_id))["data"]["patient"]["mrn"] == "M1"
    untyped = pid(mrn="M1")
    assert error(adt(pid_=untyped)).reason == "PID-3: no identifier of type MR"


def test_mrn_type_codes_and_assigning_authority_are_configurable():
    two = pid(mrn="A7^^^OTHER^MR~M1^^^XHYY^MEDREC")
    assert only(adt(pid_=two), mrn_type_codes=("MR", "MEDREC"))["data"]["patient"]["mrn"] == "A7"
    assert (
        only(adt(pid_=two), mrn_type_codes=("MR", "MEDREC"), mrn_assigning_authority="XHYY")[
            "data"
        ]["patient"]["mrn"]
        == "M1"
    )
    failure = error(adt(pid_=two), mrn_assigning_authority="ELSEWHERE")
    assert failure.reason == "PID-3: no identifier of type MR assigned by ELSEWHERE"


def test_missing_mrn_is_an_ae_naming_pid_3():
    failure = error(adt(pid_=pid(mrn="")))
    assert (failure.code, failure.location, failure.error_code) == ("AE", "PID^1^3", "101")
    assert failure.reason.startswith("PID-3:")


@pytest.mark.parametrize(
    "xpn,expected",
    [
        ("陈^秀兰", "陈秀兰"),
        ("Chen^Xiulan^^^^^L^P~陈^秀兰^^^^^L^I", "陈秀兰"),
        ("陈^秀兰^^^^^L^I~Chen^Xiulan^^^^^L^P", "陈秀兰"),
        ("Chen^Xiulan^^^^^L^P", "Xiulan Chen"),
        ("MASSIE^JAMES^A", "JAMES MASSIE"),
        ("欧阳^娜娜", "欧阳娜娜"),
        ("김^민준", "김민준"),
        ("山田^太郎", "山田太郎"),
        ("EVERYMAN&&&&Aniston^ADAM^A", "ADAM EVERYMAN"),
        ("^Madonna", "Madonna"),
    ],
)
def test_names(xpn, expected):
    assert only(adt(pid_=pid(name=xpn)))["data"]["patient"]["name"] == expected


def test_no_name_is_an_ae_naming_pid_5():
    assert error(adt(pid_=pid(name=""))).location == "PID^1^5"


@pytest.mark.parametrize(
    "pid13,pid14,expected",
    [
        ("13900001111", "", "13900001111"),
        ("^PRN^CP^^^^^^^^^13900001111", "", "13900001111"),  # XTN-12 unformatted
        ("^PRN^PH^^^010^65123456", "", "010 65123456"),  # XTN-6 + XTN-7
        ("(407)939-1289^^^theMainMouse@disney.com", "", "407 939-1289"),
        ("^NET^Internet^a@b.cn", "13800002222", "13800002222"),  # e-mail passed over
        ("", "010-6512 3456", "010-6512 3456"),  # PID-14 next
        ("0200 000 0000~07777 000 000", "", "0200 000 0000"),
        ("+86 139 0000 1111", "", "+86 139 0000 1111"),
    ],
)
def test_phone(pid13, pid14, expected):
    raw = adt(pid_=pid({13: pid13, 14: pid14}))
    assert only(raw)["data"]["patient"]["phone"] == expected


def test_no_usable_phone_leaves_it_out():
    raw = adt(pid_=pid({13: "^NET^Internet^a@b.cn"}))
    assert "phone" not in only(raw)["data"]["patient"]


def test_profile_fields_gender_birth_date_district():
    raw = adt(pid_=pid({7: "1958", 8: "男", 11: "建国路88号^^北京市^北京市^^CHN^H^^朝阳区"}))
    patient = only(raw)["data"]["patient"]
    assert "birth_date" not in patient  # a year alone is not a date
    assert (patient["gender"], patient["region"]) == ("male", "朝阳区")
    city = adt(pid_=pid({8: "X", 11: "^^SYRACUSE^NY"}))
    patient = only(city)["data"]["patient"]
    assert "gender" not in patient and patient["region"] == "SYRACUSE"


# -- character sets, escapes, terminators ------------------------------------------------------
def test_utf8_sample_by_msh_18():
    parsed = parse(sample("cn-a04-utf8.hl7"))
    assert (parsed.header.charset, parsed.header.encoding) == ("UNICODE UTF-8", "utf-8")
    data = to_events(parsed, MappingSettings(departments={"0301": "心内科"}))[0]["data"]
    load_event(to_events(parsed, MappingSettings())[0])
    assert data["patient"]["name"] == "陈秀兰"  # the ideographic repetition
    assert data["patient"]["mrn"] == "M1001"  # the MR repetition, after the national id
    assert (data["department"], data["doctor_name"]) == ("心内科", "刘洋")
    assert data["patient"]["region"] == "东城区"


def test_gb18030_sample_is_decoded_by_msh_18():
    raw = sample("cn-a01-gb18030.hl7")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    parsed = parse(raw)
    assert (parsed.header.charset, parsed.header.encoding) == ("GB 18030-2000", "gb18030")
    assert parsed.header.sending_facility == "北京协和示范医院"
    event = only(raw)
    assert event["event_id"] == "HIS|北京协和示范医院|CN0002"
    assert event["data"]["patient"]["name"] == "欧阳娜娜"
    assert event["data"]["department"] == "神经内科"  # PV1-10 of an inpatient
    assert event["data"]["patient"]["region"] == "徐汇区"


@pytest.mark.parametrize("declared", ["GB18030", "GB 18030-2000", "gb18030"])
def test_gb18030_spellings(declared):
    raw = message(msh("A04", charset=declared), evn(), pid(), pv1()).decode().encode("gb18030")
    assert only(raw)["data"]["patient"]["name"] == "陈秀兰"


def test_absent_msh_18_is_the_configured_default():
    raw = sample("cn-a08-no-charset-lf.hl7")
    assert b"\r" not in raw
    parsed = parse(raw)
    assert (parsed.header.charset, parsed.header.encoding) == (None, "utf-8")
    assert only(raw)["data"]["patient"]["name"] == "马丽"
    gb = message(msh("A04"), evn(), pid(), pv1()).decode().encode("gb18030")
    assert (
        to_events(parse(gb, default_charset="GB18030"), MappingSettings())[0]["data"]["patient"][
            "name"
        ]
        == "陈秀兰"
    )
    assert error(gb).reason.startswith("MSH-18: the message is not valid UTF-8")


def test_a_gb18030_byte_that_looks_like_the_separator_does_not_hide_msh_18():
    # 億 is 0x83 0x7C in GB18030: its second byte is "|".
    text = message(msh("A04", charset="GB 18030-2000"), evn(), pid(), pv1()).decode()
    raw = text.replace("|XHYY|", "|億华医院|", 1).encode("gb18030")
    assert "億".encode("gb18030")[1:] == b"|"
    parsed = parse(raw)
    assert parsed.header.encoding == "gb18030"
    assert parsed.header.sending_facility == "億华医院"
    # No MSH-18 (GB18030 configured): the shifted MSH-17 is not taken for a character set.
    shifted = "MSH|^~\\&|HIS|億华医院|HCRM|HCRM|20240301093000||ADT^A04|C1|P|2.5|||||CHN\r"
    header = parse(shifted.encode("gb18030"), default_charset="GB18030").header
    assert (header.charset, header.encoding, header.sending_facility) == (
        None,
        "gb18030",
        "億华医院",
    )


def test_bytes_invalid_in_the_declared_charset_are_an_ae_and_unknown_charsets_an_ar():
    bad = message(msh("A04", charset="UNICODE UTF-8"), evn(), pid(), pv1()).replace(
        "陈".encode(), "陈".encode("gb18030")
    )
    failure = error(bad)
    assert (failure.code, failure.location) == ("AE", "MSH^1^18")
    unknown = message(msh("A04", charset="KLINGON-8"), evn(), pid(), pv1())
    assert (error(unknown).code, error(unknown).location) == ("AR", "MSH^1^18")
    assert read_header(unknown).encoding == "utf-8"  # still answerable


def test_escape_sequences_are_decoded():
    name = "O\\T\\Brien\\F\\x\\S\\y\\R\\z\\E\\^Ann\\H\\e\\N\\"
    assert only(adt(pid_=pid(name=name)))["data"]["patient"]["name"] == "Anne O&Brien|x^y~z\\"


def test_hex_escapes_are_bytes_of_the_message_charset():
    utf8 = adt(pid_=pid(name="\\XE99988\\^\\XE7A780E585B0\\"))
    assert only(utf8)["data"]["patient"]["name"] == "陈秀兰"
    text = message(
        msh("A04", charset="GB18030"),
        evn(),
        pid(name="\\X" + "陈".encode("gb18030").hex().upper() + "\\^秀兰"),
        pv1(),
    )
    assert only(text.decode().encode("gb18030"))["data"]["patient"]["name"] == "陈秀兰"


def test_a_malformed_escape_logs_no_personal_data(caplog):
    caplog.set_level(logging.DEBUG)
    raw = adt(pid_=pid(name="W\\0\\7^Li\\"))
    assert only(raw)["data"]["patient"]["name"] == "Li W7"
    assert "W\\0" not in caplog.text and "Li" not in caplog.text


@pytest.mark.parametrize("terminator", ["\r", "\n", "\r\n"])
def test_segment_terminators(terminator):
    raw = message(msh(), evn(), pid(), pv1(), terminator=terminator)
    assert only(raw)["data"]["visit_id"] == "V1"


def test_mllp_framing_bytes_and_a_bom_are_tolerated():
    raw = b"\x0b\xef\xbb\xbf" + message(msh(), evn(), pid(), pv1()) + b"\x1c\r"
    assert only(raw)["event_type"] == "PatientVisited"


def test_z_segments_and_unknown_segments_are_ignored():
    raw = adt(extra=("ZPI|1|医保^城镇职工", "OBX|1|TX|X||y", "ZZZ"))
    assert only(raw)["event_type"] == "PatientVisited"


# -- versions, types, garbage ------------------------------------------------------------------
@pytest.mark.parametrize(
    "version", ["2.3", "2.3.1", "2.4", "2.5", "2.5.1", "2.6", "2.7", "2.7.1", "2.8", "2.8.2"]
)
def test_supported_versions(version):
    assert only(adt(version=version))["event_type"] == "PatientVisited"


@pytest.mark.parametrize("version", ["2.2", "2.9", "3.0", "", "abc"])
def test_unsupported_versions_are_rejected(version):
    failure = error(adt(version=version))
    assert (failure.code, failure.location, failure.error_code) == ("AR", "MSH^1^12", "203")


@pytest.mark.parametrize("kind,trigger", [("ORU", "R01"), ("ORM", "O01"), ("ACK", "A04"), ("", "")])
def test_other_message_types_are_rejected(kind, trigger):
    raw = message(msh(trigger, kind=kind), "OBR|1")
    failure = error(raw)
    assert (failure.code, failure.location, failure.error_code) == ("AR", "MSH^1^9", "200")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"hello",
        b'{"event_type": "PatientVisited"}',
        b"MSH",
        b"MSH|",
        b"MSHX^~\\&|A",
        b"\x00\xff\xfe garbage",
        b"PID|1||M1^^^X^MR\rMSH|^~\\&|A",
    ],
)
def test_garbage_is_rejected(raw):
    for read in (read_header, parse):
        with pytest.raises(Hl7Error) as caught:
            read(raw)
        assert caught.value.code == "AR"
        assert caught.value.reason.startswith("not an HL7 v2 message")


def test_two_messages_in_one_frame_are_rejected():
    raw = message(msh(control="C1"), evn(), pid(), pv1(), msh(control="C2"), evn(), pid())
    assert read_header(raw).control_id == "C1"
    with pytest.raises(Hl7Error) as caught:
        parse(raw)
    assert caught.value.code == "AR"


# -- content that breaks the contract: AE naming segment and field -----------------------------
@pytest.mark.parametrize(
    "raw,reason,location",
    [
        (
            adt(evn_=evn(occurred="2024-03-01 09:25")),
            "EVN-6: '2024-03-01 09:25' is not an HL7",
            "EVN^1^6",
        ),
        (
            adt(evn_=evn(occurred="20240230")),
            "EVN-6: '20240230' is not a valid date/time",
            "EVN^1^6",
        ),
        (adt(evn_=evn(occurred="202403")), "EVN-6: '202403' is not precise to the day", "EVN^1^6"),
        (adt(pid_=pid({7: "19581312"})), "PID-7: '19581312' is not a valid date", "PID^1^7"),
        (adt(pv1_=pv1("X")), "PV1-2: unknown patient class 'X'", "PV1^1^2"),
        (adt(pv1_=pv1("")), "PV1-2: no patient class", "PV1^1^2"),
        (adt(pv1_=pv1("O", {19: ""})), "PV1-19: no visit number", "PV1^1^19"),
        (message(msh(), evn(), pv1()), "PID: segment missing", "PID^1"),
        (message(msh(), evn(), pid()), "PV1: segment missing", "PV1^1"),
        (
            message(msh(control=""), evn(), pid(), pv1()),
            "MSH-10: no message control id",
            "MSH^1^10",
        ),
        (message(msh(when=""), "EVN|A04", pid(), pv1()), "EVN-6: no visit time", "EVN^1^6"),
    ],
)
def test_contract_breaking_content_is_an_ae_naming_the_field(raw, reason, location):
    failure = error(raw)
    assert failure.code == "AE"
    assert failure.reason.startswith(reason), failure.reason
    assert failure.location == location


def test_bad_date_in_a_later_candidate_is_named_too():
    raw = adt(evn_="EVN|A04|20240301093000", pv1_=pv1("O", {44: "yesterday"}))
    assert error(raw).location == "PV1^1^44"


# -- envelope ----------------------------------------------------------------------------------
def test_envelope_source_and_event_id():
    event = only(adt(), source="his-hl7")
    assert (event["source"], event["event_id"]) == ("his-hl7", "HIS|XHYY|C1")
    assert "#" not in event["event_id"]


def test_settings_are_checked_when_made():
    with pytest.raises(ValueError):
        MappingSettings(patient_classes={"Q": "daycare"})
    with pytest.raises(ValueError):
        MappingSettings(patient_sources={"7": "tv"})
    with pytest.raises(ValueError):
        MappingSettings(default_charset="KLINGON-8")
    with pytest.raises(zoneinfo.ZoneInfoNotFoundError):
        MappingSettings(timezone="Mars/Olympus")
    assert MappingSettings(patient_classes={"D": "outpatient"}).patient_classes["I"] == "inpatient"


def test_read_header_of_a_message():
    header = read_header(public("SIU-S26-01.hl7"))
    assert (header.sending_application, header.sending_facility) == (
        "SCHApp",
        "GHHSFacility^2.16.840.1.122848.1.30^ISO",
    )
    assert (header.receiving_application, header.receiving_facility) == (
        "EHRApp^1.Aux^ISO",
        "GHHRFacility^2.16.840.1.1122848.1.32^ISO",
    )
    assert (header.message_type, header.trigger, header.structure) == ("SIU", "S26", "SIU_S26")
    assert (header.control_id, header.version, header.processing_id) == ("MSG00026", "2.8", "P")
    assert (header.charset, header.encoding) == (None, "utf-8")


def test_read_header_is_tolerant_of_undecodable_bytes():
    raw = message(msh(charset="UNICODE UTF-8"), evn(), pid(), pv1()) + b"\xff\xfe"
    assert read_header(raw).control_id == "C1"


# -- the public samples and a hospital week, end to end ----------------------------------------
def test_every_public_sample_is_answered_and_what_it_yields_is_valid():
    settings = {"mrn_type_codes": ("MR", "MEDREC")}
    outcomes = {}
    for title, raw in PUBLIC.items():
        try:
            outcomes[title] = [e["event_type"] for e in mapped(raw, **settings)]
        except Hl7Error as failure:
            outcomes[title] = failure.code
    assert sorted(map(str, outcomes.values())) == sorted(
        map(
            str,
            [
                ["PatientAdmitted"],
                "AE",
                ["PatientDischarged"],
                ["PatientVisited"],
                "AE",
                ["VisitCancelled"],
                ["DischargeCancelled"],
                ["PatientsMerged"],
                "AE",
                ["AppointmentMissed"],
            ],
        )
    )


def test_a_hospital_week_maps_message_by_message():
    departments = {"0301": "心内科", "CARD": "心血管内科", "EM": "急诊科", "ONC": "肿瘤科"}
    seen_visits, types = set(), []
    for _title, raw in week():
        events = mapped(
            raw, departments=departments, has_earlier_visit=lambda mrn: mrn in seen_visits
        )
        for event in events:
            if event["event_type"] == "PatientVisited":
                seen_visits.add(event["data"]["patient"]["mrn"])
        types.append([e["event_type"] for e in events])
    assert types == [
        ["PatientVisited"],
        ["AppointmentScheduled"],
        ["PatientVisited"],
        ["PatientAdmitted"],
        ["PatientVisited"],
        ["VisitCancelled"],
        ["PatientAdmitted"],
        ["PatientRegistered"],
        ["PatientDischarged"],
        ["DischargeCancelled"],
        ["PatientDischarged"],
        ["AppointmentScheduled"],
        ["PatientRegistered"],
        ["PatientVisited"],
        ["AppointmentScheduled"],
        ["PatientsMerged"],
        ["AppointmentScheduled"],
        ["AppointmentWithdrawn"],
        ["AppointmentMissed"],
        [],
        ["PatientDischarged"],
    ]
    cancel = mapped(week()[9][1])[0]
    redone = mapped(week()[10][1])[0]
    first = mapped(week()[8][1])[0]
    # DischargeCancelled voids discharges up to its time; the redone one is later.
    assert first["occurred_at"] <= cancel["occurred_at"] < redone["occurred_at"]


_SEEDS = list(PUBLIC.values()) + [raw for _, raw in week()] + [sample("cn-a01-gb18030.hl7")]


@hypothesis_settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.sampled_from(_SEEDS),
    edits=st.lists(
        st.tuples(
            st.floats(0, 1),
            st.sampled_from(list(b'|^~\\&\r\n0129AZ "') + [0, 0xFF, 0xE9]),
            st.booleans(),
        ),
        max_size=6,
    ),
)
def test_any_damaged_message_is_answered_never_crashes(seed, edits):
    """Whatever arrives, the listener gets events the contract accepts or an Hl7Error it
    can answer: never another exception."""
    raw = bytearray(seed)
    for where, byte, insert in edits:
        at = int(where * (len(raw) - 1))
        raw[at : at if insert else at + 1] = bytes([byte])
    raw = bytes(raw)
    try:
        events = mapped(raw, mrn_type_codes=("MR", "MEDREC"))
        header = read_header(raw)
        assert build_ack(header, "AA").startswith(b"MSH")
        assert all(e["event_id"].startswith(header.sending_application) for e in events)
    except Hl7Error as failure:
        assert failure.code in ("AE", "AR") and failure.reason
        try:
            header = read_header(raw)
        except Hl7Error:
            return
        assert build_ack(
            header, failure.code, failure.reason, failure.location, error_code=failure.error_code
        ).startswith(b"MSH")
