"""Walking a collection past its retention period, a page at a time, without reading again
what was done: a mark in the service's `meta` collection remembers the (time, _id) of the last
document handled, and the next page starts after it (keyset order on an indexed time field).
Many documents may share one time (every task of a day is due at 23:59:59), so the mark is
the pair, never the time alone.

Each document is then changed by a write conditional on what was read (by _id): two replicas
walking at once do the same harmless work twice, never half of it. A document whose write
lost a race is where the walk stops: the next run starts with it again.
"""

from collections.abc import Callable, Mapping
from typing import Any

from pymongo.database import Database

PAGE = 500


def next_page(
    db: Database[dict[str, Any]],
    collection: str,
    field: str,
    upper: Any,
    mark_id: str,
    projection: Mapping[str, Any] | None = None,
    limit: int = PAGE,
) -> list[dict[str, Any]]:
    """The next documents with `field` < `upper`, in (field, _id) order, after the mark."""
    mark = db.meta.find_one({"_id": mark_id}) or {}
    page, window = [], {"$lt": upper}
    if "at" in mark:
        page = list(
            db[collection]
            .find({field: mark["at"], "_id": {"$gt": mark["id"]}}, projection)
            .sort("_id", 1)
            .limit(limit)
        )
        page = [doc for doc in page if doc.get(field) is not None and doc[field] < upper]
        window["$gt"] = mark["at"]
    if len(page) < limit:
        page += list(
            db[collection]
            .find({field: window}, projection)
            .sort([(field, 1), ("_id", 1)])
            .limit(limit - len(page))
        )
    return page


def advance(db: Database[dict[str, Any]], mark_id: str, field: str, doc: Mapping[str, Any]) -> None:
    """The walk has handled everything up to and including `doc`."""
    db.meta.update_one(
        {"_id": mark_id}, {"$set": {"at": doc[field], "id": doc["_id"]}}, upsert=True
    )


def walk(
    db: Database[dict[str, Any]],
    collection: str,
    field: str,
    upper: Any,
    mark_id: str,
    handle: Callable[[dict[str, Any]], bool],
    projection: Mapping[str, Any] | None = None,
    limit: int = PAGE,
) -> int:
    """Handle one page: `handle(doc)` returns True when done with the document, False when its
    write lost a race (the walk stops before it). Returns how many were handled."""
    done, last = 0, None
    for doc in next_page(db, collection, field, upper, mark_id, projection, limit):
        if not handle(doc):
            break
        done, last = done + 1, doc
    if last is not None:
        advance(db, mark_id, field, last)
    return done
