"""The gateway's part of the patients' data rights (README.md § Data protection): its own
database holds the audit log, which names patients by id (and an event post by `mrn:<MRN>`)
and keeps each request's query string (a search by phone or name).

- audit_query: a search's query string as the audit keeps it (the name, phone or MRN searched
  for masked: an audit log is personal data too);
- audit_of: the audit entries about a person (their export shows who used the record);
- forget_in_audit: before an erasure, the entries whose query string names the person lose
  it, and those that name them by MRN name them by patient id instead (the erasure releases
  the MRN);
- the retention timer: a daemon thread per gateway worker deletes audit entries older than
  `audit_retention_days` (a conditional delete, harmless when two workers run it at once).
"""

import logging
import random
import threading
import time
import urllib.parse

from shared.clock import utcnow
from shared.log import mask_name, mask_phone, mask_text
from shared.privacy import ERASED_TEXT, cutoff, mentions

log = logging.getLogger("hcrm.gateway")


# Query parameters that name a person (a patient search): the audit keeps that a search was
# made and its shape, not for whom (the record then opened is audited by its patient id).
NAMING_PARAMS = {
    "q": mask_name,
    "name": mask_name,
    "phone": mask_phone,
    "mrn": lambda mrn: str(mrn)[:2] + "*" * max(len(str(mrn)) - 2, 1),
}


def audit_query(args):
    """The query string as the audit keeps it: a searched name, phone or MRN masked, any other
    phone-like number in a value masked too; None for no query."""
    pairs = [
        (key, NAMING_PARAMS[key](value) if key in NAMING_PARAMS else mask_text(value))
        for key, value in args.items(multi=True)
    ]
    return urllib.parse.urlencode(pairs, safe="*")[:500] or None


def audit_of(db, patient_ids, mrns):
    keys = list(dict.fromkeys([*patient_ids, *(f"mrn:{mrn}" for mrn in mrns)]))
    entries = [entry for key in keys for entry in db.audit.find({"patient_id": key}, {"_id": 0})]
    return sorted(entries, key=lambda entry: str(entry.get("at")))


def forget_in_audit(db, secrets, mrns, patient_id):
    """Returns how many entries changed. Entries written since issue 18 keep masked queries
    (audit_query, marked `query_masked`); only older ones are scanned (a search names no
    patient id to find it by), and they go with the audit's retention period."""
    changed = 0
    for mrn in mrns:
        changed += db.audit.update_many(
            {"patient_id": f"mrn:{mrn}"}, {"$set": {"patient_id": patient_id}}
        ).modified_count
    for entry in db.audit.find(
        {"query_masked": {"$exists": False}, "query": {"$ne": None}}, {"query": 1}
    ):
        if mentions(entry.get("query"), secrets):
            changed += db.audit.update_one(
                {"_id": entry["_id"]}, {"$set": {"query": ERASED_TEXT}}
            ).modified_count
    return changed


def purge_audit(db, now, days):
    return db.audit.delete_many({"at": {"$lt": cutoff(now, days)}}).deleted_count


def start_audit_retention(store, config):
    """The audit's retention timer, in a daemon thread of this worker process."""
    interval, days = config["retention_interval_s"], config["audit_retention_days"]

    def run():
        while True:
            time.sleep(interval * random.uniform(0.9, 1.1))  # the workers do not all run at once
            try:
                deleted = purge_audit(store.db, utcnow(), days)
                if deleted:
                    log.info("audit entries past their retention deleted", extra={"count": deleted})
            except Exception as exc:  # the store is away: next time
                log.warning("audit retention failed", extra={"reason": f"{exc.__class__.__name__}"})

    thread = threading.Thread(target=run, name="audit-retention", daemon=True)
    thread.start()
    return thread
