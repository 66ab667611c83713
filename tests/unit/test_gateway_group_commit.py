"""Group commit of the gateway's audit entries (services/gateway/group_commit.py): concurrent
callers share one write, and none returns before its own item is written."""

import threading
import time

import mongomock
import pytest
from pymongo.errors import BulkWriteError

from services.gateway.group_commit import GroupCommit


class SlowStore:
    """write_many that holds the first write until released, recording what each carried."""

    def __init__(self, fail=None):
        self.written = []  # items, in the order they were written
        self.batches = []
        self.release = threading.Event()
        self.fail = fail or {}  # item -> exception for that item only

    def write_many(self, items):
        if not self.batches:
            self.release.wait(5)
        self.batches.append(list(items))
        if "all" in self.fail:
            raise self.fail["all"]
        failed = {i: self.fail[item] for i, item in enumerate(items) if item in self.fail}
        self.written += [item for item in items if item not in self.fail]
        return failed


def run_callers(group, store, items):
    """Each item written by its own thread: the threads, {item: ("ok", None) | ("error", exc)}
    and {item: what the store held when its call returned}."""
    outcome, seen_at_return = {}, {}

    def call(item):
        try:
            group.write(item)
            outcome[item] = ("ok", None)
        except Exception as exc:
            outcome[item] = ("error", exc)
        seen_at_return[item] = list(store.written)

    threads = [threading.Thread(target=call, args=(item,)) for item in items]
    return threads, outcome, seen_at_return


def start_and_queue(group, store, threads, queued):
    """Start the threads: the first becomes the writer and blocks; wait until the others
    are queued behind it, then release the store."""
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while len(group._pending) < queued and time.monotonic() < deadline:
        time.sleep(0.01)
    store.release.set()
    for thread in threads:
        thread.join(5)


def test_concurrent_items_share_one_write_and_each_returns_after_its_own():
    store = SlowStore()
    group = GroupCommit(store.write_many)
    threads, outcome, seen = run_callers(group, store, [f"e{i}" for i in range(8)])
    start_and_queue(group, store, threads, queued=7)
    assert all(result == ("ok", None) for result in outcome.values()) and len(outcome) == 8
    assert sorted(store.written) == sorted(outcome)
    assert len(store.batches) == 2 and len(store.batches[1]) == 7  # the first alone, then the rest
    for item, written in seen.items():
        assert item in written  # nobody returned before its item was written
    assert (group.writes, group.items) == (2, 8)


def test_a_lone_caller_writes_at_once():
    written = []
    group = GroupCommit(lambda items: written.extend(items) or {})
    group.write("a")
    assert written == ["a"]
    group.write("b")
    assert written == ["a", "b"] and group.writes == 2


def test_a_failed_write_fails_every_caller_of_its_batch_and_the_next_batch_goes_on():
    store = SlowStore(fail={"all": OSError("store away")})
    group = GroupCommit(store.write_many)
    threads, outcome, _ = run_callers(group, store, ["a", "b", "c"])
    start_and_queue(group, store, threads, queued=2)
    assert {item: kind for item, (kind, _) in outcome.items()} == {
        "a": "error",
        "b": "error",
        "c": "error",
    }
    assert not group._writing and not group._pending
    store.fail = {}
    group.write("d")  # nothing stuck
    assert store.written == ["d"]


def test_only_the_items_that_failed_raise():
    store = SlowStore(fail={"bad": ValueError("too large")})
    group = GroupCommit(store.write_many)
    threads, outcome, _ = run_callers(group, store, ["first", "bad", "good"])
    start_and_queue(group, store, threads, queued=2)
    assert outcome["bad"][0] == "error" and isinstance(outcome["bad"][1], ValueError)
    assert outcome["first"] == outcome["good"] == ("ok", None)


def test_batches_are_bounded_and_the_oldest_go_first():
    store = SlowStore()
    group = GroupCommit(store.write_many, max_batch=3)
    threads, outcome, _ = run_callers(group, store, [f"e{i}" for i in range(8)])
    start_and_queue(group, store, threads, queued=7)
    assert len(outcome) == 8 and all(kind == "ok" for kind, _ in outcome.values())
    assert [len(batch) for batch in store.batches] == [1, 3, 3, 1]


def test_the_gateway_store_writes_the_audit_in_one_insert_and_keeps_every_entry(monkeypatch):
    from services.gateway import store as gateway_store

    monkeypatch.setattr(gateway_store, "connect", lambda uri, name: mongomock.MongoClient().gateway)
    store = gateway_store.GatewayStore({"mongo_uri": "mongodb://unused"})
    entries = [{"user": "ann", "patient_id": f"p{i}", "status": 200} for i in range(3)]
    assert store._insert_audit(entries) == {}
    assert sorted(e["patient_id"] for e in store.db.audit.find()) == ["p0", "p1", "p2"]
    store.audit({"user": "ann", "patient_id": "p3", "status": 200})
    assert store.db.audit.count_documents({}) == 4
    duplicate = store.db.audit.find_one({"patient_id": "p0"})
    failed = store._insert_audit([{"patient_id": "p4"}, duplicate])
    assert list(failed) == [1] and store.db.audit.count_documents({"patient_id": "p4"}) == 1
    with pytest.raises(BulkWriteError):
        store.audit(duplicate)
