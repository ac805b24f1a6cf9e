"""LEDBAT congestion control for uTP (BEP 29, RFC 6817): one-way delay, not loss, drives the
window, so uTP yields to TCP and keeps a modem's queue near empty.

The peer measures our packets' one-way delay (its clock minus our timestamp, so an offset
between the clocks included) and echoes it as ``timestamp_difference``. :class:`DelayHistory`
keeps the smallest sample of each minute for the last two minutes: their minimum is the
*base delay* (the clocks' offset plus the propagation delay), and a sample minus the base is
the *queuing delay*. Samples are 32-bit and may wrap, so every comparison is modulo 2**32.

Clock skew: a peer's clock running at another rate makes samples drift. The base is the
minimum of at most two minutes, so a drift older than that is forgotten; and a queuing delay
can never exceed the round trip, so it is clamped to the smallest RTT of the packets an ack
covers (as libutp does), which keeps a fast-running peer clock from shrinking the window.

:class:`Ledbat` owns the congestion window ``cwnd`` in bytes: each ack grows it by
``MAX_CWND_INCREASE * (off_target / TARGET) * (bytes_acked / cwnd)``, where off_target is
TARGET (100 ms) minus the queuing delay: it grows below the target and shrinks above it by at
most MAX_CWND_INCREASE bytes a round trip per target of excess. A slow start doubles it per
round trip until the delay nears the target or a loss; a loss halves it (once per
:data:`DECAY_INTERVAL`); a timeout drops it to one packet. Never below one packet, never
above :data:`MAX_WINDOW`. It grows only while the sender is window-limited (not for a
connection with little to send, whose window would otherwise grow without a test).
"""

from __future__ import annotations

__all__ = ["DECAY_INTERVAL", "MAX_CWND_INCREASE", "MAX_WINDOW", "TARGET", "DelayHistory", "Ledbat"]

TARGET = 100_000  # microseconds of queuing delay uTP accepts
MAX_CWND_INCREASE = 3000  # bytes per round trip at most (libutp's value)
MAX_WINDOW = 1 << 20
DECAY_INTERVAL = 0.1  # seconds between two halvings for loss
MINUTE = 60.0
BASE_MINUTES = 2
CURRENT_SAMPLES = 3  # the queuing delay is the least of the last few samples (noise)
_MASK = 0xFFFFFFFF
_HALF = 0x80000000


def _less(a: int, b: int) -> bool:
    """a < b for 32-bit numbers that wrap."""
    return a != b and (b - a) & _MASK < _HALF


class DelayHistory:
    """The base delay (per-minute minima of the last :data:`BASE_MINUTES` minutes) and the
    current queuing delay of 32-bit one-way delay samples, in microseconds."""

    __slots__ = ("_minute_started", "_minima", "_recent", "base")

    def __init__(self) -> None:
        self.base: int | None = None
        self._minima: list[int] = []  # oldest first; the last is this minute's
        self._minute_started = 0.0
        self._recent: list[int] = []

    def add(self, sample: int, now: float) -> None:
        sample &= _MASK
        if self.base is None:
            self._minima = [sample]
            self._minute_started = now
            self.base = sample
        elif now - self._minute_started >= MINUTE:
            self._minima.append(sample)
            del self._minima[:-BASE_MINUTES]
            self._minute_started = now
            self.base = self._minima[0]
            for m in self._minima[1:]:
                if _less(m, self.base):
                    self.base = m
        else:
            if _less(sample, self._minima[-1]):
                self._minima[-1] = sample
            if _less(sample, self.base):
                self.base = sample
        self._recent.append((sample - self.base) & _MASK)
        if len(self._recent) > CURRENT_SAMPLES:
            del self._recent[0]

    def shift(self, offset: int) -> None:
        """Raise the base by *offset* microseconds (a queuing delay above the round trip
        shows the base is stale: the peer's clock ran fast)."""
        self._minima = [(m + offset) & _MASK for m in self._minima]
        if self.base is not None:
            self.base = (self.base + offset) & _MASK
        self._recent = [max(0, r - offset) if r < _HALF else 0 for r in self._recent]

    @property
    def queuing_delay(self) -> int:
        """The least of the last few samples above the base, microseconds (0 with none)."""
        if not self._recent:
            return 0
        return min(r if r < _HALF else 0 for r in self._recent)


class Ledbat:
    """The congestion window of one connection sending *packet_size*-byte payloads."""

    __slots__ = (
        "_last_decay",
        "_limited_at",
        "cwnd",
        "history",
        "packet_size",
        "slow_start",
        "ssthresh",
    )

    def __init__(self, packet_size: int, now: float) -> None:
        self.packet_size = packet_size
        self.cwnd = float(2 * packet_size)
        self.slow_start = True
        self.ssthresh = float(MAX_WINDOW)
        self.history = DelayHistory()
        self._last_decay = now - DECAY_INTERVAL
        self._limited_at = now

    @property
    def window(self) -> int:
        return int(self.cwnd)

    def window_limited(self, now: float) -> None:
        """The sender had more to send than the window let it (so the window is tested)."""
        self._limited_at = now

    def on_ack(self, bytes_acked: int, delay: int | None, min_rtt: float, now: float) -> None:
        """An ack of *bytes_acked* new bytes, with the peer's measure of our one-way delay
        (None when it has none yet) and the least RTT (seconds) of the packets it acks."""
        if delay is None or delay == 0 or bytes_acked <= 0:
            return
        hist = self.history
        hist.add(delay, now)
        our_delay = hist.queuing_delay
        rtt_us = int(min_rtt * 1e6) if min_rtt < 1e6 else our_delay  # inf: only resent ones
        if our_delay > rtt_us:
            hist.shift(our_delay - rtt_us)
            our_delay = rtt_us
        cwnd = self.cwnd
        window_factor = min(bytes_acked, cwnd) / max(cwnd, bytes_acked)
        gain = MAX_CWND_INCREASE * window_factor * (TARGET - our_delay) / TARGET
        if gain > 0 and now - self._limited_at > 1.0:
            gain = 0.0  # not using the window: do not grow it untested
        if self.slow_start:
            if our_delay > TARGET * 0.9:
                self.slow_start = False
                self.ssthresh = cwnd
                cwnd += gain
            elif now - self._limited_at <= 1.0:
                cwnd = max(cwnd + bytes_acked, cwnd + gain)
                if cwnd > self.ssthresh:
                    self.slow_start = False
        else:
            cwnd += gain
        self.cwnd = min(max(cwnd, float(self.packet_size)), float(MAX_WINDOW))

    def on_loss(self, now: float) -> None:
        """A packet was lost (three duplicate acks, or three selective acks past it)."""
        if now - self._last_decay < DECAY_INTERVAL:
            return
        self._last_decay = now
        self.cwnd = max(self.cwnd * 0.5, float(self.packet_size))
        self.ssthresh = self.cwnd
        self.slow_start = False

    def on_timeout(self, idle: bool) -> None:
        """The retransmission timer fired: one packet's window (a third off if the connection
        was only idle, as libutp does), and a slow start again."""
        if idle:
            self.cwnd = max(self.cwnd * 2 / 3, float(self.packet_size))
        else:
            self.ssthresh = max(self.cwnd * 0.5, float(2 * self.packet_size))
            self.cwnd = float(self.packet_size)
            self.slow_start = True
