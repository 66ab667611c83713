"""Which recorded events a correction voids (docs/EVENTS.md, v1.1): one rule for every service.

Hospital systems correct themselves (HL7 A11, A13): a visit entered in error, an admission
cancelled, a discharge cancelled. Every service derives what it shows from the events it
received, so a correction is applied by *leaving the voided events out* of that derivation,
whatever order the events arrived in:

  VisitCancelled(visit_id)          voids every PatientVisited of that visit, whenever it
                                    occurred (a visit id entered in error is dead for good)
  AdmissionCancelled(admission_id)  voids the PatientAdmitted and every PatientDischarged of
                                    that admission
  DischargeCancelled(admission_id)  voids the PatientDischarged events of that admission that
                                    occurred no later than the cancellation; a discharge that
                                    occurred after it counts again (the patient left again)

Corrections match by the hospital's id alone: visit and admission ids are unique in the
hospital's system, and a correction names the same person as the event it corrects.
"""

import datetime
from collections.abc import Iterable, Mapping
from typing import Any

CORRECTION_TYPES = ("VisitCancelled", "AdmissionCancelled", "DischargeCancelled")


def _time(value: datetime.datetime | str) -> datetime.datetime:
    if isinstance(value, datetime.datetime):
        return value
    return datetime.datetime.fromisoformat(value)


class Voids:
    """The corrections among a set of events, asked about one event at a time."""

    def __init__(self, events: Iterable[Mapping[str, Any]] = ()) -> None:
        self.visits: set[str] = set()
        self.admissions: set[str] = set()
        # admission_id -> the latest DischargeCancelled's time
        self.discharges_until: dict[Any, datetime.datetime] = {}
        for event in events:
            self.add(event)

    def add(self, event: Mapping[str, Any]) -> None:
        kind, data = event["event_type"], event.get("data") or {}
        if kind == "VisitCancelled":
            self.visits.add(data["visit_id"])
        elif kind == "AdmissionCancelled":
            self.admissions.add(data["admission_id"])
        elif kind == "DischargeCancelled":
            when = _time(event["occurred_at"])
            known = self.discharges_until.get(data["admission_id"])
            if known is None or when > known:
                self.discharges_until[data["admission_id"]] = when

    def __bool__(self) -> bool:
        return bool(self.visits or self.admissions or self.discharges_until)

    def voids(self, event: Mapping[str, Any]) -> bool:
        """True when `event` (canonical: event_type, occurred_at, data) no longer counts."""
        kind, data = event["event_type"], event.get("data") or {}
        if kind == "PatientVisited":
            return data.get("visit_id") in self.visits
        if kind == "PatientAdmitted":
            return data.get("admission_id") in self.admissions
        if kind == "PatientDischarged":
            admission_id = data.get("admission_id")
            if admission_id in self.admissions:
                return True
            until = self.discharges_until.get(admission_id)
            return until is not None and _time(event["occurred_at"]) <= until
        return False


def effective(events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The events that still count: voided ones and the corrections themselves left out."""
    events = list(events)
    voids = Voids(e for e in events if e["event_type"] in CORRECTION_TYPES)
    return [e for e in events if e["event_type"] not in CORRECTION_TYPES and not voids.voids(e)]
