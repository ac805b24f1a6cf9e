"""The announce loop without sockets: fake trackers, a fake clock and a sleep the test releases.

Every step waits on the announcer with a time-out; nothing sleeps to wait for a condition.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import asynccontextmanager

import bencodepy
import pytest
from scripted_http import serve

from swarm import announcer as announcer_module
from swarm.announce import AnnounceRequest, AnnounceResponse, Peer, announce_once
from swarm.announcer import AnnounceOnce, Announcer, TierList, backoff, next_wait
from swarm.errors import TrackerError, TrackerURLError
from tracker import codec

IH = bytes(range(20))
PID = b"-SW0001-" + b"p" * 12
STEP = 5.0  # seconds any one step may take before the test fails

Outcome = AnnounceResponse | TrackerError | asyncio.Future[AnnounceResponse]


def ok(
    interval: int = 1800, min_interval: int | None = None, peers: list[Peer] | None = None
) -> AnnounceResponse:
    return AnnounceResponse(interval=interval, min_interval=min_interval, peers=peers or [])


def down(url: str) -> TrackerError:
    return TrackerError(f"no answer from {url}")


def run(coro: Awaitable[None]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(30):
            await coro

    asyncio.run(bounded())


class FakeTrackers:
    """Each URL answers with its next scripted outcome (its last one once the script ends)."""

    def __init__(self, script: dict[str, list[Outcome]]) -> None:
        self.script = script
        self.calls: list[tuple[str, str, int]] = []  # (url, event, left)
        self.tracker_ids: list[bytes | None] = []  # the tracker id sent with each call
        self.called = asyncio.Event()

    async def __call__(
        self, url: str, req: AnnounceRequest, tracker_id: bytes | None = None
    ) -> AnnounceResponse:
        self.calls.append((url, req.event, req.left))
        self.tracker_ids.append(tracker_id)
        self.called.set()
        outcomes = self.script[url]
        outcome = outcomes.pop(0) if len(outcomes) > 1 else outcomes[0]
        if isinstance(outcome, asyncio.Future):
            return await outcome
        if isinstance(outcome, TrackerError):
            raise outcome
        return outcome

    def events(self) -> list[str]:
        return [event for _, event, _ in self.calls]

    def urls(self) -> list[str]:
        return [url for url, _, _ in self.calls]


class FakeTime:
    """A clock that moves only when a sleep the test released ends."""

    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeping: asyncio.Queue[tuple[float, asyncio.Future[None]]] = asyncio.Queue()

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        gate: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.sleeping.put_nowait((seconds, gate))
        await gate
        self.now += seconds


class Rig:
    def __init__(
        self,
        tiers: Sequence[Sequence[str]],
        script: dict[str, list[Outcome]],
        *,
        complete: bool = False,
        want_peers_soon: bool = False,
        announce_once: AnnounceOnce | None = None,
    ) -> None:
        self.time = FakeTime()
        self.trackers = FakeTrackers(script)
        self.peers: list[Peer] = []
        self.left = 0 if complete else 1000
        self.want_peers_soon = want_peers_soon
        self.announcer = Announcer(
            tiers,
            request=self.request,
            on_peers=self.peers.extend,
            want_peers_soon=lambda: self.want_peers_soon,
            rng=random.Random(7),
            complete=lambda: complete,
            announce_once=announce_once or self.trackers,
            clock=self.time.clock,
            sleep=self.time.sleep,
        )

    def request(self, event: str) -> AnnounceRequest:
        return AnnounceRequest(IH, PID, 6881, left=self.left, event=event)

    async def sleep_started(self) -> tuple[float, asyncio.Future[None]]:
        """The next sleep the loop begins: (its seconds, the gate that ends it)."""
        async with asyncio.timeout(STEP):
            return await self.time.sleeping.get()

    async def slept(self) -> float:
        """Wait for the loop to sleep, let the sleep run out, and say how long it was."""
        seconds, gate = await self.sleep_started()
        gate.set_result(None)
        return seconds

    async def call(self, n: int) -> tuple[str, str]:
        """The loop's *n*-th announce (from 1), once it is made: (url, event)."""
        async with asyncio.timeout(STEP):
            while len(self.trackers.calls) < n:
                self.trackers.called.clear()
                await self.trackers.called.wait()
        url, event, _ = self.trackers.calls[n - 1]
        return url, event

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        task = asyncio.create_task(self.announcer.run())
        try:
            yield
        finally:
            task.cancel()
            async with asyncio.timeout(STEP):
                with pytest.raises(asyncio.CancelledError):
                    await task


def scenario(test: Callable[[], Awaitable[None]]) -> Callable[[], None]:
    def wrapper() -> None:
        run(test())

    wrapper.__name__ = test.__name__
    return wrapper


# -- pure parts -------------------------------------------------------------------------------


def test_backoff_doubles_from_5_to_300_seconds() -> None:
    assert [backoff(n) for n in range(1, 10)] == [5, 10, 20, 40, 80, 160, 300, 300, 300]
    assert backoff(10_000) == 300  # days of failure do not overflow


@pytest.mark.parametrize(
    ("resp", "soon", "wait"),
    [
        (ok(1800), False, 1800),
        (ok(1800), True, 30),  # incomplete and few peers: ask again sooner
        (ok(20), True, 20),
        (ok(1800, min_interval=60), True, 60),  # never under the tracker's min interval
        (ok(1), False, 5),  # nor under 5 s
        (ok(2, min_interval=3), True, 5),
    ],
)
def test_next_wait(resp: AnnounceResponse, soon: bool, wait: float) -> None:
    assert next_wait(resp, soon) == wait


def test_tier_list_shuffles_within_tiers_and_promotes() -> None:
    tiers = TierList([["a1", "a2", "a3"], [], ["b1"]], rng=random.Random(1))
    assert sorted(tiers.tiers[0]) == ["a1", "a2", "a3"] and tiers.tiers[1] == ["b1"]
    first, second, third = tiers.tiers[0]
    assert tiers.urls() == [(0, 0, first), (0, 1, second), (0, 2, third), (1, 0, "b1")]
    tiers.promote(0, 2)
    assert tiers.tiers[0] == [third, first, second]


# -- the loop -----------------------------------------------------------------------------


@scenario
async def test_started_then_regular_announces_at_the_interval() -> None:
    rig = Rig([["http://t/a"]], {"http://t/a": [ok(900, peers=[("10.0.0.1", 1)])]})
    async with rig.running():
        assert await rig.slept() == 900
        assert await rig.slept() == 900
        seconds, _ = await rig.sleep_started()
        assert rig.announcer.next_announce == rig.time.now + seconds == 1000 + 3 * 900
    assert rig.trackers.events() == ["started", "", ""]
    assert rig.peers == [("10.0.0.1", 1)] * 3
    assert {left for _, _, left in rig.trackers.calls} == {1000}


@scenario
async def test_few_peers_while_incomplete_means_announces_at_most_30_s_apart() -> None:
    rig = Rig([["http://t/a"]], {"http://t/a": [ok(1800, min_interval=10)]}, want_peers_soon=True)
    async with rig.running():
        assert await rig.slept() == 30
        rig.want_peers_soon = False  # enough peers now
        assert await rig.slept() == 1800


@scenario
async def test_completed_is_announced_at_once_and_once() -> None:
    rig = Rig([["http://t/a"]], {"http://t/a": [ok(1800)]})
    async with rig.running():
        await rig.sleep_started()  # after 'started', sleeping 1800 s
        rig.announcer.completed()
        assert await rig.call(2) == ("http://t/a", "completed")  # no sleep released
        rig.announcer.completed()  # said twice: still one 'completed'
        assert await rig.slept() == 1800
        await rig.sleep_started()
    assert rig.trackers.events() == ["started", "completed", ""]
    assert rig.time.now == 1000 + 1800  # the first sleep was cut short


@scenario
async def test_completed_during_an_announce_follows_it_without_a_wait() -> None:
    loop = asyncio.get_running_loop()
    answer: asyncio.Future[AnnounceResponse] = loop.create_future()
    rig = Rig([["http://t/a"]], {"http://t/a": [answer, ok(1800)]})
    async with rig.running():
        assert await rig.call(1) == ("http://t/a", "started")
        rig.announcer.completed()  # while 'started' is in flight
        answer.set_result(ok(1800))
        assert await rig.call(2) == ("http://t/a", "completed")
        await rig.sleep_started()
    assert rig.time.now == 1000  # no sleep between the two


@scenario
async def test_complete_from_the_start_announces_started_and_never_completed() -> None:
    rig = Rig([["http://t/a"]], {"http://t/a": [ok(600)]}, complete=True)
    rig.announcer.completed()  # what the controller does when it opens a complete torrent
    async with rig.running():
        assert await rig.slept() == 600
        assert await rig.slept() == 600
        await rig.sleep_started()
    assert rig.trackers.events() == ["started", "", ""]
    assert {left for _, _, left in rig.trackers.calls} == {0}


@scenario
async def test_failures_back_off_and_retry_the_same_event() -> None:
    url = "udp://t:1"
    script: list[Outcome] = [down(url)] * 8
    rig = Rig([[url]], {url: [*script, ok(1800), down(url)]})
    async with rig.running():
        assert [await rig.slept() for _ in range(8)] == [5, 10, 20, 40, 80, 160, 300, 300]
        assert rig.announcer.fails == 8
        assert await rig.slept() == 1800  # an answer resets the back-off
        assert rig.announcer.fails == 0
        assert (await rig.sleep_started())[0] == 5  # the next failure starts over at 5 s
    assert rig.trackers.events() == ["started"] * 9 + [""]


@scenario
async def test_completed_during_a_backoff_is_announced_at_once() -> None:
    url = "http://t/a"
    rig = Rig([[url]], {url: [ok(1800), down(url), ok(1800)]})
    async with rig.running():
        await rig.slept()  # after 'started'
        seconds, _ = await rig.sleep_started()  # the regular announce failed: back off
        assert seconds == 5
        rig.announcer.completed()
        assert await rig.call(3) == (url, "completed")
    assert rig.trackers.events() == ["started", "", "completed"]


@scenario
async def test_completed_during_a_failing_announce_waits_out_the_backoff() -> None:
    url = "http://t/a"
    answer: asyncio.Future[AnnounceResponse] = asyncio.get_running_loop().create_future()
    rig = Rig([[url]], {url: [ok(1800), answer, ok(1800)]})
    async with rig.running():
        await rig.slept()  # after 'started'
        assert await rig.call(2) == (url, "")
        rig.announcer.completed()
        answer.set_exception(down(url))
        assert await rig.slept() == 5  # not at once: the tracker just failed
        assert await rig.call(3) == (url, "completed")
        await rig.sleep_started()
    assert rig.trackers.events() == ["started", "", "completed"]


@scenario
async def test_tiers_fail_over_in_order_and_the_first_tier_is_tried_first_again() -> None:
    a, b, c = "http://a/announce", "udp://b:1", "http://c/announce"
    rig = Rig([[a], [b], [c]], {a: [down(a)], b: [down(b), ok(1800)], c: [ok(1800)]})
    async with rig.running():
        await rig.slept()
        await rig.sleep_started()
    # started: a, b fail, c answers; then a fails again and b answers.
    assert rig.trackers.urls() == [a, b, c, a, b]
    assert rig.trackers.events() == ["started"] * 3 + ["", ""]
    assert rig.announcer.last_url == b


@scenario
async def test_a_url_that_answers_moves_to_the_front_of_its_tier() -> None:
    x, y = "http://x/a", "http://y/a"
    rig = Rig([[x, y]], {x: [down(x)], y: [down(y)]})
    first, second = rig.announcer.tiers.tiers[0]
    rig.trackers.script[second] = [ok(1800)]
    async with rig.running():
        await rig.slept()
        await rig.sleep_started()
    assert rig.announcer.tiers.tiers[0] == [second, first]
    assert rig.trackers.urls() == [first, second, second]


@scenario
async def test_all_trackers_failing_is_one_failure_per_round() -> None:
    a, b = "http://a/announce", "http://b/announce"
    rig = Rig([[a], [b]], {a: [down(a)], b: [down(b)]})
    async with rig.running():
        assert await rig.slept() == 5
        assert await rig.slept() == 10
        await rig.sleep_started()
    assert rig.trackers.urls() == [a, b] * 3


@scenario
async def test_stopped_goes_to_the_tracker_that_answered_last() -> None:
    a, b = "http://a/announce", "http://b/announce"
    rig = Rig([[a], [b]], {a: [down(a)], b: [ok(1800)]})
    async with rig.running():
        await rig.sleep_started()
    await rig.announcer.stop()
    assert rig.trackers.calls[-1] == (b, "stopped", 1000)


@scenario
async def test_a_tracker_id_is_sent_back_to_the_tracker_that_gave_it() -> None:
    a, b = "http://a/announce", "http://b/announce"
    given = AnnounceResponse(interval=900, min_interval=None, peers=[], tracker_id=b"t-7")
    rig = Rig([[a], [b]], {a: [given, ok(900)], b: [ok(900)]})
    async with rig.running():
        await rig.slept()
        await rig.slept()
    await rig.announcer.stop()
    # BEP 3: the first announce has none; after the tracker gave one, every announce to that
    # tracker carries it (the regular ones and the stopped one).
    assert rig.trackers.urls()[:3] == [a, a, a] and rig.trackers.events()[-1] == "stopped"
    assert rig.trackers.tracker_ids[0] is None
    assert set(rig.trackers.tracker_ids[1:]) == {b"t-7"}
    assert rig.announcer.tracker_ids == {a: b"t-7"}


@scenario
async def test_no_stopped_unless_an_announce_succeeded() -> None:
    a = "http://a/announce"
    never = Rig([[a]], {a: [ok(1800)]})
    await never.announcer.stop()  # never ran
    failed = Rig([[a]], {a: [down(a)]})
    async with failed.running():
        await failed.sleep_started()
    await never.announcer.stop()
    await failed.announcer.stop()
    assert never.trackers.calls == []
    assert failed.trackers.events() == ["started"]


@scenario
async def test_stopped_is_bounded_in_time_and_its_failure_is_quiet() -> None:
    a = "http://a/announce"
    hang: asyncio.Future[AnnounceResponse] = asyncio.get_running_loop().create_future()
    rig = Rig([[a]], {a: [ok(1800), hang]})
    async with rig.running():
        await rig.sleep_started()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(announcer_module, "STOP_TIMEOUT", 0.05)
        async with asyncio.timeout(STEP):
            await rig.announcer.stop()  # the tracker never answers: given up, no error
    assert hang.cancelled()
    rig.trackers.script[a] = [down(a)]
    await rig.announcer.stop()  # a refusal is not an error either
    assert rig.trackers.events() == ["started", "stopped", "stopped"]


@scenario
async def test_no_trackers_ends_the_loop_at_once() -> None:
    rig = Rig([], {})
    assert not rig.announcer.usable
    async with asyncio.timeout(STEP):
        await rig.announcer.run()  # nothing to try: it returns rather than backing off
    assert rig.trackers.calls == []


@scenario
async def test_an_unusable_url_is_named_once_and_skipped_then_the_loop_ends() -> None:
    bad, good = "ftp://x/announce", "http://t/announce"
    rig = Rig([[bad], [good]], {bad: [TrackerURLError("unsupported")], good: [ok()]})
    async with rig.running():
        assert await rig.call(2) == (good, "started")
        await rig.slept()
        assert await rig.call(3) == (good, "")
    assert rig.trackers.urls().count(bad) == 1 and rig.announcer.usable
    rig2 = Rig([[bad]], {bad: [TrackerURLError("unsupported")]})
    async with asyncio.timeout(STEP):
        await rig2.announcer.run()  # its only URL is unusable: the loop ends
    assert rig2.trackers.urls() == [bad] and not rig2.announcer.usable


@scenario
async def test_the_default_announce_over_http_to_a_real_server() -> None:
    events: list[bytes] = []
    answer = bencodepy.encode(
        {b"interval": 900, b"peers": codec.pack_peer("10.0.0.3", 9), b"tracker id": b"x y"}
    )
    ids: list[bytes | None] = []

    async def tracker(head: bytes, writer: asyncio.StreamWriter) -> None:
        query = head.split(b" ")[1].partition(b"?")[2]
        params = dict(p.split(b"=", 1) for p in query.split(b"&"))
        events.append(params.get(b"event", b""))
        ids.append(params.get(b"trackerid"))
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(answer), answer))

    async with serve(tracker) as server:
        rig = Rig([[server.url("/announce")]], {}, announce_once=announce_once)
        async with rig.running():
            assert await rig.slept() == 900
            await rig.sleep_started()
        await rig.announcer.stop()
    assert events == [b"started", b"", b"stopped"]
    assert ids == [None, b"x%20y", b"x%20y"]  # sent back, percent-encoded
    assert rig.peers == [("10.0.0.3", 9)] * 2
