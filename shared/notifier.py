"""Pluggable notifiers: how a message reaches the patient (appointments' reminders,
followup's survey links, campaigns' messages).

OutboxNotifier (default) records each notification in the service's `notifications`
collection (what an SMS gateway integration or an agent's call list reads) and logs it with
personal data masked; WebhookNotifier POSTs it to a real SMS gateway. Both are idempotent by
the notification's `_id` (the upsert; the Idempotency-Key header), so a sender that retries
after a crash hands the same message over again, never a second one.
"""

import json
import logging
import urllib.request
from collections.abc import Mapping
from typing import Any

from pymongo.database import Database

from shared.log import mask

log = logging.getLogger(__name__)


class OutboxNotifier:
    def __init__(self, db: Database[dict[str, Any]]) -> None:
        self.db = db

    def send(self, notification: dict[str, Any]) -> None:
        self.db.notifications.update_one(
            {"_id": notification["_id"]}, {"$setOnInsert": notification}, upsert=True
        )
        # Not the text: it names the patient, and mask() only knows personal keys, not prose.
        log.info(
            "notification recorded",
            extra={
                "notification": mask(
                    {key: value for key, value in notification.items() if key != "text"}
                )
            },
        )


class WebhookNotifier:
    def __init__(self, url: str, token: str | None = None, timeout: float = 10) -> None:
        self.url, self.token, self.timeout = url, token, timeout

    def send(self, notification: dict[str, Any]) -> None:
        request = urllib.request.Request(
            self.url,
            json.dumps(notification, ensure_ascii=False).encode(),
            {"Content-Type": "application/json", "Idempotency-Key": notification["_id"]},
        )
        if self.token:
            request.add_header("Authorization", f"Bearer {self.token}")
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            if response.status >= 300:
                raise RuntimeError(f"SMS gateway answered {response.status}")
        log.info("notification sent", extra={"notification_id": notification["_id"]})


def notifier_for(
    config: Mapping[str, Any], db: Database[dict[str, Any]]
) -> OutboxNotifier | WebhookNotifier:
    if config["notifier"] == "webhook":
        return WebhookNotifier(config["webhook_url"], config.get("webhook_token"))
    return OutboxNotifier(db)
