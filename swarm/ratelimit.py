"""Token buckets for upload and download rate limits, shared by every connection of a process.

:class:`TokenBucket` is pure (the clock is passed in); :class:`RateLimiter` is the asyncio
wrapper that connections await before they send or after they receive bytes.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class TokenBucket:
    """A token bucket: *rate* bytes per second, holding at most *burst* bytes of credit."""

    def __init__(
        self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        # A small burst (20 ms of the rate, at least one 16 KiB block plus its header): an
        # idle sender gains little head start, and a block still goes out in one piece.
        self.burst = float(burst if burst is not None else max(rate / 50, 16 * 1024 + 13))
        self._clock = clock
        self._tokens = 0.0  # start empty: the cap holds from the first byte
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        elapsed = now - self._stamp
        if elapsed > 0:
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate)
            self._stamp = now

    def consume(self, amount: int) -> float:
        """Take *amount* tokens (going into debt if need be); return seconds to wait before
        the caller may go on so that the long-run rate holds."""
        self._refill()
        self._tokens -= amount
        if self._tokens >= 0:
            return 0.0
        return -self._tokens / self.rate


class RateLimiter:
    """An asyncio rate limit; ``None`` rate means unlimited. Share one between connections."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self._bucket = TokenBucket(rate, clock=clock) if rate else None

    @property
    def unlimited(self) -> bool:
        return self._bucket is None

    def reserve(self, amount: int) -> float:
        """Account for *amount* bytes now: the seconds to wait before sending them.

        No lock: the bucket goes into debt, and each caller waits until the debt of every
        caller before it and its own are paid, so the total rate holds however many
        connections share the bucket, in the order they asked (what a lock gave, at the price
        of a lock and two coroutines per block: a twentieth of an uploader's time)."""
        if self._bucket is None or amount <= 0:
            return 0.0
        return self._bucket.consume(amount)

    async def throttle(self, amount: int) -> None:
        """Account for *amount* bytes and sleep as long as the shared rate requires."""
        delay = self.reserve(amount)
        if delay > 0:
            await asyncio.sleep(delay)
