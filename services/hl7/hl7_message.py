"""One ER7 message read: bytes -> text by MSH-18, python-hl7's tree, and typed access to it.

The ER7 syntax itself (separators, repetitions, components, escape sequences) is
python-hl7's; this module adds what the library leaves to its caller (docs/HL7.md, "Versions,
characters, identity"):
- the character set: MSH-18 is read from the raw bytes *before* decoding (MSH is ASCII) and
  names the codec; absent, the configured default (UTF-8);
- segment terminators: `\\r`, `\\r\\n`, and `\\n` alone in a message that has no `\\r`;
- `\\X..\\` hex escapes decoded as bytes of the message's character set (the library turns
  each byte into one character, which garbles UTF-8 and GB18030);
- HL7 times (TS/DTM) to aware datetimes, in the hospital's zone when they carry no offset;
- errors that name the segment and field, with their ERR location (`PID^1^3`).
"""

import codecs
import dataclasses
import datetime
import logging
import re
import zoneinfo

import hl7

# python-hl7 logs the raw text of a field whose escape sequence it cannot decode - a
# patient's name, unmasked. Personal data never reaches a log (shared/log.py), and the
# field is decoded as well as it can be anyway: its logger stays quiet.
hl7.util.logger.setLevel(logging.CRITICAL)

# HL7 table 0357 (message error condition codes) as ERR-3 / ERR-1.4 carry them.
REQUIRED_FIELD_MISSING = "101"
DATA_TYPE_ERROR = "102"
TABLE_VALUE_NOT_FOUND = "103"
SEGMENT_SEQUENCE_ERROR = "100"
UNSUPPORTED_MESSAGE_TYPE = "200"
UNSUPPORTED_VERSION = "203"
APPLICATION_ERROR = "207"
ERROR_CODE_TEXTS = {
    SEGMENT_SEQUENCE_ERROR: "Segment sequence error",
    REQUIRED_FIELD_MISSING: "Required field missing",
    DATA_TYPE_ERROR: "Data type error",
    TABLE_VALUE_NOT_FOUND: "Table value not found",
    UNSUPPORTED_MESSAGE_TYPE: "Unsupported message type",
    UNSUPPORTED_VERSION: "Unsupported version id",
    APPLICATION_ERROR: "Application internal error",
}

STANDARD_DELIMITERS = "|^~\\&"  # field, component, repetition, escape, subcomponent

# MSH-18 (HL7 table 0211, plus the names Chinese HIS actually send) -> Python codec.
# GBK and GB2312 are subsets of GB18030, so decoding them as GB18030 is exact.
CHARSETS = {
    "ASCII": "ascii",
    "ISO IR6": "ascii",
    "8859/1": "latin-1",
    "ISO IR100": "latin-1",
    "8859/2": "iso8859-2",
    "8859/5": "iso8859-5",
    "8859/7": "iso8859-7",
    "8859/9": "iso8859-9",
    "8859/15": "iso8859-15",
    "UNICODE UTF-8": "utf-8",
    "UTF-8": "utf-8",
    "UTF8": "utf-8",
    "ISO IR192": "utf-8",
    "GB 18030-2000": "gb18030",
    "GB 18030-2005": "gb18030",
    "GB18030": "gb18030",
    "GB 18030": "gb18030",
    "GBK": "gb18030",
    "GB2312": "gb18030",
    "BIG-5": "big5",
    "BIG5": "big5",
}


class Hl7Error(Exception):
    """The message cannot be turned into events. `code` is the ACK code ("AE": HL7 whose
    content breaks the contract; "AR": not accepted at all), `reason` names the segment and
    field ("PID-3: no identifier of type MR"), `location` is its ERR form ("PID^1^3"), and
    `error_code` the HL7 table 0357 code for ERR-3 ("101" required field missing…)."""

    def __init__(self, code, reason, location=None, error_code=None):
        super().__init__(reason)
        self.code = code
        self.reason = reason
        self.location = location
        self.error_code = error_code or (
            UNSUPPORTED_MESSAGE_TYPE if code == "AR" else APPLICATION_ERROR
        )


def codec_of(charset):
    """The Python codec for an MSH-18 value (or a Python codec name), None when unknown."""
    if not charset:
        return None
    known = CHARSETS.get(" ".join(charset.split()).upper())
    if known:
        return known
    try:
        return codecs.lookup(charset).name
    except (LookupError, ValueError):  # ValueError: a NUL in a damaged MSH-18
        return None


@dataclasses.dataclass
class Header:
    """MSH as the ACK and the listener need it. Application and facility fields are the ER7
    text as sent (components included), so the ACK can echo them exactly."""

    sending_application: str
    sending_facility: str
    receiving_application: str
    receiving_facility: str
    control_id: str
    message_type: str  # MSH-9.1, "ADT"
    trigger: str  # MSH-9.2, "A04"
    structure: str  # MSH-9.3, "ADT_A01" ("" before 2.3.1 or when not sent)
    version: str  # MSH-12.1, "2.5"
    charset: str | None  # MSH-18 (first repetition) as sent; None when absent
    encoding: str  # the Python codec the message was decoded with
    processing_id: str  # MSH-11.1, "P"
    delimiters: str = STANDARD_DELIMITERS  # MSH-1 + MSH-2, so the ACK can use the same


def _frame(raw):
    """The message's bytes, segments ended by \\r, without MLLP framing bytes, a UTF-8 byte
    order mark or surrounding whitespace."""
    body = bytes(raw).strip(b"\x0b\x1c\r\n\t ")
    if body.startswith(codecs.BOM_UTF8):
        body = body[len(codecs.BOM_UTF8) :]
    if b"\r" in body:
        return body.replace(b"\r\n", b"\r")
    return body.replace(b"\n", b"\r")


def _not_hl7(reason):
    return Hl7Error("AR", f"not an HL7 v2 message: {reason}", "MSH^1", SEGMENT_SEQUENCE_ERROR)


def _msh_bytes(body):
    """The MSH segment's fields as bytes, index n = MSH-n (MSH-1 is the separator itself)."""
    if not body.startswith(b"MSH") or len(body) < 8:
        raise _not_hl7("it does not begin with an MSH segment")
    separator = body[3:4]
    if separator.isalnum() or separator.isspace() or not 0x21 <= separator[0] <= 0x7E:
        raise _not_hl7("MSH-1 is not a field separator")
    parts = body.split(b"\r", 1)[0].split(separator)
    encoding_chars = parts[1].decode("ascii", "replace")
    if len(encoding_chars) < 2 or any(c.isalnum() or c.isspace() for c in encoding_chars):
        raise _not_hl7("MSH-2 does not hold the encoding characters")
    return [b"MSH", separator] + parts[1:]


def _charset_guess(fields):
    """The codec MSH-18 names, read from the bytes (None when absent or unknown). A GB18030
    character in MSH-3…6 may hold the byte of `|` and shift the fields: then a known name
    further right is taken. Only a first guess: the decoded message's MSH-18 decides."""
    repetition = fields[2][1:2]

    def value(index):
        text = fields[index].split(repetition)[0].decode("ascii", "replace")
        return " ".join(text.split()).upper()

    if len(fields) > 18 and codec_of(value(18)):
        return codec_of(value(18))
    return next((CHARSETS[value(i)] for i in range(19, len(fields)) if value(i) in CHARSETS), None)


def _text_field(msh, index):
    return str(msh[index]) if index < len(msh) else ""


def _header(message, encoding):
    msh = message.segment("MSH")
    typed = Segment(msh, 1, Escapes(encoding), message.esc)
    charset = typed.text(18) or None
    return Header(
        sending_application=_text_field(msh, 3),
        sending_facility=_text_field(msh, 4),
        receiving_application=_text_field(msh, 5),
        receiving_facility=_text_field(msh, 6),
        control_id=typed.text(10),
        message_type=typed.text(9, 1).upper(),
        trigger=typed.text(9, 2).upper(),
        structure=typed.text(9, 3).upper(),
        version=typed.text(12),
        charset=charset,
        encoding=encoding,
        processing_id=typed.text(11),
        delimiters=str(msh[1]) + str(msh[2])[:4],
    )


def _read(body, encoding, strict, label=None):
    """(python-hl7 message, Header) of `body` decoded with `encoding` (`label`: its name as
    the message or the configuration gives it)."""
    try:
        text = body.decode(encoding, "strict" if strict else "replace")
    except UnicodeDecodeError as exc:
        raise Hl7Error(
            "AE",
            f"MSH-18: the message is not valid {label or encoding} text (byte {exc.start})",
            "MSH^1^18",
            DATA_TYPE_ERROR,
        ) from None
    try:
        message = hl7.parse(text)
        return message, _header(message, encoding)
    except Exception as exc:  # the library's own errors are of several kinds
        raise _not_hl7(f"python-hl7 cannot read it ({exc.__class__.__name__})") from None


def _decode(raw, default_charset, strict):
    body = _frame(raw)
    default = codec_of(default_charset) or "utf-8"
    guess = _charset_guess(_msh_bytes(body)) or default
    message, header = _read(body, guess, strict=False)
    encoding = codec_of(header.charset) if header.charset else default
    if encoding is None:
        if strict:
            raise Hl7Error(
                "AR",
                f"MSH-18: unsupported character set {header.charset!r}",
                "MSH^1^18",
                APPLICATION_ERROR,
            )
        encoding = guess
    if strict or encoding != guess:
        message, header = _read(body, encoding, strict, header.charset or default_charset)
    return message, header


def read_header(raw, default_charset="UTF-8"):
    """The MSH of `raw` (bytes), enough to answer it. Tolerant: undecodable bytes are
    replaced; raises Hl7Error("AR") only when there is no usable MSH at all."""
    return _decode(raw, default_charset, strict=False)[1]


@dataclasses.dataclass
class Parsed:
    """A decoded message: its header and python-hl7's tree (`message`)."""

    header: Header
    message: hl7.Message

    def __post_init__(self):
        escapes, counts, self._segments = Escapes(self.header.encoding), {}, []
        for segment in self.message:
            name = str(segment[0]).upper()
            counts[name] = counts.get(name, 0) + 1
            self._segments.append(Segment(segment, counts[name], escapes, self.message.esc))

    @property
    def segments(self):
        """Every segment in order, each with its sequence number among its kind."""
        return list(self._segments)

    def all(self, name):
        return [s for s in self._segments if s.name == name]

    def first(self, name):
        return next((s for s in self._segments if s.name == name), None)


def parse(raw, default_charset="UTF-8"):
    """`raw` (bytes) decoded by its MSH-18 and parsed. Raises Hl7Error: AR for what is not
    HL7 (or names a character set we do not know), AE for bytes invalid in the character
    set, AR for two messages in one frame."""
    message, header = _decode(raw, default_charset, strict=True)
    parsed = Parsed(header, message)
    if len(parsed.all("MSH")) > 1:
        raise Hl7Error(
            "AR",
            "MSH: more than one message in one frame (no batches)",
            "MSH^2",
            SEGMENT_SEQUENCE_ERROR,
        )
    return parsed


class Escapes(dict):
    """python-hl7's unescape consults an application map first. This one decodes `\\Xhh…\\`
    as bytes in the message's character set (the library would make each byte a character)
    and drops highlighting `\\H\\ \\N\\` (the library writes `_`)."""

    def __init__(self, encoding):
        super().__init__(H="", N="")
        self.encoding = encoding

    @staticmethod
    def _is_hex(key):
        digits = key[1:]
        return (
            key[:1] == "X"
            and digits
            and len(digits) % 2 == 0
            and all(c in "0123456789abcdefABCDEF" for c in digits)
        )

    def __contains__(self, key):
        return super().__contains__(key) or self._is_hex(key)

    def __getitem__(self, key):
        if super().__contains__(key):
            return super().__getitem__(key)
        return bytes.fromhex(key[1:]).decode(self.encoding, "replace")


def _leaf(node, path):
    """The raw text at `path` (repetition, component, subcomponent; 1-based) of a python-hl7
    field. A path that goes deeper than the tree is satisfied only by 1s (python-hl7's own
    rule); a tree deeper than the path yields its first leaf."""
    for index in path:
        if isinstance(node, str):
            return node if index == 1 else ""
        if index > len(node):
            return ""
        node = node[index - 1]
    while not isinstance(node, str):
        node = node[0] if len(node) else ""
    return node


class Segment:
    """One segment with field access by HL7 position, unescaped, `""` (HL7 null) as empty."""

    def __init__(self, segment, sequence, escapes, esc):
        self._segment, self.sequence = segment, sequence
        self._escapes, self._esc = escapes, esc
        self.name = str(segment[0]).upper()

    def _field(self, number):
        return self._segment[number] if number < len(self._segment) else ""

    def _clean(self, raw):
        raw = raw.strip()
        if raw == '""':
            return ""
        if self._esc and self._esc in raw:
            raw = hl7.util.unescape(self._segment, raw, self._escapes)
        return raw.strip()

    def text(self, field, component=1, subcomponent=1, repetition=1):
        """Field `field` (e.g. PID-3 is text(3)), its first repetition unless told."""
        return self._clean(_leaf(self._field(field), (repetition, component, subcomponent)))

    def repetitions(self, field):
        node = self._field(field)
        count = 1 if isinstance(node, str) else max(len(node), 1)
        return [Repetition(self, field, n) for n in range(1, count + 1)]

    def ref(self, field):
        return f"{self.name}-{field}"

    def location(self, field=None):
        return f"{self.name}^{self.sequence}" + (f"^{field}" if field else "")

    def error(self, field, what, error_code=DATA_TYPE_ERROR, code="AE"):
        return Hl7Error(code, f"{self.ref(field)}: {what}", self.location(field), error_code)

    def missing(self, field, what):
        return self.error(field, what, REQUIRED_FIELD_MISSING)


class Repetition:
    """One repetition of a repeating field (PID-3, PID-5, PID-13…)."""

    def __init__(self, segment, field, number):
        self.segment, self.field, self.number = segment, field, number

    def text(self, component=1, subcomponent=1):
        return self.segment.text(self.field, component, subcomponent, self.number)


# -- times ------------------------------------------------------------------------------------
_TS = re.compile(
    r"^(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?(?:\.(\d{1,4}))?"
    r"(?:([+-])(\d{2})(\d{2}))?$"
)


def _ts_parts(segment, field, value):
    match = _TS.match(value)
    if not match:
        raise segment.error(field, f"{value!r} is not an HL7 date/time (YYYYMMDD[HHMM[SS]][+ZZZZ])")
    return match.groups()


def read_datetime(segment, field, zone, component=1):
    """Segment field as an aware datetime (None when empty). No offset: the hospital's zone.
    Raises AE naming the field when it does not parse or has less than a day's precision."""
    value = segment.text(field, component)
    if not value:
        return None
    year, month, day, hour, minute, second, fraction, sign, off_h, off_m = _ts_parts(
        segment, field, value
    )
    if not day:
        raise segment.error(field, f"{value!r} is not precise to the day")
    try:
        tz = zone
        if sign:
            offset = datetime.timedelta(hours=int(off_h), minutes=int(off_m))
            tz = datetime.timezone(-offset if sign == "-" else offset)
        return datetime.datetime(
            int(year),
            int(month),
            int(day),
            int(hour or 0),
            int(minute or 0),
            int(second or 0),
            int((fraction or "0").ljust(6, "0")),
            tzinfo=tz,
        )
    except ValueError as exc:
        raise segment.error(field, f"{value!r} is not a valid date/time ({exc})") from None


def read_date(segment, field):
    """Segment field's calendar date as written (None when empty or less precise than a
    day: a contract date is a whole date). AE when it does not parse."""
    value = segment.text(field)
    if not value:
        return None
    year, month, day = _ts_parts(segment, field, value)[:3]
    if not day:
        return None
    try:
        return datetime.date(int(year), int(month), int(day))
    except ValueError as exc:
        raise segment.error(field, f"{value!r} is not a valid date ({exc})") from None


def zone_of(name):
    return zoneinfo.ZoneInfo(name)
