"""The gateway's own database: users, login throttling and the audit log."""
import datetime

from pymongo.errors import DuplicateKeyError

from services.gateway import auth
from shared.store import Index, connect, ensure_indexes

INDEXES = (
    Index("audit", ["at"]),
    Index("audit", ["patient_id", "at"]),
    Index("audit", ["user", "at"]),
    Index("login_failures", ["username"], unique=True),
)


class GatewayStore:
    def __init__(self, config):
        self.db = connect(config["mongo_uri"], "gateway")
        ensure_indexes(self.db, INDEXES)

    # -- users ----------------------------------------------------------------------------
    def create_user(self, username, password, role):
        try:
            self.db.users.insert_one({"_id": username, "password_hash": auth.hash_password(password),
                                      "role": role, "active": True,
                                      "created_at": datetime.datetime.now(datetime.timezone.utc)})
            return True
        except DuplicateKeyError:
            return False

    def authenticate(self, username, password):
        user = self.db.users.find_one({"_id": username, "active": True})
        if user and auth.verify_password(password, user["password_hash"]):
            return user
        return None

    # -- login throttling -----------------------------------------------------------------
    # Times here are epoch seconds: numbers compare the same in every store.
    def login_locked(self, username, max_failures, now):
        record = self.db.login_failures.find_one({"username": username})
        return bool(record and record["count"] >= max_failures
                    and record["until_ts"] > now.timestamp())

    def record_login_failure(self, username, lockout_s, now):
        until_ts = now.timestamp() + lockout_s
        record = self.db.login_failures.find_one({"username": username})
        if record and record["until_ts"] <= now.timestamp():
            self.db.login_failures.update_one({"username": username},
                                              {"$set": {"count": 1, "until_ts": until_ts}})
        else:
            self.db.login_failures.update_one({"username": username},
                                              {"$inc": {"count": 1}, "$set": {"until_ts": until_ts}},
                                              upsert=True)

    def clear_login_failures(self, username):
        self.db.login_failures.delete_one({"username": username})

    # -- audit ----------------------------------------------------------------------------
    def audit(self, entry):
        self.db.audit.insert_one(entry)

    def audit_entries(self, query, limit, offset):
        total = self.db.audit.count_documents(query)
        items = list(self.db.audit.find(query, {"_id": 0}).sort("at", -1).skip(offset).limit(limit))
        return items, total
