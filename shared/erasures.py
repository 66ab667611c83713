"""Each service's record of the erasures it applied (collection `erasures`, one document per
erasure: the patient ids it covered and when). What a service erased is erased again by its
retention timer for `erasure_sweep_days` afterwards (services/*/privacy.py): an event about
the person that was already on its way (a retry, a message another service published just
before the erasure reached it) is cleared too, whatever order things arrive in."""

import datetime
import logging
from collections.abc import Callable, Iterable
from typing import Any

from pymongo.database import Database

from shared.clock import utcnow
from shared.privacy import cutoff

_log = logging.getLogger(__name__)


def record(
    db: Database[dict[str, Any]],
    erasure_id: str | None,
    patient_ids: Iterable[str],
    now: datetime.datetime,
) -> None:
    """Note the erasure (idempotent: a redelivered PatientErased writes nothing new)."""
    db.erasures.update_one(
        {"_id": erasure_id},
        {"$setOnInsert": {"patient_ids": sorted(set(patient_ids)), "erased_at": now}},
        upsert=True,
    )


def recent(
    db: Database[dict[str, Any]], now: datetime.datetime, days: float
) -> list[dict[str, Any]]:
    """The erasures of the last `days` days, to apply again."""
    return [
        doc
        for doc in db.erasures.find({})
        if doc.get("erased_at") and _aware(doc["erased_at"]) >= cutoff(now, days)
    ]


def erased_ids(db: Database[dict[str, Any]]) -> set[str]:
    return {
        pid
        for doc in db.erasures.find({}, {"patient_ids": 1})
        for pid in doc.get("patient_ids") or ()
    }


def _aware(moment: datetime.datetime | str) -> datetime.datetime:
    """A stored time as an aware datetime (some stores give back the text of a datetime written
    by an upsert, "2026-03-02 01:30:00.000000")."""
    if isinstance(moment, str):
        moment = datetime.datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.UTC)


class ErasesPatients:
    """PatientErased in a service that keeps copies of the person's data: the ids the data may
    be filed under (`self._person_ids`), the erasure recorded (re-applied to late arrivals by
    the retention sweep), then the service's own `_erase(ids)`. Idempotent."""

    # What the service class provides (declared for the type checker only).
    store: Any
    _person_ids: Callable[[str | None, list[str] | None], list[str]]
    _erase: Callable[[list[str]], object]

    def erase_patient(self, event: dict[str, Any]) -> None:
        data = event.get("data")
        data = data if isinstance(data, dict) else {}
        ids = self._person_ids(event.get("patient_id"), data.get("patient_ids"))
        erasure_id = data.get("erasure_id") or event.get("event_id")
        record(self.store.db, erasure_id, ids, utcnow())
        self._erase(ids)
        _log.info("patient erased", extra={"erasure_id": erasure_id, "patient_ids": len(ids)})
