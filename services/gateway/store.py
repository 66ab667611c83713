"""The gateway's own database: users, integration keys, login throttling and the audit log."""

import datetime
import hmac
from collections.abc import Mapping
from typing import Any

from pymongo.errors import BulkWriteError, DuplicateKeyError

from services.gateway import auth
from services.gateway.group_commit import GroupCommit
from shared.indexes import Index
from shared.store import connect, ensure_indexes

INDEXES = (
    Index("audit", ["at"]),
    Index("audit", ["patient_id", "at"]),
    Index("audit", ["user", "at"]),
    Index("login_failures", ["username"], unique=True),
)


class GatewayStore:
    def __init__(self, config: Mapping[str, Any]) -> None:
        self.db = connect(config["mongo_uri"], "gateway")
        ensure_indexes(self.db, INDEXES)
        self._audit_log = GroupCommit(self._insert_audit)

    # -- users ----------------------------------------------------------------------------
    def create_user(self, username: str, password: str, role: str) -> bool:
        try:
            self.db.users.insert_one(
                {
                    "_id": username,
                    "password_hash": auth.hash_password(password),
                    "role": role,
                    "active": True,
                    "created_at": datetime.datetime.now(datetime.UTC),
                }
            )
            return True
        except DuplicateKeyError:
            return False

    def authenticate(self, username: str, password: str) -> dict[str, Any] | None:
        user = self.db.users.find_one({"_id": username, "active": True})
        if user and auth.verify_password(password, user["password_hash"]):
            return user
        return None

    # -- integration API keys -------------------------------------------------------------
    def create_api_key(
        self, name: str, created_by: str, now: datetime.datetime
    ) -> tuple[str, dict[str, Any]]:
        key_id, key = auth.new_api_key()
        now = now.replace(
            microsecond=now.microsecond // 1000 * 1000
        )  # what the store keeps (BSON: ms)
        record = {
            "_id": key_id,
            "name": name,
            "role": "integration",
            "key_sha256": auth.api_key_hash(key),
            "created_by": created_by,
            "created_at": now,
            "revoked_at": None,
        }
        self.db.integration_keys.insert_one(record)
        return key, _public_key(record)

    def api_keys(self, limit: int, offset: int) -> tuple[list[dict[str, Any]], int]:
        total = self.db.integration_keys.count_documents({})
        found = self.db.integration_keys.find({}).sort("created_at", -1).skip(offset).limit(limit)
        return [_public_key(record) for record in found], total

    def revoke_api_key(
        self, key_id: str, revoked_by: str, now: datetime.datetime
    ) -> dict[str, Any] | None:
        self.db.integration_keys.update_one(
            {"_id": key_id, "revoked_at": None},
            {"$set": {"revoked_at": now, "revoked_by": revoked_by}},
        )
        record = self.db.integration_keys.find_one({"_id": key_id})
        return _public_key(record) if record else None

    def api_key_principal(self, key: str) -> dict[str, Any] | None:
        """The key's record when it is valid and not revoked, else None."""
        key_id = auth.api_key_id(key)
        if key_id is None:
            return None
        record = self.db.integration_keys.find_one({"_id": key_id})
        if (
            not record
            or record.get("revoked_at")
            or not hmac.compare_digest(record["key_sha256"], auth.api_key_hash(key))
        ):
            return None
        return record

    # -- login throttling -----------------------------------------------------------------
    # Times here are epoch seconds: numbers compare the same in every store.
    def login_locked(self, username: str, max_failures: int, now: datetime.datetime) -> bool:
        record = self.db.login_failures.find_one({"username": username})
        return bool(
            record and record["count"] >= max_failures and record["until_ts"] > now.timestamp()
        )

    def record_login_failure(self, username: str, lockout_s: float, now: datetime.datetime) -> None:
        until_ts = now.timestamp() + lockout_s
        record = self.db.login_failures.find_one({"username": username})
        if record and record["until_ts"] <= now.timestamp():
            self.db.login_failures.update_one(
                {"username": username}, {"$set": {"count": 1, "until_ts": until_ts}}
            )
        else:
            self.db.login_failures.update_one(
                {"username": username},
                {"$inc": {"count": 1}, "$set": {"until_ts": until_ts}},
                upsert=True,
            )

    def clear_login_failures(self, username: str) -> None:
        self.db.login_failures.delete_one({"username": username})

    # -- audit ----------------------------------------------------------------------------
    def audit(self, entry: dict[str, Any]) -> None:
        """Returns once `entry` is in the store; raises if it may not be (group_commit.py:
        the entries of concurrent requests go in one insert)."""
        self._audit_log.write(entry)

    def _insert_audit(self, entries: list[dict[str, Any]]) -> dict[int, Exception]:
        try:
            self.db.audit.insert_many(entries, ordered=False)
        except BulkWriteError as exc:
            if exc.details.get("writeConcernErrors"):
                raise  # none of them is known to be durable
            return {error["index"]: exc for error in exc.details.get("writeErrors", ())}
        return {}

    def audit_entries(
        self, query: dict[str, Any], limit: int, offset: int
    ) -> tuple[list[dict[str, Any]], int]:
        total = self.db.audit.count_documents(query)
        items = list(self.db.audit.find(query, {"_id": 0}).sort("at", -1).skip(offset).limit(limit))
        return items, total


def _public_key(record: Mapping[str, Any]) -> dict[str, Any]:
    """What an admin may see of a key: never the key or its hash."""
    return {
        "key_id": record["_id"],
        "name": record["name"],
        "role": record["role"],
        "created_by": record.get("created_by"),
        "created_at": iso_time(record["created_at"]),
        "revoked_at": iso_time(record.get("revoked_at")),
        "revoked_by": record.get("revoked_by"),
    }


def iso_time(value: datetime.datetime | str | None) -> str | None:
    """ISO 8601 with offset, whatever the store gave back: a datetime, or the text some
    stores make of a datetime set with `$set` ("2026-03-02 01:30:00+00:00")."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value
        try:
            value = datetime.datetime.fromisoformat(text)
        except ValueError:
            return text
    if value.tzinfo is None:
        value = value.replace(tzinfo=datetime.UTC)
    return value.isoformat()
