"""Merged patients (docs/EVENTS.md v1.1, PatientsMerged): each service's record of which
patient id became which, one rule for all.

Intake merges a retired record into a survivor and tells the others the two ids. Each service
keeps its own `aliases` collection (retired id -> survivor id; the first merge recorded for a
retired id stands) and files everything it receives under the live id. Aliases chain
(R -> S -> T) because a survivor may itself be merged later; a chain that loops back (bad
data: S -> R while R -> S) stops where it closes instead of spinning.
"""

from collections.abc import Callable, Iterable
from typing import Any

from pymongo.collection import Collection
from pymongo.database import Database

MAX_HOPS = 32


def resolve(
    patient_id: str | None, lookup: Callable[[str], str | None], max_hops: int = MAX_HOPS
) -> str | None:
    """The patient id in use today for `patient_id`: `lookup(id)` gives the id it was merged
    into, or None."""
    seen, current = {patient_id}, patient_id
    for _ in range(max_hops):
        target = lookup(current) if current else None
        if not target or target in seen:
            break
        seen.add(target)
        current = target
    return current


def merge_is_usable(
    retired: str | None, survivor: str | None, lookup: Callable[[str], str | None]
) -> bool:
    """A merge retired -> survivor must name two patients and must not close a cycle (the
    survivor already merged, directly or not, into the retired one)."""
    return bool(
        retired and survivor and retired != survivor and resolve(survivor, lookup) != retired
    )


def person_ids(
    aliases: Collection[dict[str, Any]],
    live_id: Callable[[str], str | None],
    patient_id: str | None,
    patient_ids: Iterable[str] | None = (),
    to_field: str = "to",
    max_hops: int = MAX_HOPS,
) -> list[str]:
    """Every id a person's data may be filed under in one service: the given ids, the live id
    each leads to (`live_id(id)`), and every retired id that leads to them (the `aliases`
    collection, `{_id: retired, <to_field>: survivor}`). Export and erasure read all of them."""
    ids = {pid for pid in (patient_id, *(patient_ids or ())) if pid}
    ids |= {live for pid in ids if (live := live_id(pid))}  # an id always leads to one
    frontier = set(ids)
    for _ in range(max_hops):
        found = {
            doc["_id"] for pid in frontier for doc in aliases.find({to_field: pid}, {"_id": 1})
        } - ids
        if not found:
            break
        ids |= found
        frontier = found
    return sorted(ids)


class AliasesMixin:
    """For a service store (`self.db`): its `aliases` collection, `{_id: retired, to: survivor}`."""

    db: Database[dict[str, Any]]

    def alias_of(self, patient_id: str) -> str | None:
        doc = self.db.aliases.find_one({"_id": patient_id})
        return doc.get("to") if doc else None

    def add_alias(self, retired: str, survivor: str) -> None:
        # An upsert that only inserts: the first merge recorded for a retired id stays.
        self.db.aliases.update_one(
            {"_id": retired}, {"$setOnInsert": {"to": survivor}}, upsert=True
        )

    def live_patient_id(self, patient_id: str | None) -> str | None:
        return resolve(patient_id, self.alias_of) if patient_id else patient_id
