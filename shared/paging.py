"""One page of a list: the largest page any list answers, and the clamp every service
applies to the limit and offset it is given over RPC (the gateway refuses a larger limit at
the edge; RPC callers inside the platform are clamped instead)."""

MAX_PAGE = 500


def page(limit: int | str, offset: int | str = 0) -> tuple[int, int]:
    """(limit, offset) as integers: the limit at most MAX_PAGE, the offset at least 0."""
    return min(int(limit), MAX_PAGE), max(int(offset), 0)
