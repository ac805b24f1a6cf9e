"""The token bucket behind every upload and download cap (swarm/ratelimit.py): a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from swarm.ratelimit import RateLimiter, TokenBucket

RATE = 1 << 20  # 1 MiB/s
BLOCK = 16 * 1024


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def send_for(bucket: TokenBucket, clock: Clock, seconds: float, step: float) -> int:
    """A sender that wakes every *step* seconds and sends blocks while the bucket lets it
    go on at once; the bytes it sent in *seconds*."""
    sent = 0
    end = clock.now + seconds
    while clock.now < end:
        while bucket.consume(BLOCK) == 0.0:
            sent += BLOCK
        bucket.consume(-BLOCK)  # that one was not sent: give its tokens back
        clock.now += step
    return sent


def test_the_bucket_starts_empty_so_no_run_sends_more_than_the_rate_times_its_time() -> None:
    clock = Clock()
    bucket = TokenBucket(RATE, clock=clock)
    assert bucket.consume(BLOCK) > 0  # nothing saved up at the start
    for step in (0.001, 0.05, 0.2, 0.5):
        clock.now = 0.0
        bucket = TokenBucket(RATE, clock=clock)
        sent = send_for(bucket, clock, 4.0, step)
        assert sent <= RATE * clock.now


def test_a_sender_that_wakes_late_catches_up_within_a_quarter_second() -> None:
    """A loop that runs 200 ms late (a busy CPU) still sends at the rate: the burst holds what
    the rate earned meanwhile (with 20 ms of burst it sent a tenth of the rate)."""
    clock = Clock()
    bucket = TokenBucket(RATE, clock=clock)
    sent = send_for(bucket, clock, 4.0, 0.2)
    assert sent >= 0.9 * RATE * 4.0


def test_debt_makes_the_wait_and_an_idle_bucket_saves_only_its_small_burst() -> None:
    clock = Clock()
    bucket = TokenBucket(RATE, clock=clock)
    assert bucket.consume(RATE // 2) == pytest.approx(0.5)  # half a second's worth: wait 0.5 s
    clock.now = 100.0  # idle a long time: 20 ms of credit, not a quarter second
    assert bucket.consume(RATE // 4) == pytest.approx(0.25 - 0.02)
    clock.now = 100.23 + 0.1  # back 0.1 s after the debt was paid: late, it keeps that
    assert bucket.consume(RATE // 10) == 0.0


def test_a_bucket_made_long_before_its_first_use_has_saved_nothing() -> None:
    """A server's or a seed's limit, made before the experiment's 'go': no head start."""
    clock = Clock()
    bucket = TokenBucket(RATE, clock=clock)
    clock.now = 30.0
    assert bucket.consume(RATE // 4) == pytest.approx(0.25)


def test_a_small_rate_still_lets_a_whole_block_through_in_one_go() -> None:
    clock = Clock()
    bucket = TokenBucket(1000, clock=clock)  # 1 kB/s: its 20 ms are under a block
    bucket.consume(0)
    clock.now = 60.0
    assert bucket.consume(BLOCK + 13) == 0.0


def test_the_limiter_is_unlimited_without_a_rate_and_shared_in_turn_with_one() -> None:
    assert RateLimiter(None).unlimited and RateLimiter(None).reserve(BLOCK) == 0.0
    clock = Clock()
    shared = RateLimiter(RATE, clock=clock)
    waits = [shared.reserve(RATE // 4) for _ in range(4)]
    # four callers in turn: each waits for the debt of those before it and its own
    assert waits == pytest.approx([0.25, 0.5, 0.75, 1.0])
    with pytest.raises(ValueError):
        TokenBucket(0)


def test_a_refund_pays_off_debt_so_the_next_caller_goes_sooner_but_saves_nothing() -> None:
    clock = Clock()
    shared = RateLimiter(RATE, clock=clock)
    first = shared.reserve(RATE // 4)  # a choked peer's batch, waiting its turn
    second = shared.reserve(RATE // 4)
    assert (first, second) == pytest.approx((0.25, 0.5))
    shared.refund(RATE // 4)  # the first was withdrawn: the next one is not held for it
    assert shared.reserve(RATE // 4) == pytest.approx(0.5)  # not 0.75
    clock.now = 10.0  # all paid: a refund now saves no credit
    shared.refund(RATE)
    assert shared.reserve(RATE // 2) == pytest.approx(0.5 - 0.02)


async def _batch(limiter: RateLimiter, rank: int, order: list[int]) -> None:
    """An uploader's batch of a piece of *rank*: noted in *order* when it may go."""
    await limiter.acquire(BLOCK, rank)
    order.append(rank)


def test_acquire_serves_the_lowest_rank_first_once_out_of_debt() -> None:
    """An uploader's batches wait for the shared rate and the rarest piece goes first: asked in
    turn, a new piece waited behind every other peer's batch at each hop of its spread."""

    async def main() -> list[int]:
        limiter = RateLimiter(1 << 20)  # the real clock: 16 KiB is 15.6 ms of it
        order: list[int] = []
        await limiter.acquire(4 * BLOCK, 0)  # the bucket in debt for ~60 ms
        async with asyncio.timeout(2):
            await asyncio.gather(*(_batch(limiter, r, order) for r in (5, 3, 9, 1)))
        return order

    assert asyncio.run(main()) == [1, 3, 5, 9]


def test_acquire_lets_a_common_piece_wait_behind_rarer_ones_for_a_while_only() -> None:
    async def main() -> list[int]:
        limiter = RateLimiter(1 << 20)
        order: list[int] = []
        await limiter.acquire(64 * BLOCK, 0)  # the bucket in debt for ~1 s: all three wait
        async with asyncio.timeout(5):
            common = asyncio.create_task(_batch(limiter, 20, order))
            await asyncio.sleep(0.2)  # waited 0.2 s or more: as good as rank 18 (or less) now
            await asyncio.gather(common, _batch(limiter, 19, order), _batch(limiter, 15, order))
        return order

    # 15 is still rarer than the common piece unless the sleep overran by 0.3 s; 19 is not
    assert asyncio.run(main()) == [15, 20, 19]


def test_acquire_skips_a_caller_that_gave_up_and_is_free_without_a_rate() -> None:
    async def main() -> None:
        limiter = RateLimiter(1 << 20)
        await limiter.acquire(4 * BLOCK, 0)
        gone = asyncio.create_task(limiter.acquire(BLOCK, 0))
        await asyncio.sleep(0)
        gone.cancel()
        async with asyncio.timeout(2):
            await limiter.acquire(BLOCK, 1)  # served, the cancelled one taking nothing
        async with asyncio.timeout(0.01):
            await RateLimiter(None).acquire(BLOCK, 0)

    asyncio.run(main())
