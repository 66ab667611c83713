"""Errors shared by services and the gateway, and the one error format of docs/API.md.

NotFound, Conflict and BadRequest cross RPC as themselves (nameko's deserialize_to_instance),
with their arguments, so the gateway can answer 404 / 409 / 400 with the service's details.
"""

from collections.abc import Mapping
from typing import Any

from nameko.exceptions import deserialize_to_instance


@deserialize_to_instance
class NotFound(Exception):
    """An id that names nothing. The gateway answers 404."""


@deserialize_to_instance
class Conflict(Exception):
    """A double booking or an illegal state change. The gateway answers 409."""


@deserialize_to_instance
class BadRequest(Exception):
    """Input a service refuses; `details` maps field paths to messages. The gateway answers 400."""

    def __init__(self, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message, details or {})  # both in args: they survive RPC
        self.message = message
        self.details = details or {}

    def __str__(self) -> str:
        return self.message


# Any other exception raised in an RPC arrives as nameko's RemoteError carrying the class
# name; the gateway maps these names (or else answers 502).
REMOTE_STATUS = {"NotFound": 404, "Conflict": 409, "BadRequest": 400}


def error_body(code: str, message: str, details: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "details": details or {}}}


class InvalidMessage(ValueError):
    """A message that breaks its contract; `errors` maps field paths to messages.

    Consumers move it to the rejected queue with the reason: retrying can never fix it.
    """

    def __init__(self, errors: dict[str, list[str]]) -> None:
        self.errors = errors
        super().__init__("; ".join(f"{path}: {' '.join(msgs)}" for path, msgs in errors.items()))


class ConflictingDuplicate(InvalidMessage):
    """docs/EVENTS.md v1.1: an event repeats the (source, event_id) of a recorded one with other
    content. It changes nothing; the copy goes to the rejected queue so the sender learns."""

    REASON = "conflicting_duplicate"

    def __init__(self, first_recorded_at: object) -> None:
        self.first_recorded_at = first_recorded_at
        super().__init__(
            {
                "event_id": [
                    f"{self.REASON}: an event with this source and event_id was recorded at "
                    f"{first_recorded_at} with other content; this one changes nothing. Send a "
                    "correction as a new event with its own event_id."
                ]
            }
        )


# marshmallow's default messages say what is wrong; these say what to do about it.
FIXES = {
    "Missing data for required field.": "Required: add this field.",
    "Field may not be null.": "May not be null: give a value or leave the field out.",
    "Not a valid string.": "Must be text (a JSON string).",
    "Not a valid integer.": "Must be a whole number, such as 50.",
    "Not a valid number.": "Must be a number, such as 4.5.",
    "Not a valid boolean.": "Must be true or false.",
    "Not a valid list.": "Must be a JSON array.",
    "Not a valid date.": "Must be a date YYYY-MM-DD, such as 2026-03-02.",
    "Not a valid datetime.": "Must be an ISO 8601 date-time with its offset, such as "
    "2026-03-02T09:30:00+08:00.",
    "Not a valid aware datetime.": "Add the offset from UTC, such as 2026-03-02T09:30:00+08:00: "
    "a time without one is ambiguous.",
    "Invalid input type.": 'The body must be one JSON object, such as {"name": "..."}.',
}


def flatten_errors(messages: Any, prefix: str = "") -> dict[str, list[str]]:
    """marshmallow's nested error dict -> {"data.patient.name": ["..."]}."""
    flat: dict[str, list[str]] = {}
    if isinstance(messages, dict):
        for key, value in messages.items():
            path = f"{prefix}.{key}" if prefix else str(key)
            flat.update(flatten_errors(value, path))
    else:
        flat[prefix or "_schema"] = [str(m) for m in messages]
    return flat


def with_fixes(messages: Mapping[str, list[str]]) -> dict[str, list[str]]:
    """A field path -> messages mapping with marshmallow's defaults replaced by FIXES."""
    return {
        path: [FIXES.get(message, message) for message in texts] for path, texts in messages.items()
    }
