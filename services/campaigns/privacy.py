"""Campaigns and the patients' data rights (README.md § Data protection), mixed into
CampaignsService.

- export_patient: what campaigns keeps of the person (the view derived from intake's events,
  and those events), their opt-out, the campaigns' deliveries to them and the messages sent
  (text and number).
- PatientErased (intake.events): the person's waiting deliveries end as "erased" (so nothing
  more is sent), their view is dropped, the kept events lose their personal data, the messages
  their number and text, an opt-out its note (it stays in force: ids only). Statuses and
  times stay: each campaign's figures are derived from them.
"""

import logging

from services.campaigns import domain
from shared import aliases, erasures
from shared.clock import utcnow
from shared.messaging import rpc
from shared.privacy import ERASED_TEXT, erased_data, jsonable, without_outbox
from shared.timers import configured_timer

log = logging.getLogger(__name__)


class CampaignsPrivacyMixin(erasures.ErasesPatients):
    def _person_ids(self, patient_id, patient_ids=()):
        return aliases.person_ids(
            self.store.db.aliases,
            self.store.live_patient_id,
            patient_id,
            patient_ids,
            to_field="to",
        )

    @rpc
    def export_patient(self, patient_id, patient_ids=None):
        db = self.store.db
        ids = self._person_ids(patient_id, patient_ids)
        views = [
            {"patient_id": doc["_id"], **(domain.load_view(doc.get("view")) or {})}
            for pid in ids
            for doc in db.people.find({"_id": pid})
        ]
        return jsonable(
            {
                "service": "campaigns",
                "patient_ids": ids,
                "people": views,
                "opt_outs": [
                    without_outbox(doc) for pid in ids for doc in db.opt_outs.find({"_id": pid})
                ],
                "deliveries": [
                    without_outbox(doc)
                    for pid in ids
                    for doc in db.deliveries.find({"patient_id": pid})
                ],
                "messages": [
                    doc for pid in ids for doc in db.notifications.find({"patient_id": pid})
                ],
                "events": [doc for pid in ids for doc in db.events.find({"patient_id": pid})],
            }
        )

    def _erase(self, ids):
        db, now = self.store.db, utcnow()
        for pid in ids:
            for delivery in db.deliveries.find({"patient_id": pid}, {"status": 1, "queue_ts": 1}):
                if delivery["status"] in domain.WAITING:
                    db.deliveries.update_one(
                        {
                            "_id": delivery["_id"],
                            "status": delivery["status"],
                            "queue_ts": delivery["queue_ts"],
                        },
                        {
                            "$set": {
                                "status": domain.ERASED,
                                "queue_ts": domain.DONE_TS,
                                "finished_at": now.isoformat(),
                            }
                        },
                    )
            db.people.delete_one({"_id": pid})
            for kept in db.events.find({"patient_id": pid}):
                cleared = erased_data(kept["event_type"], kept.get("data"))
                if cleared != kept.get("data"):
                    db.events.update_one({"_id": kept["_id"]}, {"$set": {"data": cleared}})
            db.notifications.update_many(
                {"patient_id": pid}, {"$set": {"phone": None, "text": ERASED_TEXT}}
            )
            db.opt_outs.update_one({"_id": pid}, {"$set": {"note": None}})

    @configured_timer("retention_interval_s")
    def enforce_retention(self):
        """Apply the erasures of the last `erasure_sweep_days` again: an event about the person
        that was already on its way when the erasure arrived is cleared too."""
        now = utcnow()
        for erasure in erasures.recent(self.store.db, now, self.config["erasure_sweep_days"]):
            self._erase(erasure["patient_ids"])
