"""Connecting to a service's own database and creating its indexes at start.

Only documented MongoDB behaviour is used, so MONGO_URI may point at NX-27017 locally or at
a real MongoDB replica set in production, unchanged.
"""

import logging
import math
import time
from collections.abc import Iterable
from typing import Any, Self

import pymongo
from nameko.extensions import DependencyProvider
from prometheus_client import Counter
from pymongo import monitoring
from pymongo.collection import Collection
from pymongo.database import Database
from pymongo.errors import BulkWriteError

from shared.indexes import Index
from shared.outbox import Outbox

log = logging.getLogger(__name__)

DUPLICATE_KEY = 11000  # MongoDB's error code for a unique key taken

STORE_COMMANDS = Counter(
    "hcrm_store_commands_total",
    "Store round trips (one per command sent)",
    ["service", "command", "outcome"],
)
STORE_SECONDS = Counter(
    "hcrm_store_command_seconds_total",
    "Time spent waiting for the store, by command",
    ["service", "command"],
)


class CommandCounter(monitoring.CommandListener):
    """Counts every command the service sends to its store and the time it took: the
    round trips per event are what the pipeline's throughput depends on (bench/)."""

    def __init__(self, service: str) -> None:
        self.service = service

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        pass

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._count(event, "ok")

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._count(event, "error")

    def _count(
        self, event: monitoring.CommandSucceededEvent | monitoring.CommandFailedEvent, outcome: str
    ) -> None:
        STORE_COMMANDS.labels(self.service, event.command_name, outcome).inc()
        STORE_SECONDS.labels(self.service, event.command_name).inc(event.duration_micros / 1e6)


def connect(mongo_uri: str, service: str, timeout_ms: int = 5000) -> Database[dict[str, Any]]:
    """Return the service's database. A URI without a database path gets hcrm_<service>."""
    client: pymongo.MongoClient[dict[str, Any]] = pymongo.MongoClient(
        mongo_uri,
        tz_aware=True,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        socketTimeoutMS=max(timeout_ms * 4, 20000),
        appname=f"hcrm-{service}",
        event_listeners=[CommandCounter(service)],
    )
    database = client.get_default_database(default=f"hcrm_{service}")
    return database


def ensure_indexes(database: Database[dict[str, Any]], indexes: Iterable[Index]) -> None:
    for index in indexes:
        database[index.collection].create_index(index.keys, **index.options)


def any_of(values: Iterable[Any]) -> Any:
    """A query's condition for "one of `values`": the value itself when there is one, `$in`
    otherwise."""
    distinct = sorted(set(values), key=str)
    return distinct[0] if len(distinct) == 1 else {"$in": distinct}


# NX-27017, the local store, answers `$in` on any field but _id by scanning the collection
# (~0.7 µs a document), an equality by its index (~0.6 ms a query): below about this many
# documents per value asked, one `$in` is cheaper than one query per value. MongoDB takes
# either by the index.
DOCS_PER_VALUE_SCANNED = 800
COUNT_MAX_AGE_S = 60.0
_counts: dict[tuple[str, str], tuple[float, int]] = {}


def find_in(
    collection: Collection[dict[str, Any]],
    field: str,
    values: Iterable[Any],
    projection: Any = None,
    **conditions: Any,
) -> list[dict[str, Any]]:
    """The documents whose `field` is one of `values` (and that meet `conditions`), in one
    query while the collection is small enough to scan, else one indexed query per value: a
    batch's lookups stay cheap in both stores as the data grows."""
    distinct = sorted(set(values), key=str)
    if not distinct:
        return []
    if len(distinct) == 1 or _scan_is_cheaper(collection, len(distinct)):
        return list(collection.find({field: any_of(distinct), **conditions}, projection))
    return [
        doc
        for value in distinct
        for doc in collection.find({field: value, **conditions}, projection)
    ]


def _scan_is_cheaper(collection: Collection[dict[str, Any]], values: int) -> bool:
    """Whether `values` lookups cost less as one scan: by the collection's size, MongoDB's
    cheap estimate, taken at most once a minute per collection."""
    key = (collection.database.name, collection.name)
    counted_at, count = _counts.get(key, (-math.inf, 0))
    if time.monotonic() - counted_at > COUNT_MAX_AGE_S:
        count = collection.estimated_document_count()
        _counts[key] = (time.monotonic(), count)
    return values * DOCS_PER_VALUE_SCANNED > count


def insert_new(
    collection: Collection[dict[str, Any]], docs: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    """Insert the documents not there yet (by _id), in one round trip; returns the new ones.
    Any error but a duplicate key is raised."""
    if not docs:
        return []
    try:
        collection.insert_many(docs, ordered=False)
        return docs
    except BulkWriteError as exc:
        errors = exc.details.get("writeErrors", [])
        if any(error.get("code") != DUPLICATE_KEY for error in errors):
            raise
        existing = {error["index"] for error in errors}
        return [doc for index, doc in enumerate(docs) if index not in existing]


class Store(DependencyProvider):
    """Base for a service's store: subclasses list `indexes` and add domain verbs.

    The service sees the verbs, never the connection. pymongo clients are thread-safe, so
    one instance serves every worker.
    """

    indexes: tuple[Index, ...] = ()
    db: Database[dict[str, Any]]

    def setup(self) -> None:
        config = self.container.config["HCRM"]
        self.db = connect(config["mongo_uri"], config["process"])
        ensure_indexes(self.db, self.indexes)
        log.info("store ready", extra={"database": self.db.name})

    def start(self) -> None:
        for outbox in self._outboxes():
            outbox.start(self.container)

    def stop(self) -> None:
        for outbox in self._outboxes():
            outbox.stop()  # publishes what its sender still holds
        self.db.client.close()

    def _outboxes(self) -> list[Outbox]:
        return [value for value in vars(self).values() if isinstance(value, Outbox)]

    def get_dependency(self, worker_ctx: Any) -> Self:
        return self
