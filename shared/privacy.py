"""Patients' data rights, the pure part every service shares: what an erased person's events
keep, what an old event keeps after its retention period, and how free text is cleared of a
person's name, phone and MRN. No I/O here; each service's privacy.py applies these rules to
its own store (docs/ARCHITECTURE.md rule 1), and README.md § Data protection says why.

Both reductions are ALLOW-lists: an event keeps the ids, times, codes and departments its
type lists (shared/minimise.py, the same list the analytics stream uses, plus the inbound
scheduling types the stream leaves out), and nothing else. A field added to an event later
is therefore dropped by an erasure until someone decides it may stay.
"""

import datetime
import json
import re
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from shared.minimise import CODED_FIELDS, REASON_CODES, STREAM_FIELDS
from shared.phones import phone_digits

ERASED_EVENT = "PatientErased"
ERASED_REASON = (
    "erased"  # the reason code of what an erasure cancels (calls, reminders, complaints)
)
ERASED_TEXT = (
    "(erased)"  # what replaces a free text that must stay non-empty (a complaint's description)
)

# What intake's record derives from an event's `patient` (services/intake/domain.py).
PROFILE_FIELDS = (
    "name",
    "phone",
    "gender",
    "birth_date",
    "region",
    "contact_consent",
    "marketing_consent",
)

# Inbound types the stream leaves out (one name per fact) still need their ids and times kept
# in the services' own copies: the appointments mirror keys on them.
RECORD_FIELDS = {
    **STREAM_FIELDS,
    "AppointmentScheduled": (
        "appointment_id",
        "department",
        "doctor_id",
        "starts_at",
        "duration_minutes",
    ),
    "AppointmentWithdrawn": ("appointment_id",),
    "AppointmentMissed": ("appointment_id",),
    # Intake's record lists the MRNs merged into it: an old merge keeps its retired MRN until
    # the person is erased (erased_data drops it).
    "PatientsMerged": STREAM_FIELDS["PatientsMerged"] + ("merged_mrn",),
}


def _kept(event_type: str, data: Mapping[str, Any] | None) -> dict[str, Any]:
    data = data or {}
    kept = {key: data[key] for key in RECORD_FIELDS.get(event_type, ()) if key in data}
    for key in CODED_FIELDS.get(event_type, ()):
        if isinstance(data.get(key), str) and data[key] in REASON_CODES:
            kept[key] = data[key]
    return kept


def erased_data(event_type: str, data: Mapping[str, Any] | None) -> dict[str, Any]:
    """The `data` an erased person's event keeps: ids, times, codes and departments that
    counts and figures are derived from; no person, no MRN, no free text."""
    kept = _kept(event_type, data)
    kept.pop("merged_mrn", None)
    if "patient" in (data or {}):
        kept["patient"] = {}
    return kept


def retained_data(
    event_type: str, data: Mapping[str, Any] | None, keep: Iterable[str] = ()
) -> dict[str, Any]:
    """The `data` an event keeps once its retention period is over: what erased_data keeps,
    the retired MRN of a merge (the record lists it), and of `patient` only the fields in
    `keep`: those this event is the latest statement of (latest_statements), which the
    person's current record shows anyway and which a re-projection reads."""
    kept = _kept(event_type, data)
    if "patient" in (data or {}):
        patient = (data or {}).get("patient") or {}
        kept["patient"] = {field: patient[field] for field in keep if field in patient}
    return kept


def _order(event: Mapping[str, Any]) -> tuple[datetime.datetime, str]:
    moment = event.get("occurred_at")
    if isinstance(moment, str):
        moment = datetime.datetime.fromisoformat(moment)
    if isinstance(moment, datetime.datetime) and moment.tzinfo is None:
        moment = moment.replace(tzinfo=datetime.UTC)
    return moment or datetime.datetime.min.replace(tzinfo=datetime.UTC), str(event.get("event_id"))


def latest_statements(
    events: Iterable[Mapping[str, Any]], fields: Iterable[str] = PROFILE_FIELDS
) -> dict[str, set[str]]:
    """{event_id: set of fields} naming, per profile field, the event whose statement of it
    is the one that counts (the last by (occurred_at, event_id), the order intake's record
    and shared/contact.py read them in). Keeping exactly these statements keeps every
    projection of the person unchanged, whatever else is stripped."""
    latest = {}
    for event in sorted(events, key=_order):
        patient = (event.get("data") or {}).get("patient") or {}
        for field in fields:
            if field in patient:
                latest[field] = event["event_id"]
    statements: dict[str, set[str]] = {}
    for field, event_id in latest.items():
        statements.setdefault(event_id, set()).add(field)
    return statements


def cutoff(now: datetime.datetime, days: float) -> datetime.datetime:
    """The moment before which something is older than `days` (a float: tests use seconds)."""
    return now - datetime.timedelta(days=float(days))


# -- free text ----------------------------------------------------------------------------
def secrets_of(
    name: str | None = None, phone: str | None = None, mrns: Iterable[str] = ()
) -> dict[str, list[str]]:
    """What must not survive in a free text about the person: the name, the phone (as digits,
    matched whatever the separators) and the MRNs."""
    return {
        "texts": [t for t in [name, *mrns] if t and len(str(t)) >= 2],
        "digits": [d for d in {phone_digits(phone)} if d and len(d) >= 5],
    }


def _digit_pattern(digits: str) -> re.Pattern[str]:
    return re.compile(r"[ \-]?".join(re.escape(ch) for ch in digits))


def redact(text: str | None, secrets: Mapping[str, list[str]], mark: str = "***") -> str | None:
    """`text` with every occurrence of the person's name, phone and MRNs replaced by `mark`."""
    if not text:
        return text
    for secret in sorted(secrets["texts"], key=len, reverse=True):
        text = text.replace(str(secret), mark)
    for digits in secrets["digits"]:
        text = _digit_pattern(digits).sub(mark, text)
    return text


def mentions(text: str | None, secrets: Mapping[str, list[str]]) -> bool:
    """Whether `text` (raw, or URL-encoded as a query string is) names the person."""
    if not text:
        return False
    return any(
        redact(candidate, secrets, "\x00") != candidate
        for candidate in {text, urllib.parse.unquote_plus(text)}
    )


# -- the outbox ----------------------------------------------------------------------------
def reduce_queue(
    queue: Iterable[str | Mapping[str, Any]] | None,
    reduce: Callable[[Any, dict[str, Any]], dict[str, Any]],
) -> tuple[list[str | dict[str, Any]], bool]:
    """A document's outbox queue (JSON texts, or dicts in older documents) with each message's
    `data` replaced by `reduce(event_type, data)`: its length and order stay, so what the outbox
    counts as sent still holds. Returns (new queue, whether anything changed)."""
    out, changed = [], False
    for entry in queue or []:
        parsed = json.loads(entry) if isinstance(entry, str) else dict(entry)
        message = dict(parsed.get("message") or {})
        data = reduce(message.get("event_type"), message.get("data") or {})
        if data != (message.get("data") or {}):
            changed = True
            message["data"] = data
            parsed["message"] = message
        out.append(
            json.dumps(parsed, ensure_ascii=False, default=str)
            if isinstance(entry, str)
            else parsed
        )
    return out, changed


# -- exports -------------------------------------------------------------------------------
OUTBOX_FIELDS = (
    "outbox_queue",
    "outbox_seq",
    "outbox_sent",
    "outbox_state",
    "outbox_lock",
    "outbox_lock_ts",
    "outbox_claim_ts",
    "outbox_published_ts",
)


def without_outbox(doc: Mapping[str, Any]) -> dict[str, Any]:
    """A stored document as an export shows it: the outbox's bookkeeping is not the person's."""
    return {key: value for key, value in doc.items() if key not in OUTBOX_FIELDS}


def jsonable(value: Any) -> Any:
    """A stored value as JSON can carry it (an export crosses RPC as JSON): times as ISO 8601
    with their offset, bytes (a raw HL7 message) as text, anything else odd as its str()."""
    if isinstance(value, dict):
        return {str(key): jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(item) for item in value]
    if isinstance(value, datetime.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=datetime.UTC)).isoformat()
    if isinstance(value, datetime.date):
        return value.isoformat()
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).decode("utf-8", "replace")
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)
