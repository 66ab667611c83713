"""Index declarations: what a store creates at start (shared/store.py) and what the pieces
built on a store, such as the outbox, ask it for."""

from collections.abc import Iterable
from typing import Any


class Index:
    """An index declared next to the code that relies on it."""

    def __init__(
        self, collection: str, keys: Iterable[str | tuple[str, Any]], **options: Any
    ) -> None:
        self.collection = collection
        self.keys = [(k, 1) if isinstance(k, str) else k for k in keys]
        self.options = options
