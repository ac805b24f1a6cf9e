"""Token buckets for upload and download rate limits, shared by every connection of a process.

:class:`TokenBucket` is pure (the clock is passed in); :class:`RateLimiter` is the asyncio
wrapper that connections await before they send or after they receive bytes: in the order
they asked (:meth:`RateLimiter.reserve`), or the lowest rank first (:meth:`RateLimiter.acquire`,
how an uploader serves the rarest piece first).
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import time
from collections.abc import Callable

RANKS_PER_SECOND = 10.0  # how fast a batch waiting in RateLimiter.acquire gains on rarer ones


def aged(rank: int, arrival: float) -> float:
    """A waiting batch's place (lowest first): its piece's *rank*, less a rank for every
    1/:data:`RANKS_PER_SECOND` s it has waited since *arrival*, so a common piece waits
    behind rarer ones for a few seconds at most, never for good."""
    return rank + RANKS_PER_SECOND * arrival


class TokenBucket:
    """A token bucket: *rate* bytes per second, holding at most *burst* bytes of credit saved
    while idle, and up to *catch_up* seconds of the rate for a sender that came back late.

    Idle credit is small (20 ms of the rate, at least one 16 KiB block and its header): an
    idle sender gains little head start, and a block still goes out in one piece. A sender
    that comes back at most *catch_up* seconds after its debt was paid keeps what it could
    have sent meanwhile (its loop ran late: a busy CPU); one that comes back later was idle,
    and keeps the small burst only. With 20 ms for both, at N = 100 on 2 cores every late
    wake-up of a group process cost its 25 uploaders their share of that time for good. The
    bucket starts empty at its first use, so nothing sends more than *rate* times the time
    since it first sent (what the bound compare reports assumes): a bucket made long before
    its first byte has saved nothing.
    """

    def __init__(
        self,
        rate: float,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        catch_up: float = 0.25,
    ) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = float(rate)
        self.burst = float(burst if burst is not None else max(rate / 50, 16 * 1024 + 13))
        self.catch_up = catch_up
        self._clock = clock
        self._tokens = 0.0  # start empty: the cap holds from the first byte
        self._stamp: float | None = None  # from the first use

    def _refill(self) -> None:
        now = self._clock()
        if self._stamp is None:
            self._stamp = now
            return
        elapsed = now - self._stamp
        if elapsed > 0:
            tokens = self._tokens + elapsed * self.rate
            # Seconds since the debt was paid: late (keep it) or idle (the small burst only).
            late = tokens / self.rate
            self._tokens = tokens if late <= self.catch_up else min(self.burst, tokens)
            self._stamp = now

    def refund(self, amount: int) -> None:
        """Give back *amount* tokens taken and not used: debt paid off, no more (with none
        owed, nobody waits who could go sooner)."""
        self._refill()
        if self._tokens < 0:
            self._tokens = min(0.0, self._tokens + amount)

    def wait(self) -> float:
        """Seconds until the bucket is out of debt (0.0: it is now)."""
        self._refill()
        return max(0.0, -self._tokens / self.rate)

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
        # acquire()'s waiters: (rank aged by arrival time, arrival, bytes, future), and the
        # timer that serves them
        self._waiting: list[tuple[float, int, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()
        self._timer: asyncio.TimerHandle | None = None

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

    def refund(self, amount: int) -> None:
        """Give back *amount* bytes reserved and then not sent (the peer was choked while its
        blocks waited their turn): the callers after it go that much sooner. Kept, the debt
        lost the time it stood for: at every choking round an uploader withdraws the batches
        of the peers it chokes (up to a piece each), and in the texts' scenario (100 kB/s)
        the swarm's rate fell from ~9 to ~5 MB/s for 3 s every 10 s."""
        if self._bucket is not None and amount > 0:
            self._bucket.refund(amount)

    async def acquire(self, amount: int, rank: int) -> None:
        """Account for *amount* bytes once the bucket is out of debt, the lowest *rank* of the
        callers waiting first (less the time each has waited, in :data:`RANKS_PER_SECOND`;
        then the earliest): the caller sends them at once after.

        An uploader ranks a batch by how many of its peers have the piece: asked in turn
        (:meth:`reserve`), a new piece waited behind every other peer's batch at each hop
        (about 0.25 s with 4 unchoked peers), and at N = 100 the swarm's start and each new
        piece's spread left upload idle (last copy 6.31 s against 6.04 s, median 6.02 against
        5.38 s, 4 pairs of runs, CPU the same; the texts' scenario's median 112 -> 109 s)."""
        bucket = self._bucket
        if bucket is None or amount <= 0:
            return
        if not self._waiting and bucket.wait() == 0.0:
            bucket.consume(amount)
            return
        loop = asyncio.get_running_loop()
        fut: asyncio.Future[None] = loop.create_future()
        key = aged(rank, loop.time())
        heapq.heappush(self._waiting, (key, next(self._arrivals), amount, fut))
        self._arm(bucket)
        await fut

    def _arm(self, bucket: TokenBucket) -> None:
        if self._timer is None:
            loop = asyncio.get_running_loop()
            self._timer = loop.call_later(bucket.wait(), self._serve_waiting, bucket)

    def _serve_waiting(self, bucket: TokenBucket) -> None:
        self._timer = None
        waiting = self._waiting
        while waiting and bucket.wait() == 0.0:
            _, _, amount, fut = heapq.heappop(waiting)
            if not fut.done():  # a caller cancelled while it waited takes nothing
                bucket.consume(amount)
                fut.set_result(None)
        if waiting:
            self._arm(bucket)

    async def throttle(self, amount: int) -> None:
        """Account for *amount* bytes and sleep as long as the shared rate requires."""
        delay = self.reserve(amount)
        if delay > 0:
            await asyncio.sleep(delay)
