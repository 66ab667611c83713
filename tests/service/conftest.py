"""Service-level tests: each service's entrypoints called in-process, on its real store.

A service class is built with nameko's `worker_factory`; its store is the service's own Store
class, set up by its own `setup()` (index creation and outboxes included) on an in-memory
mongomock database instead of a connection, so the store's verbs and its unique indexes (the
idempotency of every handler) are what runs. Only two things are faked:

- the connection: `shared.store.connect` is patched for the duration of `setup()` to return a
  `mongomock.MongoClient(tz_aware=True)` database (tz_aware, as `connect` asks pymongo);
- the broker: each Outbox's confirmed publisher is replaced by `RecordedPublisher`, which
  keeps the envelopes the outbox would have published. The outbox itself (lock, publish,
  mark published) runs for real against the in-memory collection.

Everything else a worker sees (metrics, tracing) is nameko's default MagicMock. Nothing here
opens a socket: the whole directory runs in seconds (`make test-unit`).
"""

import dataclasses

import pytest
from nameko.testing.services import worker_factory

from shared import store as shared_store
from tests.service.fakes import RecordedPublisher, bind_store, config_for


@dataclasses.dataclass
class ServiceUnderTest:
    worker: object  # the service instance, dependencies injected
    store: object  # the real store, on mongomock
    published: RecordedPublisher
    config: dict

    @property
    def db(self):
        return self.store.db


@pytest.fixture
def make_service():
    """make_service(ServiceClass, config={...overrides}, **other_dependencies)."""

    def make(service_cls, config=None, **dependencies):
        validated = config_for(service_cls, **(config or {}))
        store, published = bind_store(type(service_cls.store), validated, service_cls.name)
        worker = worker_factory(service_cls, store=store, config=validated, **dependencies)
        return ServiceUnderTest(worker, store, published, validated)

    return make


@pytest.fixture(params=["one query", "a query per value"])
def lookups(request, monkeypatch):
    """Both ways shared.store.find_in looks a batch's keys up: one `$in` while a collection is
    small, one query per key once it is large. Tests that take this fixture run in each."""
    per_value = request.param == "a query per value"
    monkeypatch.setattr(shared_store, "DOCS_PER_VALUE_SCANNED", 0 if per_value else 10**9)
    monkeypatch.setattr(shared_store, "_counts", {})
    return request.param
