"""The request pipeline of one peer, without sockets: a fake clock and simulated peers that
serve requests the way real clients do (at a capped rate, or in bursts from a pulse)."""

from __future__ import annotations

from collections import deque

import pytest

from swarm.pipeline import (
    BLOCK,
    DELAY_HALF_LIFE,
    INITIAL_DEPTH,
    MARGIN_BLOCKS,
    STARTUP_PATIENCE,
    Pipeline,
)

STEP = 0.001


class SimPeer:
    """A peer at *latency* each way that sends queued blocks at *blocks_per_s*. With *pulse*,
    it behaves as Transmission does: once its queue runs dry it sends nothing more until the
    next tick of a *pulse*-second clock, however soon new requests come."""

    def __init__(self, blocks_per_s: float, latency: float = 0.001, pulse: float = 0.0) -> None:
        self.gap = 1 / blocks_per_s
        self.latency = latency
        self.pulse = pulse
        self.to_peer: deque[tuple[float, tuple[int, int]]] = deque()  # requests on the way
        self.queue: deque[tuple[int, int]] = deque()  # requests it has
        self.to_us: deque[tuple[float, tuple[int, int]]] = deque()  # blocks on the way
        self.next_send = 0.0
        self.idle = pulse > 0

    def step(self, now: float) -> list[tuple[int, int]]:
        """Move time to *now*: the blocks that reach us."""
        while self.to_peer and self.to_peer[0][0] <= now:
            self.queue.append(self.to_peer.popleft()[1])
        if self.idle and self.queue and now % self.pulse < STEP:
            self.idle, self.next_send = False, now
        while not self.idle and self.queue and self.next_send <= now:
            self.to_us.append((now + self.latency, self.queue.popleft()))
            self.next_send += self.gap
        if self.pulse and not self.queue and self.next_send <= now:
            self.idle = True
        self.next_send = max(self.next_send, now - self.gap) if not self.pulse else self.next_send
        arrived = []
        while self.to_us and self.to_us[0][0] <= now:
            arrived.append(self.to_us.popleft()[1])
        return arrived


def run(
    peer: SimPeer, seconds: float, fixed_depth: int | None = None
) -> tuple[Pipeline, list[float], list[int]]:
    """Download from *peer* for *seconds* the way the request policy does (top up once half
    the queue has drained): the pipeline, each block's arrival time, the depth each second."""
    pipe = Pipeline(0.0)
    out: set[tuple[int, int]] = set()
    arrivals: list[float] = []
    depths: list[int] = []
    serial = 0
    for tick in range(int(seconds / STEP)):
        now = tick * STEP
        for key in peer.step(now):
            out.discard(key)
            pipe.arrived(key[0], key[1], BLOCK, now)
            arrivals.append(now)
        depth = fixed_depth or pipe.depth(now)
        if tick % int(1 / STEP) == 0:
            depths.append(depth)
        if len(out) <= depth // 2:
            blocks = []
            for _ in range(depth - len(out)):
                key = (serial, 0)
                serial += 1
                out.add(key)
                peer.to_peer.append((now + peer.latency, key))
                blocks.append((key[0], key[1], BLOCK))
            if fixed_depth is None:
                pipe.sent(blocks, now)
    return pipe, arrivals, depths


def rate(arrivals: list[float], start: float, end: float) -> float:
    """Blocks per second that arrived in [start, end)."""
    return sum(1 for t in arrivals if start <= t < end) / (end - start)


def test_nothing_measured_yet_means_the_initial_depth() -> None:
    assert Pipeline(5.0).depth(9.0) == INITIAL_DEPTH


def test_a_bursty_peer_is_given_enough_requests_to_reach_its_link_rate() -> None:
    # Transmission-like: it answers from a 0.5 s pulse once its queue runs dry, and it runs
    # dry whenever it sends faster than our next requests come. Four requests out get four
    # blocks a pulse, 8 blocks/s: the old rule (a quarter second of the rate and two blocks)
    # held it there.
    link = 1000.0  # blocks/s
    _, old, _ = run(SimPeer(link, latency=0.002, pulse=0.5), 6.0, fixed_depth=INITIAL_DEPTH)
    assert rate(old, 3.0, 6.0) <= 12
    pipe, arrivals, depths = run(SimPeer(link, latency=0.002, pulse=0.5), 6.0)
    # Two pulses measure the wait (the first blocks, before the rate is known, do not); from
    # the third on, the pipe is full.
    assert rate(arrivals, 2.0, 6.0) >= 0.9 * link
    assert pipe.delay >= 0.1  # the pulse's wait, measured
    # Slow start is over: the depth holds at the rate times at most the pulse's wait, plus
    # the margin (the caller caps it by the peer's reqq as well).
    assert not pipe.slow_start
    assert depths[-1] <= link * (0.5 + 0.25) + MARGIN_BLOCKS


@pytest.mark.parametrize("blocks_per_s", [8.0, 64.0, 640.0])
def test_a_rate_capped_peer_keeps_a_shallow_queue(blocks_per_s: float) -> None:
    # A peer that sends at its cap and never idles while it has requests: the delay beyond
    # each block's own time is nil, so the depth is the margin alone, a quarter second of
    # the rate and two blocks, and slow start ends once the rate stops rising.
    pipe, arrivals, depths = run(SimPeer(blocks_per_s), 8.0)
    assert rate(arrivals, 4.0, 8.0) >= 0.9 * blocks_per_s
    assert not pipe.slow_start
    margin = blocks_per_s * 0.25 + MARGIN_BLOCKS
    assert max(depths[3:]) <= max(INITIAL_DEPTH, margin * 1.2 + 1)


def test_a_far_peer_gets_its_bandwidth_delay_product() -> None:
    # 100 ms each way, 320 blocks/s: 64 blocks must be out when we top up (at half the
    # depth) to keep it busy, more than the margin alone (82, topped up at 41) gives.
    _, margin_only, _ = run(SimPeer(320.0, latency=0.1), 6.0, fixed_depth=82)
    assert rate(margin_only, 3.0, 6.0) <= 0.8 * 320
    pipe, arrivals, _ = run(SimPeer(320.0, latency=0.1), 6.0)
    assert rate(arrivals, 3.0, 6.0) >= 0.9 * 320
    assert pipe.delay >= 0.1


def steady(pipe: Pipeline, start: float, seconds: float, per_s: float = 40.0) -> float:
    """Blocks not asked of this pipeline (withdrawn earlier: no delay samples) arrive at
    *per_s* a second from *start* for *seconds*; the time of the last."""
    now = start
    while now < start + seconds:
        now += 1 / per_s
        pipe.arrived(999, 0, BLOCK, now)
    return now


def waits(pipe: Pipeline, start: float, wait: float, times: int = 2) -> float:
    """One request at a time, each answered after *wait*; the time of the last answer."""
    now = start
    for i in range(times):
        pipe.sent([(i, 0, BLOCK)], now)
        now += wait
        pipe.arrived(i, 0, BLOCK, now)
    return now


def test_slow_start_ends_when_the_rate_stops_rising_and_keeps_a_delay_that_paid() -> None:
    pipe = Pipeline(0.0)
    now = steady(pipe, 0.0, 0.5, per_s=4.0)
    now = waits(pipe, now, 0.5, times=1)  # half a second: less a block's 0.25 s at 4/s
    assert pipe.slow_start and pipe.delay > 0.15
    now = steady(pipe, now, 0.5)  # then 40 blocks/s: ten times the first rate
    assert pipe.slow_start
    now = steady(pipe, now, STARTUP_PATIENCE + 0.5)  # and no faster
    assert not pipe.slow_start
    assert pipe.delay > 0.1  # kept (decaying): it paid
    rate_blocks = pipe.rate / BLOCK
    assert 35 <= rate_blocks <= 42
    expected = rate_blocks * pipe.delay + rate_blocks * 0.25 + MARGIN_BLOCKS
    assert pipe.depth(now) == int(expected)


def test_a_delay_that_did_not_pay_is_dropped_when_slow_start_ends() -> None:
    # A capped peer: some blocks waited half a second (behind other peers' requests), but
    # the deeper queue that bought did not raise the rate: the depth falls back to the margin.
    pipe = Pipeline(0.0)
    now = steady(pipe, 0.0, 0.5)
    now = waits(pipe, now, 0.5, times=1)
    assert pipe.slow_start and pipe.delay > 0.4
    now = steady(pipe, now, STARTUP_PATIENCE + 1.0)
    assert not pipe.slow_start and pipe.delay == 0
    assert pipe.depth(now) == int(pipe.rate / BLOCK * 0.25 + MARGIN_BLOCKS)


def test_forgotten_requests_give_no_delay_sample() -> None:
    pipe = Pipeline(0.0)
    now = steady(pipe, 0.0, 0.5)
    for i in range(2):
        pipe.sent([(i, 0, BLOCK)], now)
        pipe.forget([(i, 0, BLOCK)])  # withdrawn: the peer choked us
        now += 3.0
        pipe.arrived(i, 0, BLOCK, now)  # it came long after all the same
    assert pipe.delay == 0


def test_rate_and_delay_decay_when_the_peer_slows_down() -> None:
    pipe = Pipeline(0.0)
    now = waits(pipe, steady(pipe, 0.0, 0.5, per_s=400.0), 0.2)
    now = steady(pipe, now, 0.3, per_s=400.0)
    deep = pipe.depth(now)
    assert deep > 200  # slow start: 2 x (400 blocks/s x 0.2 s) + 100 + 2
    later = now + 2 * DELAY_HALF_LIFE
    assert pipe.depth(later) < deep / 4
