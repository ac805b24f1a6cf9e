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
    assert rate(arrivals, 3.0, 6.0) >= 0.9 * link
    assert rate(arrivals, 0.0, 3.0) >= 0.5 * link  # slow start gets there in about a second
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


def test_slow_start_ends_when_the_rate_stops_rising_and_the_depth_falls_to_the_product() -> None:
    pipe = Pipeline(0.0)
    pipe.sent([(0, 0, BLOCK)], 0.0)
    pipe.arrived(0, 0, BLOCK, 0.5)  # half a second for the first block: 0.5 s delay
    assert pipe.slow_start and pipe.delay == pytest.approx(0.5)
    now = 0.5
    while now < 0.5 + STARTUP_PATIENCE + 0.5:  # then 40 blocks/s, steady
        now += 0.025
        pipe.arrived(1, 0, BLOCK, now)  # not asked (withdrawn earlier): no delay sample
    assert not pipe.slow_start
    rate_blocks = pipe.rate / BLOCK
    assert 35 <= rate_blocks <= 42
    expected = rate_blocks * pipe.delay + rate_blocks * 0.25 + MARGIN_BLOCKS
    assert pipe.depth(now) == int(expected)


def test_a_forgotten_request_gives_no_delay_sample() -> None:
    pipe = Pipeline(0.0)
    pipe.sent([(0, 0, BLOCK), (1, 0, BLOCK)], 0.0)
    pipe.forget([(1, 0, BLOCK)])  # withdrawn: the peer choked us
    pipe.arrived(0, 0, BLOCK, 0.01)
    pipe.arrived(1, 0, BLOCK, 3.0)  # it came long after all the same
    assert pipe.delay <= 0.01  # the first block's 10 ms, decaying; not the late one's 3 s


def test_rate_and_delay_decay_when_the_peer_slows_down() -> None:
    pipe = Pipeline(0.0)
    pipe.sent([(i, 0, BLOCK) for i in range(200)], 0.0)
    for i in range(200):  # 400 blocks/s for half a second after a 0.2 s wait
        pipe.arrived(i, 0, BLOCK, 0.2 + i / 400)
    deep = pipe.depth(0.7)
    assert deep > 100
    later = 0.7 + 2 * DELAY_HALF_LIFE
    assert pipe.depth(later) < deep / 4
