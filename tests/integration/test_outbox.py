"""The outbox with a real store process and the real broker: two writers (replicas) appending
to the same documents at once publish every event exactly once, and none is left behind."""

import collections
import datetime
import json
import threading

from pymongo import MongoClient, ReturnDocument

from shared.outbox import PENDING, Outbox

EXCHANGE = "outboxtest.events"
DOCUMENTS, ROUNDS = 20, 10


def _event(event_id):
    return (EXCHANGE, "thing.changed", {"event_id": event_id})


def test_two_writers_of_the_same_documents_publish_each_event_exactly_once(platform):
    platform.witness(EXCHANGE)
    collection = MongoClient(platform.database_uri("outboxtest")).get_default_database()["things"]
    now = datetime.datetime.now(datetime.UTC)
    collection.insert_many(
        [
            {"_id": f"doc-{n}", **Outbox.fields(*_event(f"created-{n}"), now)}
            for n in range(DOCUMENTS)
        ]
    )
    replicas = [Outbox(collection, platform.amqp_uri, "test") for _ in range(2)]
    errors = []

    def write(replica, name):
        try:
            for round_ in range(ROUNDS):
                for n in range(DOCUMENTS):
                    doc = collection.find_one_and_update(
                        {"_id": f"doc-{n}"},
                        Outbox.append({}, [_event(f"{name}-{n}-{round_}")], now),
                        return_document=ReturnDocument.AFTER,
                    )
                    replica.publish_or_leave(doc)
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    writers = [
        threading.Thread(target=write, args=(replica, f"replica{i}"))
        for i, replica in enumerate(replicas)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    assert not errors and not any(writer.is_alive() for writer in writers), errors
    # What a writer left to a lock holder that ran out of rounds, the relay publishes.
    replicas[0].relay(now=now + datetime.timedelta(days=1))

    assert list(collection.find({"outbox_state": PENDING}, {"_id": 1})) == []
    published = collections.Counter(
        json.loads(body)["event_id"] for body, _ in platform.drain("witness")
    )
    assert {event_id: n for event_id, n in published.items() if n > 1} == {}
    assert len(published) == DOCUMENTS * (1 + 2 * ROUNDS)
    for replica in replicas:
        replica.stop()


def test_a_document_written_before_the_publishing_lock_existed_is_published(platform):
    platform.witness(EXCHANGE)
    collection = MongoClient(platform.database_uri("outboxtest")).get_default_database()["things"]
    now = datetime.datetime.now(datetime.UTC)
    legacy = {"_id": "old", **Outbox.fields(*_event("old-1"), now)}
    del legacy["outbox_lock_ts"]
    collection.insert_one(legacy)
    replica = Outbox(collection, platform.amqp_uri, "test")

    assert replica.publish_batch([legacy]) == 1

    assert collection.find_one({"_id": "old"})["outbox_state"] == "published"
    assert [json.loads(body)["event_id"] for body, _ in platform.drain("witness")] == ["old-1"]
    replica.stop()


def test_documents_inserted_holding_their_lock_are_published_once_while_others_append(platform):
    """publish_new: the writer publishes what it inserted without taking the lock; another
    replica appending to those documents meanwhile leaves its events to that writer, whose
    mark then fails and who reads back and publishes them. A document whose writer died
    before handing it over is the relay's once its claim runs out."""
    platform.witness(EXCHANGE)
    collection = MongoClient(platform.database_uri("outboxtest")).get_default_database()["things"]
    now = datetime.datetime.now(datetime.UTC)
    writer, other = (Outbox(collection, platform.amqp_uri, "test") for _ in range(2))
    docs = [
        {"_id": f"doc-{n}", **Outbox.fields(*_event(f"created-{n}"), now, held=True)}
        for n in range(DOCUMENTS)
    ]
    collection.insert_many(docs)
    # Inserted a minute ago by a writer that died before handing it over: its lock ran out.
    minute_ago = now - datetime.timedelta(minutes=1)
    collection.insert_one(
        {"_id": "orphan", **Outbox.fields(*_event("orphan-1"), minute_ago, held=True)}
    )
    errors = []

    def append():
        try:
            for n in range(DOCUMENTS):
                doc = collection.find_one_and_update(
                    {"_id": f"doc-{n}"},
                    Outbox.append({}, [_event(f"appended-{n}")], now),
                    return_document=ReturnDocument.AFTER,
                )
                other.publish_or_leave(doc)
        except Exception as exc:  # surfaced by the assertion below
            errors.append(exc)

    # Held by its writer from the insert on: no one else publishes it meanwhile.
    assert other.publish_batch([{"_id": "doc-0"}]) == 0
    appender = threading.Thread(target=append)
    appender.start()
    for doc in docs:
        writer.publish_new(doc)
    appender.join(timeout=120)
    assert not errors and not appender.is_alive(), errors
    assert writer.relay() == 1  # the orphan

    assert list(collection.find({"outbox_state": PENDING}, {"_id": 1})) == []
    published = collections.Counter(
        json.loads(body)["event_id"] for body, _ in platform.drain("witness")
    )
    assert {event_id: n for event_id, n in published.items() if n > 1} == {}
    assert len(published) == 2 * DOCUMENTS + 1
    writer.stop()
    other.stop()
