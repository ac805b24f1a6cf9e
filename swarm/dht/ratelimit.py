"""Per-address rate limits for a DHT node's answers: a token bucket per source IP.

A node answers any address that asks, so one address could make it work (and send) without
end; each IP gets :data:`QUERY_BURST` queries at once and :data:`QUERY_RATE` a second after
that, and the rest are dropped unanswered. The map of buckets is bounded: past
:data:`MAX_TRACKED` IPs the least recently heard one is forgotten (it would have a full
bucket again by then, unless it is flooding from many addresses, which no per-address limit
stops). Pure: time is passed in.
"""

from __future__ import annotations

__all__ = ["MAX_TRACKED", "QUERY_BURST", "QUERY_RATE", "RateLimits"]

QUERY_RATE = 5.0
QUERY_BURST = 20.0
"""Queries a second answered from one IP, and the burst allowed (libtorrent blocks an IP
over 5 a second: ``dht_block_ratelimit``). A lab with many nodes on one IP raises these."""
MAX_TRACKED = 4096


class RateLimits:
    """Token buckets keyed by IP address, least recently heard first."""

    def __init__(
        self, rate: float = QUERY_RATE, burst: float = QUERY_BURST, max_tracked: int = MAX_TRACKED
    ) -> None:
        self._rate, self._burst, self._max = rate, burst, max_tracked
        self._buckets: dict[str, tuple[float, float]] = {}

    def __len__(self) -> int:
        return len(self._buckets)

    def allow(self, ip: str, now: float) -> bool:
        """Whether one more query from *ip* is answered now (and counted if so)."""
        entry = self._buckets.pop(ip, None)
        if entry is None:
            tokens = self._burst
            while len(self._buckets) >= self._max:
                del self._buckets[next(iter(self._buckets))]
        else:
            tokens = min(self._burst, entry[0] + (now - entry[1]) * self._rate)
        allowed = tokens >= 1.0
        self._buckets[ip] = (tokens - 1.0 if allowed else tokens, now)
        return allowed
