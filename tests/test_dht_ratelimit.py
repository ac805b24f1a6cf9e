"""Per-address token buckets: a burst, then a steady rate, per IP, in bounded memory."""

from __future__ import annotations

from swarm.dht.ratelimit import RateLimits


def test_a_burst_then_the_rate() -> None:
    limits = RateLimits(rate=5.0, burst=10.0)
    assert sum(limits.allow("10.0.0.1", 0.0) for _ in range(100)) == 10
    assert limits.allow("10.0.0.1", 0.1) is False  # half a token back: not enough
    assert limits.allow("10.0.0.1", 0.2) is True
    assert sum(limits.allow("10.0.0.1", 10.0) for _ in range(100)) == 10  # full again, no more
    assert limits.allow("10.0.0.2", 0.0) is True  # another IP has its own bucket


def test_the_least_recently_heard_ip_is_forgotten_first() -> None:
    limits = RateLimits(rate=1.0, burst=1.0, max_tracked=2)
    assert limits.allow("a", 0.0) and limits.allow("b", 0.0)
    assert not limits.allow("a", 0.0)  # a is empty and now the most recently heard
    assert limits.allow("c", 0.0)  # b goes
    assert len(limits) == 2
    assert not limits.allow("a", 0.0)  # a was kept, still empty
    assert limits.allow("b", 0.0)  # b was forgotten: a full bucket again
