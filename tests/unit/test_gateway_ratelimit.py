"""The gateway's token bucket, on a hand-driven clock."""

from services.gateway.ratelimit import RateLimiter


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def test_a_burst_passes_then_the_rate_holds_and_refills():
    clock = Clock()
    limiter = RateLimiter(per_minute=60, burst=3, clock=clock)
    assert [limiter.acquire("ann") for _ in range(3)] == [0, 0, 0]
    wait = limiter.acquire("ann")
    assert 0.99 <= wait <= 1.0
    assert limiter.acquire("bob") == 0  # another caller has its own bucket
    clock.now += 1.0
    assert limiter.acquire("ann") == 0
    assert limiter.acquire("ann") > 0
    clock.now += 60
    assert [limiter.acquire("ann") for _ in range(3)] == [0, 0, 0]


def test_memory_is_bounded_by_forgetting_full_buckets():
    clock = Clock()
    limiter = RateLimiter(per_minute=600, burst=2, clock=clock, max_callers=10)
    for i in range(10):
        limiter.acquire(f"ip-{i}")
    clock.now += 60
    limiter.acquire("late")
    assert len(limiter._buckets) <= 2
