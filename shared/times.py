"""Times that callers send over RPC: an ISO 8601 date-time with its offset, never a naive one
(a naive time would be read in the server's zone, not the caller's)."""

import datetime

from shared.errors import BadRequest

AWARE_TIME_HINT = "An ISO 8601 date-time with offset."


def parse_aware(value: object) -> datetime.datetime | None:
    """The aware date-time `value` names, or None: the one parse every service's input shares."""
    if not isinstance(value, str):  # fromisoformat would raise TypeError: the same refusal
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


def aware_time(value: object, field: str) -> datetime.datetime:
    """`value` as an aware date-time, else BadRequest on `field`: services refuse it alike."""
    parsed = parse_aware(value)
    if parsed is None:
        raise BadRequest("invalid time", {field: [AWARE_TIME_HINT]})
    return parsed
