"""Original-mode acknowledgements (docs/HL7.md, "Acknowledgements").

The ACK answers in the message's own terms: sending and receiving application/facility
swapped, MSH-9 `ACK^<trigger>^ACK`, a new MSH-10, the message's version (MSH-12), character
set (MSH-18, and encoded in it) and delimiters; MSA-1 the code, MSA-2 the message's MSH-10,
MSA-3 the text. AE and AR carry an ERR segment laid out for the version: from 2.5 ERR-2
(location), ERR-3 (HL7 table 0357 code), ERR-4 severity and ERR-8 (the text); before 2.5 all
of it in ERR-1 (segment^sequence^field^code&text&HL70357). Segments end with \\r; the bytes
are not MLLP-framed (the listener frames them).
"""

import datetime
import re

import hl7

from services.hl7.hl7_message import (
    APPLICATION_ERROR,
    ERROR_CODE_TEXTS,
    SEGMENT_SEQUENCE_ERROR,
    STANDARD_DELIMITERS,
    UNSUPPORTED_MESSAGE_TYPE,
    Header,
    codec_of,
)

DEFAULT_VERSION = "2.5"
MSA_TEXT_MAX = 80  # MSA-3 is an ST of 80 characters up to 2.4
ERR_TEXT_MAX = 250  # ERR-8 is a TX of 250


def _version_tuple(version):
    match = re.match(r"^(\d+)\.(\d+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


class _Writer:
    """Field text in the message's delimiters; escaping is python-hl7's (non-ASCII text is
    written as it is: the ACK is encoded in the message's character set)."""

    def __init__(self, delimiters):
        if len(delimiters) < 5:
            delimiters = STANDARD_DELIMITERS
        self.field, self.component, self.repetition, self.esc, self.sub = delimiters[:5]
        self._container = hl7.Message(
            separator="\r",
            esc=self.esc,
            separators="\r" + self.field + self.repetition + self.component + self.sub,
        )

    def escape(self, text):
        return "".join(
            c if ord(c) > 0x7E else hl7.util.escape(self._container, c)
            for c in (text or "").replace("\r\n", "\r").replace("\n", "\r")
        )

    def components(self, *parts):
        return self.component.join(parts).rstrip(self.component)

    def subcomponents(self, *parts):
        return self.sub.join(parts).rstrip(self.sub)

    def segment(self, name, *fields):
        return self.field.join((name,) + fields).rstrip(self.field)


def _timestamp(now):
    now = now or datetime.datetime.now(datetime.UTC).astimezone()
    return now.strftime("%Y%m%d%H%M%S") + (now.strftime("%z") if now.tzinfo else "")


def _location(writer, location):
    """ "PID^1^3" (the ERR form Hl7Error.location uses) in the message's delimiters."""
    return writer.components(*(location or "").split("^")) if location else ""


def build_ack(
    header, code, text=None, error_location=None, now=None, control_id=None, error_code=None
):
    """The ACK of a message with `header` (bytes in the message's character set).

    `code` AA, AE or AR; `text` the reason (MSA-3, ERR text); `error_location` an ERR
    location like "PID^1^3"; `error_code` the HL7 table 0357 code for the ERR (default
    207 application error for AE, 200 unsupported message type for AR: pass
    Hl7Error.error_code); `now` and `control_id` fixed for tests."""
    writer = _Writer(header.delimiters or STANDARD_DELIMITERS)
    version = header.version or DEFAULT_VERSION
    # MSH-18 only when it is the character set the ACK is written in (a name we could not
    # read is not repeated back).
    charset = (
        header.charset if header.charset and codec_of(header.charset) == header.encoding else ""
    )
    trigger = writer.escape(header.trigger)
    msh = writer.field.join(
        [
            "MSH",
            writer.component + writer.repetition + writer.esc + writer.sub,
            header.receiving_application,
            header.receiving_facility,
            header.sending_application,
            header.sending_facility,
            _timestamp(now),
            "",
            writer.components("ACK", trigger, "ACK") if trigger else "ACK",
            writer.escape(control_id or hl7.util.generate_message_control_id()),
            writer.escape(header.processing_id or "P"),
            writer.escape(version),
            "",
            "",
            "",
            "",
            "",
            writer.escape(charset),
        ]
    ).rstrip(writer.field)
    segments = [
        msh,
        writer.segment(
            "MSA",
            code,
            writer.escape(header.control_id),
            writer.escape((text or "")[:MSA_TEXT_MAX]),
        ),
    ]
    if code in ("AE", "AR"):
        segments.append(_err(writer, version, code, text, error_location, error_code))
    encoding = header.encoding or "utf-8"
    return ("\r".join(segments) + "\r").encode(encoding, "replace")


def _err(writer, version, code, text, location, error_code):
    error_code = error_code or (UNSUPPORTED_MESSAGE_TYPE if code == "AR" else APPLICATION_ERROR)
    code_text = ERROR_CODE_TEXTS.get(error_code, "")
    message = writer.escape((text or code_text)[:ERR_TEXT_MAX])
    if (_version_tuple(version) or (2, 5)) >= (2, 5):
        return writer.segment(
            "ERR",
            "",
            _location(writer, location),
            writer.components(error_code, writer.escape(code_text), "HL70357"),
            "E",
            "",
            "",
            "",
            message,
        )
    # <= 2.4: ERR-1 is an ELD: segment^sequence^field^code&text&table.
    place = (location or "").split("^")[:3]
    place += [""] * (3 - len(place))
    return writer.segment(
        "ERR", writer.components(*place, writer.subcomponents(error_code, message, "HL70357"))
    )


def build_reject_for_garbage(
    text="not an HL7 v2 message: no usable MSH segment", now=None, control_id=None
):
    """An AR for bytes that are not HL7 at all: a minimal MSH (version 2.5, UTF-8, our
    defaults) since there is no header to answer in the sender's terms."""
    header = Header(
        sending_application="",
        sending_facility="",
        receiving_application="",
        receiving_facility="",
        control_id="",
        message_type="",
        trigger="",
        structure="",
        version=DEFAULT_VERSION,
        charset=None,
        encoding="utf-8",
        processing_id="P",
    )
    return build_ack(
        header, "AR", text, now=now, control_id=control_id, error_code=SEGMENT_SEQUENCE_ERROR
    )
