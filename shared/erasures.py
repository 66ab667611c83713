"""Each service's record of the erasures it applied (collection `erasures`, one document per
erasure: the patient ids it covered and when). What a service erased is erased again by its
retention timer for `erasure_sweep_days` afterwards (services/*/privacy.py): an event about
the person that was already on its way (a retry, a message another service published just
before the erasure reached it) is cleared too, whatever order things arrive in."""
import datetime

from shared.privacy import cutoff


def record(db, erasure_id, patient_ids, now):
    """Note the erasure (idempotent: a redelivered PatientErased writes nothing new)."""
    db.erasures.update_one({"_id": erasure_id},
                           {"$setOnInsert": {"patient_ids": sorted(set(patient_ids)), "erased_at": now}},
                           upsert=True)


def recent(db, now, days):
    """The erasures of the last `days` days, to apply again."""
    return [doc for doc in db.erasures.find({}) if doc.get("erased_at") and _aware(doc["erased_at"]) >= cutoff(now, days)]


def erased_ids(db):
    return {pid for doc in db.erasures.find({}, {"patient_ids": 1}) for pid in doc.get("patient_ids") or ()}


def _aware(moment):
    """A stored time as an aware datetime (some stores give back the text of a datetime written
    by an upsert, "2026-03-02 01:30:00.000000")."""
    if isinstance(moment, str):
        moment = datetime.datetime.fromisoformat(moment)
    return moment if moment.tzinfo else moment.replace(tzinfo=datetime.timezone.utc)
