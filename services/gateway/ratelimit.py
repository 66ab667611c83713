"""A token bucket per caller (user, integration key, or client address before login).

OWASP API4 (unrestricted resource consumption): one caller cannot starve the others. The
buckets live in each gateway process, so with W workers and R replicas a caller gets at most
W×R times the configured rate; the Ingress carries the cluster-wide limit (k8s/).
"""

import threading
import time


class RateLimiter:
    def __init__(self, per_minute, burst, clock=time.monotonic, max_callers=100_000):
        self.rate = per_minute / 60.0
        self.burst = float(burst)
        self.clock = clock
        self.max_callers = max_callers
        self._buckets = {}
        self._lock = threading.Lock()

    def acquire(self, caller):
        """0 when the request may go on, else the seconds to wait before the next one."""
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(caller, (self.burst, now))
            tokens = min(self.burst, tokens + (now - last) * self.rate)
            if tokens >= 1:
                self._buckets[caller] = (tokens - 1, now)
                if len(self._buckets) > self.max_callers:
                    self._forget_full(now)
                return 0.0
            self._buckets[caller] = (tokens, now)
            return (1 - tokens) / self.rate if self.rate else 60.0

    def _forget_full(self, now):
        # A bucket that has refilled holds nothing worth keeping: drop it to bound memory.
        full = [
            c
            for c, (t, last) in self._buckets.items()
            if t + (now - last) * self.rate >= self.burst
        ]
        for caller in full:
            del self._buckets[caller]
