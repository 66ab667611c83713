"""Connecting to a service's own database and creating its indexes at start.

Only documented MongoDB behaviour is used, so MONGO_URI may point at NX-27017 locally or at
a real MongoDB replica set in production, unchanged.
"""
import logging

import pymongo
from nameko.extensions import DependencyProvider
from pymongo.errors import AutoReconnect, ConnectionFailure, NetworkTimeout, ServerSelectionTimeoutError

log = logging.getLogger(__name__)

# Exceptions that mean "the store is unreachable right now": retry later, the message is fine.
TRANSIENT_STORE_ERRORS = (AutoReconnect, ConnectionFailure, NetworkTimeout, ServerSelectionTimeoutError)


class Index:
    """An index declared next to the code that relies on it."""

    def __init__(self, collection, keys, **options):
        self.collection = collection
        self.keys = [(k, 1) if isinstance(k, str) else k for k in keys]
        self.options = options


def connect(mongo_uri, service, timeout_ms=5000):
    """Return the service's database. A URI without a database path gets hcrm_<service>."""
    client = pymongo.MongoClient(
        mongo_uri, tz_aware=True, serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms, socketTimeoutMS=max(timeout_ms * 4, 20000),
        appname=f"hcrm-{service}")
    database = client.get_default_database(default=f"hcrm_{service}")
    return database


def ensure_indexes(database, indexes):
    for index in indexes:
        database[index.collection].create_index(index.keys, **index.options)


class Store(DependencyProvider):
    """Base for a service's store: subclasses list `indexes` and add domain verbs.

    The service sees the verbs, never the connection. pymongo clients are thread-safe, so
    one instance serves every worker.
    """

    indexes = ()

    def setup(self):
        config = self.container.config["HCRM"]
        self.db = connect(config["mongo_uri"], config["process"])
        ensure_indexes(self.db, self.indexes)
        log.info("store ready", extra={"database": self.db.name})

    def stop(self):
        self.db.client.close()

    def get_dependency(self, worker_ctx):
        return self
