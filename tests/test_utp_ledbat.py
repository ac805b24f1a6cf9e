"""LEDBAT (BEP 29, RFC 6817): the window grows below the 100 ms target and shrinks above
it, halves on loss, never drops below a packet, and survives clock skew and wrapping."""

from __future__ import annotations

import random

from swarm.utp.ledbat import MAX_WINDOW, TARGET, DelayHistory, Ledbat

PKT = 1380


def feed(led: Ledbat, now: float, seconds: float, delay_of, rtt: float = 0.05) -> float:
    """Acks of one packet every 10 ms for *seconds*, the sender always window-limited."""
    end = now + seconds
    while now < end:
        led.window_limited(now)
        led.on_ack(PKT, delay_of(now), rtt, now)
        now += 0.01
    return now


def rounds(led: Ledbat, now: float, n: int, delay: int, rtt: float) -> float:
    """*n* round trips, each acking a whole window packet by packet, as a busy sender sees."""
    for _ in range(n):
        led.window_limited(now)
        for _ in range(max(int(led.cwnd) // PKT, 1)):
            led.on_ack(PKT, delay, rtt, now)
        now += rtt
    return now


def test_grows_below_target_and_shrinks_above_it() -> None:
    led = Ledbat(PKT, 0.0)
    base = 1_000_000  # the clocks' offset, meaningless by itself
    now = rounds(led, 0.0, 6, base, 0.05)
    grown = led.cwnd
    assert grown > 50 * PKT
    now = rounds(led, now, 20, base + 5000, 0.05)  # 5 ms of queue: still growing
    assert led.cwnd > grown
    grown = led.cwnd
    # 200 ms of queuing from now on (the RTT grows by as much): 3000 bytes a round trip
    # per target of excess, so some 60 KB in 20 round trips
    now = rounds(led, now, 20, base + 2 * TARGET, 0.25)
    assert led.cwnd < grown - 50_000
    assert led.cwnd >= PKT


def test_never_below_one_packet_nor_above_the_cap() -> None:
    led = Ledbat(PKT, 0.0)
    now = feed(led, 0.0, 1.0, lambda t: 5000)
    feed(led, now, 60.0, lambda t: 5000 + 10 * TARGET, rtt=2.0)
    assert led.cwnd == PKT
    led2 = Ledbat(PKT, 0.0)
    feed(led2, 0.0, 60.0, lambda t: 5000)
    assert PKT < led2.cwnd <= MAX_WINDOW


def test_not_window_limited_does_not_grow() -> None:
    led = Ledbat(PKT, 0.0)
    start = led.cwnd
    for i in range(500):
        led.on_ack(PKT, 5000, 0.05, 2.0 + i * 0.01)  # an app that sends little
    assert led.cwnd == start


def test_loss_halves_once_per_decay_interval() -> None:
    led = Ledbat(PKT, 0.0)
    feed(led, 0.0, 3.0, lambda t: 5000)
    before = led.cwnd
    led.on_loss(10.0)
    led.on_loss(10.05)  # the same loss event seen again
    assert led.cwnd == before / 2
    led.on_loss(10.2)
    assert led.cwnd == before / 4
    led.on_timeout(idle=False)
    assert led.cwnd == PKT


def test_peer_clock_running_fast_does_not_collapse_the_window() -> None:
    # the peer's clock gains 5 ms a second: samples climb 300 ms a minute with no queue at
    # all; the RTT (50 ms) bounds the queuing delay, and the per-minute base follows
    led = Ledbat(PKT, 0.0)
    feed(led, 0.0, 180.0, lambda t: 7_000_000 + int(t * 5000))
    assert led.cwnd > 50 * PKT


def test_samples_that_wrap_past_2_32() -> None:
    hist = DelayHistory()
    hist.add(0xFFFF_FF00, 0.0)
    hist.add(0x0000_0400, 0.1)  # 0x500 later, across the wrap
    for t in (0.2, 0.3, 0.4):
        hist.add(0x0000_0400, t)
    assert hist.base == 0xFFFF_FF00
    assert hist.queuing_delay == 0x500


def test_base_delay_forgets_minima_older_than_two_minutes() -> None:
    hist = DelayHistory()
    hist.add(1000, 0.0)  # a low outlier
    now = 0.0
    rng = random.Random(1)
    while now < 200.0:
        now += 1.0
        hist.add(50_000 + rng.randrange(100), now)
    assert hist.base is not None and hist.base >= 50_000
