"""Who may be called, from the canonical events a service has received about a patient.

Services keep their own copy of what they need (docs/ARCHITECTURE.md rule 1: no reading another
service's store). Per field, the latest `occurred_at` wins, like intake's record, so the
answer does not depend on arrival order.
"""

import dataclasses
import datetime
from collections.abc import Iterable
from typing import Any

from shared.corrections import Voids
from shared.phones import phone_digits


def parse_time(value: datetime.datetime | str) -> datetime.datetime:
    return value if isinstance(value, datetime.datetime) else datetime.datetime.fromisoformat(value)


@dataclasses.dataclass(frozen=True)
class Contact:
    phone: str | None = None
    consent: bool = True
    deceased: bool = False
    name: str | None = None

    @property
    def callable(self) -> bool:
        return bool(phone_digits(self.phone)) and self.consent and not self.deceased

    @property
    def why_not(self) -> str | None:
        if self.deceased:
            return "deceased"
        if not self.consent:
            return "no_consent"
        if not phone_digits(self.phone):
            return "no_phone"
        return None


def contact_of(events: Iterable[dict[str, Any]]) -> Contact:
    """The latest stated phone, consent and name, and whether a discharge reported the
    patient deceased. `events` are canonical events (event_id, event_type, occurred_at, data).
    A discharge a correction voids (AdmissionCancelled, DischargeCancelled; shared.corrections)
    no longer makes the patient deceased."""
    events = list(events)
    voids = Voids(events)
    latest: dict[str, Any] = {}
    deceased = False
    for event in sorted(events, key=lambda e: (parse_time(e["occurred_at"]), e["event_id"])):
        person = (event.get("data") or {}).get("patient") or {}
        for field in ("phone", "contact_consent", "name"):
            if field in person:
                latest[field] = person[field]
        deceased |= (
            event["event_type"] == "PatientDischarged"
            and event["data"].get("disposition") == "deceased"
            and not voids.voids(event)
        )
    return Contact(
        latest.get("phone"), latest.get("contact_consent", True), deceased, latest.get("name")
    )
