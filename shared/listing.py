"""The query of a list RPC: its filters are optional, and one left unset (None or empty)
does not narrow the list."""

from collections.abc import Mapping


def set_filters(filters: Mapping[str, object]) -> dict[str, object]:
    """The filters given a value, in order: every list RPC drops the unset ones the same way."""
    return {field: value for field, value in filters.items() if value}
