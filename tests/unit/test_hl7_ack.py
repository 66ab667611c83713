"""Original-mode ACKs (docs/HL7.md, Acknowledgements): read back with python-hl7 field by
field, in the message's version, character set and delimiters."""

import datetime
import pathlib

import hl7
import pytest

from services.hl7.ack import build_ack, build_reject_for_garbage
from services.hl7.mapping import Hl7Error, MappingSettings, parse, read_header, to_events

SAMPLES = pathlib.Path(__file__).resolve().parent.parent / "hl7_samples"
NOW = datetime.datetime(2024, 3, 1, 9, 30, 5, tzinfo=datetime.timezone(datetime.timedelta(hours=8)))


def raw(version="2.5", charset="", encoding="utf-8"):
    tail = f"||||||{charset}" if charset else ""
    return (
        f"MSH|^~\\&|HIS^院内|XHYY|HCRM|HCRM_FAC|20240301093000||ADT^A04^ADT_A01|CTL-7|T|"
        f"{version}{tail}\rPID|1\r"
    ).encode(encoding)


def segments(ack, encoding="utf-8"):
    assert ack.endswith(b"\r") and not ack.startswith(b"\x0b") and b"\x1c" not in ack
    return hl7.parse(ack.decode(encoding))


def test_aa_swaps_applications_and_echoes_the_control_id():
    ack = build_ack(read_header(raw()), "AA", now=NOW, control_id="ACK-1")
    message = segments(ack)
    header = message.segment("MSH")
    assert (str(header(3)), str(header(4))) == ("HCRM", "HCRM_FAC")
    assert (str(header(5)), str(header(6))) == ("HIS^院内", "XHYY")
    assert str(header(7)) == "20240301093005+0800"
    assert str(header(9)) == "ACK^A04^ACK"
    assert (str(header(10)), str(header(11)), str(header(12))) == ("ACK-1", "T", "2.5")
    assert str(message.segment("MSA")) == "MSA|AA|CTL-7"
    with pytest.raises(KeyError):
        message.segment("ERR")
    assert ack.count(b"\r") == 2 and b"\n" not in ack


def test_each_ack_has_a_new_control_id():
    header = read_header(raw())
    ids = {segments(build_ack(header, "AA")).segment("MSH")(10)[0] for _ in range(20)}
    assert len(ids) == 20 and "CTL-7" not in ids


def test_ae_from_25_has_err_2_location_err_3_code_and_err_8_text():
    ack = build_ack(
        read_header(raw("2.5.1")),
        "AE",
        "PID-3: no identifier of type MR",
        "PID^1^3",
        now=NOW,
        control_id="A",
        error_code="101",
    )
    message = segments(ack)
    assert str(message.segment("MSA")) == "MSA|AE|CTL-7|PID-3: no identifier of type MR"
    err = message.segment("ERR")
    assert str(err(1)) == ""
    assert str(err(2)) == "PID^1^3"
    assert str(err(3)) == "101^Required field missing^HL70357"
    assert str(err(4)) == "E"
    assert str(err(8)) == "PID-3: no identifier of type MR"
    assert str(message.segment("MSH")(12)) == "2.5.1"


@pytest.mark.parametrize("version", ["2.3", "2.3.1", "2.4"])
def test_ae_before_25_puts_everything_in_err_1(version):
    ack = build_ack(
        read_header(raw(version)),
        "AE",
        "PV1-44: 'x' is not an HL7 date/time",
        "PV1^1^44",
        now=NOW,
        control_id="A",
        error_code="102",
    )
    err = segments(ack).segment("ERR")
    assert len(err) == 2  # ERR-1 only
    assert str(err(1)) == "PV1^1^44^102&PV1-44: 'x' is not an HL7 date/time&HL70357"
    assert str(segments(ack).segment("MSH")(12)) == version


def test_ar_carries_its_code_and_defaults():
    header = read_header(raw("2.9"))
    ack = build_ack(
        header,
        "AR",
        "MSH-12: version '2.9' is not supported (2.3-2.8)",
        "MSH^1^12",
        now=NOW,
        control_id="A",
        error_code="203",
    )
    message = segments(ack)
    assert str(message.segment("MSH")(12)) == "2.9"  # the message's version, even unsupported
    assert str(message.segment("ERR")(3)) == "203^Unsupported version id^HL70357"
    default = segments(build_ack(header, "AR", "no", now=NOW)).segment("ERR")
    assert str(default(3)).startswith("200^")
    assert str(segments(build_ack(read_header(raw()), "AE", "x")).segment("ERR")(3)).startswith(
        "207^"
    )


def test_an_hl7error_from_the_mapping_becomes_its_ack():
    message = raw().replace(b"PID|1\r", b"PID|1||M1\rPV1|1|O|||||||||||||||||V1\r")
    with pytest.raises(Hl7Error) as caught:
        to_events(parse(message), MappingSettings())
    failure = caught.value
    ack = build_ack(
        read_header(message),
        failure.code,
        failure.reason,
        failure.location,
        error_code=failure.error_code,
    )
    err = segments(ack).segment("ERR")
    assert (str(err(2)), str(err(3)).split("^")[0]) == ("PID^1^3", "101")
    assert str(segments(ack).segment("MSA")(1)) == "AE"


def test_gb18030_message_is_answered_in_gb18030():
    source = (SAMPLES / "cn-a01-gb18030.hl7").read_bytes()
    header = read_header(source)
    ack = build_ack(header, "AE", "PV1-2: 未知的患者类别 'X'", "PV1^1^2", now=NOW, control_id="A")
    with pytest.raises(UnicodeDecodeError):
        ack.decode("utf-8")
    message = segments(ack, "gb18030")
    assert str(message.segment("MSH")(18)) == "GB 18030-2000"
    assert str(message.segment("MSH")(6)) == "北京协和示范医院"
    assert str(message.segment("MSA")(3)) == "PV1-2: 未知的患者类别 'X'"
    assert str(message.segment("MSH")(12)) == "2.4"
    # and our own reader takes it back by its MSH-18
    assert parse(ack).header.encoding == "gb18030"


def test_utf8_message_is_answered_with_its_msh_18():
    header = read_header((SAMPLES / "cn-a04-utf8.hl7").read_bytes())
    message = segments(build_ack(header, "AA", now=NOW, control_id="A"))
    assert str(message.segment("MSH")(18)) == "UNICODE UTF-8"
    assert str(message.segment("MSA")(2)) == "CN0001"


def test_without_msh_18_the_ack_has_none_and_is_utf8():
    ack = build_ack(read_header(raw()), "AA", now=NOW, control_id="A")
    assert len(segments(ack).segment("MSH")) == 13  # up to MSH-12
    ack.decode("utf-8")


def test_an_unknown_charset_is_not_echoed():
    header = read_header(raw(charset="KLINGON-8"))
    ack = build_ack(header, "AR", "MSH-18: unsupported character set", "MSH^1^18")
    assert b"KLINGON" not in ack


def test_text_is_escaped_and_truncated():
    text = "bad | ^ & ~ \\ value " + "x" * 100
    ack = build_ack(read_header(raw()), "AE", text, "PID^1^5", now=NOW, control_id="A")
    message = segments(ack)
    msa3 = message.segment("MSA")(3)
    assert message.unescape(str(msa3)) == text[:80]
    assert message.unescape(str(message.segment("ERR")(8))) == text
    assert len(message.segment("MSA")) == 4 and len(message.segment("ERR")) == 9


def test_the_ack_uses_the_message_delimiters():
    source = (
        "MSH#$*@%#HIS$院内#XHYY#HCRM#HCRM_FAC#20240301093000##ADT$A04#CTL-7#P#2.5\rPID#1\r"
    ).encode()
    header = read_header(source)
    assert header.delimiters == "#$*@%"
    assert header.sending_application == "HIS$院内"
    ack = build_ack(header, "AE", "bad # value", "PID^1^3", now=NOW, control_id="A")
    text = ack.decode()
    assert text.startswith("MSH#$*@%#HCRM#HCRM_FAC#HIS$院内#XHYY#")
    message = hl7.parse(text)
    assert str(message.segment("ERR")(2)) == "PID$1$3"
    assert message.unescape(str(message.segment("MSA")(3))) == "bad # value"


def test_garbage_gets_a_minimal_ar():
    ack = build_reject_for_garbage(
        "not an HL7 v2 message: it does not begin with MSH", now=NOW, control_id="G1"
    )
    message = segments(ack)
    header = message.segment("MSH")
    assert (str(header(9)), str(header(10)), str(header(12))) == ("ACK", "G1", "2.5")
    assert str(message.segment("MSA")) == (
        "MSA|AR||not an HL7 v2 message: it does not begin with MSH"
    )
    assert str(message.segment("ERR")(3)).startswith("100^")
    assert segments(build_reject_for_garbage()).segment("MSA")(1)[0] == "AR"


def test_read_header_raises_for_garbage_so_the_listener_answers_with_the_minimal_ar():
    with pytest.raises(Hl7Error) as caught:
        read_header(b"GET / HTTP/1.1\r\n\r\n")
    assert caught.value.code == "AR"
    ack = build_reject_for_garbage(caught.value.reason)
    assert b"MSA|AR||not an HL7 v2 message" in ack
