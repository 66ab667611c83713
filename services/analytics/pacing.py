"""How often the refresh timer recomputes a changed day's partial figures.

A recomputation reads the whole day (its facts, people, follow-ups, complaints). A day that
changed once (a correction, a day of an import) is worth warming at once: a manager's query
then reads a ready partial. A day that changes all the time (today, under live traffic) is
stale again within seconds, so warming it on every tick buys readers nothing, while each
recomputation holds the store for as long as reading the day takes (half a second for a
busy day on NX-27017, which serves one request at a time) and every event in flight waits
behind it: that was the latency bench's p99 (bench/README.md). Readers never depend on the
pace: a query recomputes any day whose partial is stale (AnalyticsService._figures).
"""

import dataclasses

# Days remembered per process; beyond it the memory starts afresh (a day then counts as
# never seen: warmed at its next tick, which is the cautious side).
MAX_DAYS_REMEMBERED = 4096


@dataclasses.dataclass
class RefreshPacer:
    """A changed day is due on the tick it is first seen, on a tick that finds it quiet (its
    change counter as at the previous tick), and otherwise once `max_delay_s` has passed
    since it was last recomputed."""

    # day -> (its change counter at the last tick that saw it, when it was last recomputed)
    seen: dict[str, tuple[int, float]] = dataclasses.field(default_factory=dict)

    def due(self, day: str, changes: int, now: float, max_delay_s: float) -> bool:
        last = self.seen.get(day)
        if last is None or last[0] == changes or now - last[1] >= max_delay_s:
            return True
        self.seen[day] = (changes, last[1])  # still changing: look again next tick
        return False

    def recomputed(self, day: str, changes: int, now: float) -> None:
        if len(self.seen) >= MAX_DAYS_REMEMBERED:
            self.seen.clear()
        self.seen[day] = (changes, now)
