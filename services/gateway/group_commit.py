"""Group commit: the items of concurrent callers written together, each caller waiting for
its own item's write.

The gateway audits every read of personal data, and a read must not be answered before its
audit entry is in the store (a crash after the answer would leave a read nobody can see). One
insert per read made the audit a store round trip per request; with gunicorn's gthread
workers several requests of a worker are in flight at once, so the entries that arrive while
one write is under way go together in the next one (one `insert_many`).

There is no timer and nothing is held back: a caller that finds no write under way writes at
once (alone, it pays what a single insert paid); the others wait only for the write in
progress. When `write` returns, the item is written; when it raises, it may or may not be,
and the caller must not report success (the read is not answered).
"""

import threading
from collections.abc import Callable, Mapping
from typing import Any

# write_many(items) -> {index: exception} for the items it could not write.
WriteMany = Callable[[list[Any]], Mapping[int, Exception] | None]


class _Slot:
    __slots__ = ("done", "error", "item")

    def __init__(self, item: Any) -> None:
        self.item = item
        self.done = False
        self.error: BaseException | None = None


class GroupCommit:
    """`write_many(items)` writes a list and returns {index: exception} for the items it could
    not write (empty when all were written), or raises when it wrote none for sure."""

    def __init__(self, write_many: WriteMany, max_batch: int = 500) -> None:
        self._write_many = write_many
        self._max_batch = max_batch
        self._cond = threading.Condition()
        self._pending: list[_Slot] = []
        self._writing = False
        self.writes = 0  # how many write_many calls (for tests and benchmarks)
        self.items = 0  # how many items they carried

    def write(self, item: Any) -> Any:
        slot = _Slot(item)
        with self._cond:
            self._pending.append(slot)
        while True:
            with self._cond:
                while self._writing and not slot.done:
                    self._cond.wait()
                if slot.done:
                    break
                # No write under way and ours still pending: this caller writes the next batch
                # (the oldest entries first), then looks again.
                batch = self._pending[: self._max_batch]
                del self._pending[: self._max_batch]
                self._writing = True
            self._write(batch)
        if slot.error is not None:
            raise slot.error
        return item

    def _write(self, batch: list[_Slot]) -> None:
        failed: Mapping[int, Exception] = {}
        error: BaseException | None = None
        try:
            failed = self._write_many([slot.item for slot in batch]) or {}
        except Exception as exc:  # every caller of the batch raises it
            error = exc
        except BaseException as exc:  # the thread is ending: its batch's callers learn it too
            error = exc
            raise
        finally:
            with self._cond:
                self.writes += 1
                self.items += len(batch)
                for index, slot in enumerate(batch):
                    slot.error = error if error is not None else failed.get(index)
                    slot.done = True
                self._writing = False
                self._cond.notify_all()
