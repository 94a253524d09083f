"""Per-client token buckets (rate limit) and a cap on simultaneous uploads."""

from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager
from collections.abc import Iterator

from app.core.errors import QueueFull, TooManyRequests


class RateLimiter:
    """``rate_per_min`` requests a minute per client, bursts up to ``burst``. 0 disables it."""

    def __init__(self, rate_per_min: float, burst: int, *, clock=time.monotonic) -> None:  # type: ignore[no-untyped-def]
        self.rate = rate_per_min / 60.0
        self.burst = burst
        self.clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}
        self._lock = threading.Lock()

    def check(self, client: str) -> None:
        if self.rate <= 0:
            return
        now = self.clock()
        with self._lock:
            tokens, last = self._buckets.get(client, (float(self.burst), now))
            tokens = min(float(self.burst), tokens + (now - last) * self.rate)
            if tokens < 1.0:
                self._buckets[client] = (tokens, now)
                wait = math.ceil((1.0 - tokens) / self.rate)
                raise TooManyRequests(f"rate limit of {self.rate * 60:g} requests a minute exceeded; retry in {wait} s",
                                      retry_after_s=wait)
            self._buckets[client] = (tokens - 1.0, now)
            if len(self._buckets) > 10_000:  # forget idle clients
                cutoff = now - self.burst / self.rate
                self._buckets = {k: v for k, v in self._buckets.items() if v[1] > cutoff}


class UploadSlots:
    """At most ``limit`` request bodies are read at once; the next gets 503 with Retry-After."""

    def __init__(self, limit: int) -> None:
        self._sem = threading.BoundedSemaphore(limit)
        self.limit = limit

    @contextmanager
    def hold(self) -> Iterator[None]:
        if not self._sem.acquire(blocking=False):
            raise QueueFull(f"{self.limit} uploads are already in progress; retry shortly")
        try:
            yield
        finally:
            self._sem.release()
