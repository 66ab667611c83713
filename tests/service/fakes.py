"""The in-memory stand-ins of tests/service: a store bound to mongomock, a publisher that
records, and the messages a reliable consumer hands its handlers."""

import dataclasses
import types
import uuid
from unittest import mock

import mongomock

from shared.clock import utcnow
from shared.events import dump_event, load_event
from shared.messaging import InboundMessage
from shared.outbox import Outbox


def _accept_pymongo_sort():
    """pymongo 4.11 added `sort` to UpdateOne / ReplaceOne and passes it (None unless given) to
    the bulk builder; mongomock 4.3 predates it and refuses the keyword, which breaks every
    `bulk_write` (the outbox's lock and mark, analytics' upserts). No store passes a sort in a
    bulk operation, so the fake accepts `sort=None` and refuses any other value."""
    builder = mongomock.collection.BulkOperationBuilder
    if getattr(builder, "_accepts_sort", False):
        return

    def without_sort(method):
        def call(self, *args, sort=None, **kwargs):
            if sort is not None:
                raise NotImplementedError("mongomock: sort in a bulk update or replace")
            return method(self, *args, **kwargs)

        return call

    builder.add_update = without_sort(builder.add_update)
    builder.add_replace = without_sort(builder.add_replace)
    builder._accepts_sort = True


_accept_pymongo_sort()


@dataclasses.dataclass
class Envelope:
    """One message an outbox handed to the broker."""

    exchange: str
    routing_key: str
    body: dict
    message_id: str
    headers: dict


class RecordedPublisher:
    """Stands in for shared.messaging.ConfirmedPublisher: every batch is "confirmed" at once
    and kept, so a test reads what the service published (exchange, routing key, body)."""

    def __init__(self):
        self.envelopes = []

    def publish_all(self, messages):
        for exchange, routing_key, body, message_id, *rest in messages:
            self.envelopes.append(
                Envelope(exchange, routing_key, body, message_id, rest[0] if rest else {})
            )

    def close(self):
        pass

    def bodies(self, event_type=None):
        """The published event bodies, in order; of one event type if given."""
        return [e.body for e in self.envelopes if event_type in (None, e.body.get("event_type"))]

    def types(self):
        return [e.body.get("event_type") for e in self.envelopes]

    def clear(self):
        self.envelopes.clear()


def config_for(service_cls, **overrides):
    """The validated config the runner would give the service (shared.config.load_config with
    no file and no environment): the schema's defaults, `overrides` on top."""
    config = service_cls.config_schema().load(overrides)
    config["process"] = service_cls.name
    return config


def bind_store(store_cls, config, service_name):
    """An instance of the service's real store on a fresh in-memory database, set up by its
    own setup() (indexes, outboxes). Returns (store, recorded publisher)."""
    store = store_cls()
    store.container = types.SimpleNamespace(config={"HCRM": config}, service_name=service_name)
    database = mongomock.MongoClient(tz_aware=True)[f"hcrm_{service_name}"]
    with mock.patch("shared.store.connect", return_value=database):
        store.setup()
    assert store.db is database, "Store.setup() no longer gets its database from connect()"
    published = RecordedPublisher()
    outboxes = [value for value in vars(store).values() if isinstance(value, Outbox)]
    assert outboxes, f"{store_cls.__name__} has no outbox"
    for outbox in outboxes:
        # The sender thread is not started (start() is not called), so publish_or_leave
        # publishes inline, through this publisher.
        outbox._publisher = published
    return store, published


def inbound(body, routing_key=None, attempt=0, headers=None):
    """What a reliable consumer hands its handler for a delivery of `body`."""
    if routing_key is None and isinstance(body, dict):
        routing_key = body.get("event_type")
    return InboundMessage(
        body=body, routing_key=routing_key, headers=headers or {}, attempt=attempt
    )


def canonical(hospital_event, patient_id, recorded_at=None, **data_added):
    """The canonical event intake publishes for a hospital event (tests/factories.py) filed
    under `patient_id`: what followup, appointments, campaigns and analytics consume.
    `data_added`: what intake adds to the data (a merge's merged_patient_id)."""
    from services.intake import domain as intake_domain

    inbound_event = dump_event(load_event(hospital_event))
    inbound_event["data"] = {**inbound_event["data"], **data_added}
    event_id = intake_domain.canonical_event_id(inbound_event["source"], inbound_event["event_id"])
    return intake_domain.canonical_message(
        event_id, inbound_event, patient_id, recorded_at or utcnow()
    )


def new_id(prefix="P"):
    return f"{prefix}-{uuid.uuid4().hex[:12]}"
