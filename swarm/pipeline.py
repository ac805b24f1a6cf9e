"""Request pipelining for one peer: how many block requests to keep out with it.

Enough requests must be out that the peer never waits for our next ones: the rate times the
time a request spends before its block starts to come (the bandwidth-delay product), plus a
margin. Both are measured here, per peer, from what the request policy sees: when it sends
each request and when each block arrives.

- The rate is the peak of the delivery rate over short intervals, decaying (a peer that slows
  down is believed after a few seconds).
- The delay is what a block took beyond the one before it, less the time its bytes take at
  that rate: the block of a request sent while others were still out cannot start before they
  are through, so only the excess is delay. For a peer that sends as fast as its cap allows
  it is near zero; for a peer that serves requests in bursts (Transmission sends from a
  pulse, so requests that find its queue empty wait for the next one) it is the wait between
  bursts. The peak is kept, decaying, as the delay to cover.

The depth starts at :data:`INITIAL_DEPTH` and, in slow start, is twice the measured
bandwidth-delay product plus the margin: while the peer's pipe has bubbles each round trip
fills it further and the rate rises. Once the rate has stopped rising for
:data:`STARTUP_PATIENCE` seconds the depth holds at the product plus the margin (the margin
is what was the whole rule before: a quarter of a second of the rate and two blocks, which
keeps queues shallow at rate-capped uploaders, where deep queues delay other peers' requests).
A delay is not always the pipe's: at a capped uploader the first blocks wait behind every
other peer's, and a deeper queue only lengthens that line. So if slow start ends without the
rate having grown :data:`PAYOFF` times over its first measure, the delay is dropped and the
depth is the margin alone.
The caller caps the depth by the peer's ``reqq``. Pure: the clock is passed in.
"""

from __future__ import annotations

BLOCK = 16 * 1024
INITIAL_DEPTH = 4
STARTUP_GAIN = 2.0  # depth in slow start: this many bandwidth-delay products, plus the margin
STARTUP_GROWTH = 1.25  # the rate "keeps rising" while each interval beats the best by this
STARTUP_PATIENCE = 1.0  # seconds without such a rise before slow start ends
PAYOFF = 2.0  # slow start keeps the delay it measured only if the rate grew this much
MARGIN_SECONDS = 0.25  # the margin: this much of the rate ...
MARGIN_BLOCKS = 2  # ... and this many blocks
RATE_INTERVAL = 0.25  # seconds of arrivals per delivery-rate sample
RATE_HALF_LIFE = 2.0  # the peak rate halves in this many seconds without a new peak
DELAY_HALF_LIFE = 10.0  # and the peak delay in this many (a bursty peer bursts again by then)
DECAY_STEP = 0.05  # seconds between decays (1.7% of the rate at most)


def _decay(value: float, elapsed: float, half_life: float) -> float:
    return value * 0.5 ** (elapsed / half_life) if elapsed > 0 else value


class Pipeline:
    """What one peer's request queue should hold, from its measured rate and delay."""

    __slots__ = (
        "_best",
        "_first",
        "_decayed_at",
        "_grew_at",
        "_interval_bytes",
        "_interval_start",
        "_last_arrival",
        "_sent",
        "delay",
        "rate",
        "slow_start",
    )

    def __init__(self, now: float) -> None:
        self.rate = 0.0  # bytes/s: the decaying peak of the delivery rate
        self.delay = 0.0  # seconds: the decaying peak of the excess delay
        self.slow_start = True
        self._sent: dict[tuple[int, int], float] = {}  # (index, begin) -> when asked
        self._last_arrival = -float("inf")
        self._interval_start = now
        self._interval_bytes = 0
        self._best = 0.0  # the best interval rate in slow start
        self._first = 0.0  # and the first
        self._grew_at = now
        self._decayed_at = now

    def sent(self, blocks: list[tuple[int, int, int]], now: float) -> None:
        """Requests for *blocks* went out at *now*."""
        if not self._sent and self._interval_bytes == 0:
            self._interval_start = now  # an idle spell is no part of a rate sample
        for index, begin, _ in blocks:
            self._sent[(index, begin)] = now

    def forget(self, blocks: list[tuple[int, int, int]]) -> None:
        """Requests withdrawn (choke, snub, reject, cancel): their blocks are no sample."""
        for index, begin, _ in blocks:
            self._sent.pop((index, begin), None)

    def arrived(self, index: int, begin: int, length: int, now: float) -> None:
        """A block we asked for came at *now*."""
        self._decay(now)
        asked = self._sent.pop((index, begin), None)
        if asked is not None:
            gap = now - max(asked, self._last_arrival)
            if self.rate > 0:
                gap -= length / self.rate
            self.delay = max(self.delay, gap)
        self._last_arrival = now
        self._interval_bytes += length
        elapsed = now - self._interval_start
        if elapsed >= RATE_INTERVAL:
            sample = self._interval_bytes / elapsed
            self.rate = max(self.rate, sample)
            self._interval_start, self._interval_bytes = now, 0
            if self.slow_start:
                self._first = self._first or sample
                if sample > self._best * STARTUP_GROWTH:
                    self._best, self._grew_at = sample, now
                elif now - self._grew_at >= STARTUP_PATIENCE:
                    self.slow_start = False
                    if self._best < PAYOFF * self._first:
                        # The deeper queue did not pay: the peer is capped, and the delay
                        # was its queue, not its pipe's.
                        self.delay = 0.0

    def _decay(self, now: float) -> None:
        elapsed = now - self._decayed_at
        if elapsed < DECAY_STEP:
            return  # a block's arrival costs a comparison, not two powers
        self._decayed_at = now
        self.rate = _decay(self.rate, elapsed, RATE_HALF_LIFE)
        self.delay = _decay(self.delay, elapsed, DELAY_HALF_LIFE)

    def depth(self, now: float) -> int:
        """Requests to keep out now (the caller applies the peer's limits)."""
        self._decay(now)
        if self.rate == 0:
            return INITIAL_DEPTH
        gain = STARTUP_GAIN if self.slow_start else 1.0
        product = self.rate * self.delay / BLOCK
        margin = self.rate * MARGIN_SECONDS / BLOCK + MARGIN_BLOCKS
        return max(INITIAL_DEPTH, int(gain * product + margin))
