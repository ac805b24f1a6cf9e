"""Tracker state as pure logic: announce semantics, expiry with an injected clock, limits."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker import protocol
from tracker.errors import RequestError
from tracker.state import Announce, Limits, TrackerState

H1, H2 = b"\x01" * 20, b"\x02" * 20


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def ann(peer: int, left: int = 100, event: str = "", h: bytes = H1, numwant: int = 50) -> Announce:
    return Announce(
        h, bytes([peer]) * 20, "127.0.0.1", 6000 + peer, left=left, event=event, numwant=numwant
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def state(clock: Clock) -> TrackerState:
    return TrackerState(interval=60, clock=clock, rng=random.Random(1))


def test_peers_never_get_themselves_and_a_seed_seen_finishing_gets_no_seeds(
    state: TrackerState,
) -> None:
    state.announce(ann(1, event="started"))
    state.announce(ann(1, left=0, event="completed"))
    state.announce(ann(2, event="started"))
    state.announce(ann(2, left=0))  # finished, its `completed` lost: left fell to 0
    r = state.announce(ann(3, event="started"))
    assert {p.port for p in r.peers} == {6001, 6002}
    assert (r.complete, r.incomplete) == (2, 1)
    for peer in (1, 2):
        r = state.announce(ann(peer, left=0))
        assert {p.port for p in r.peers} == {6003}  # the leecher, not the other seed


def test_a_left_0_starter_gets_seeds_too_as_a_magnet_client_needs_them(
    state: TrackerState,
) -> None:
    # aria2 by magnet announces started with left=0 before it has the metadata: it must
    # be given the seed, or it never fetches the info dictionary from anyone
    state.announce(ann(1, left=0, event="started"))  # the seed
    r = state.announce(ann(2, left=0, event="started"))  # the magnet client
    assert [p.port for p in r.peers] == [6001]
    r = state.announce(ann(2, left=0))  # and on its later announces while still left=0
    assert [p.port for p in r.peers] == [6001]
    r = state.announce(ann(1, left=0))  # and a seed that started with the data sees it
    assert [p.port for p in r.peers] == [6002]
    # both count as seeds, by their own word (BEP 3's `complete`, as opentracker counts)
    assert state.scrape([H1]) == {H1: (2, 0, 0)}
    # once it has the metadata it announces what it lacks, and is a leecher
    r = state.announce(ann(2, left=100))
    assert [p.port for p in r.peers] == [6001] and (r.complete, r.incomplete) == (1, 1)
    state.announce(ann(2, left=0, event="completed"))
    assert state.scrape([H1]) == {H1: (2, 1, 0)}
    assert state.announce(ann(2, left=0)).peers == []  # now a seed seen finishing


def test_a_real_seed_gets_leechers_in_a_big_swarm_on_either_path(state: TrackerState) -> None:
    for i in range(1, 101):
        state.announce(Announce(H1, i.to_bytes(20, "big"), "10.0.0.1", 1000 + i, left=0))
    for i in range(101, 111):
        state.announce(Announce(H1, i.to_bytes(20, "big"), "10.0.0.1", 1000 + i, left=5))
    seed = b"s" * 20
    state.announce(Announce(H1, seed, "10.0.0.1", 9, left=5, event="started"))
    done = Announce(H1, seed, "10.0.0.1", 9, left=0, event="completed", numwant=5)
    leechers = {1000 + i for i in range(101, 111)}
    for _ in range(20):
        r = state.announce(done)
        assert len(r.peers) == 5 and {p.port for p in r.peers} <= leechers
        c = state.announce_compact(done)
        ports = {int.from_bytes(c.peers[k + 4 : k + 6], "big") for k in range(0, 30, 6)}
        assert len(c.peers) == 30 and ports <= leechers
    # a left=0 starter among so many seeds gets a random draw of everyone
    magnet = Announce(H1, b"m" * 20, "10.0.0.2", 7, left=0, event="started", numwant=5)
    assert len(state.announce_compact(magnet).peers) == 30


def test_stopped_removes_and_completed_counts(state: TrackerState) -> None:
    state.announce(ann(1, event="started"))
    r = state.announce(ann(1, left=0, event="completed"))
    assert (r.complete, r.incomplete) == (1, 0)
    assert state.swarms[H1].completed == 1
    state.announce(ann(2, event="started"))
    state.announce(ann(2, event="stopped"))
    assert 2 not in {p.peer_id[0] for p in state.swarms[H1].peers.values()}
    assert state.scrape([H1]) == {H1: (1, 1, 0)}


def test_peers_expire_after_about_two_intervals(state: TrackerState, clock: Clock) -> None:
    state.announce(ann(1, event="started"))
    clock.now += 100
    state.announce(ann(2, event="started"))
    clock.now += 100  # peer 1 silent for 200 s > 2 * 60 + 60
    assert state.sweep() == 1
    assert [p.port for p in state.swarms[H1].peers.values()] == [6002]


def test_numwant_is_capped_and_sampled(state: TrackerState) -> None:
    for i in range(1, 251):
        state.announce(Announce(H1, i.to_bytes(20, "big"), "127.0.0.1", 1000 + i, left=1))
    r = state.announce(Announce(H1, b"\xff" * 20, "127.0.0.1", 9, left=1, numwant=1000))
    assert len(r.peers) == 200
    assert len(state.announce(ann(1, numwant=0)).peers) == 0


def test_a_small_swarm_comes_back_in_random_order(state: TrackerState) -> None:
    # Every peer of a small swarm is in each reply, and clients dial a reply's first peers
    # first: in the announcers' order, the earliest peers were dialled by everyone after them.
    firsts = []
    for i in range(1, 41):
        r = state.announce(ann(i, event="started"))
        assert {p.port for p in r.peers} == {6000 + j for j in range(1, i)}
        if i > 2:
            firsts.append(r.peers[0].port)
    assert firsts.count(6001) < 10
    assert len(set(firsts)) > 15


def test_limits_on_torrents_and_peers(clock: Clock) -> None:
    state = TrackerState(interval=60, clock=clock, limits=Limits(max_torrents=1, max_peers=2))
    state.announce(ann(1))
    with pytest.raises(RequestError, match="too many torrents"):
        state.announce(ann(1, h=H2))
    state.announce(ann(2))
    with pytest.raises(RequestError, match="too many peers"):
        state.announce(ann(3))


def test_allow_list(clock: Clock) -> None:
    state = TrackerState(interval=60, clock=clock, allow={H2})
    with pytest.raises(RequestError, match="not allowed"):
        state.announce(ann(1))
    assert state.announce(ann(1, h=H2)).incomplete == 1


def test_stats_and_rate(state: TrackerState, clock: Clock) -> None:
    for i in range(1, 21):
        state.announce(ann(i))
    clock.now += 1
    st = state.stats()
    assert st["torrents"] == 1 and st["leechers"] == 20 and st["announces"] == 20
    assert st["announces_per_second"] == 2.0


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 40),  # peer
            st.sampled_from(["10.0.0.1", "10.0.0.2", "::1", "bad address"]),
            st.integers(1, 3),  # port
            st.sampled_from([0, 5]),  # left
            st.sampled_from(["", "started", "stopped", "completed"]),
            st.integers(0, 60),  # numwant
        ),
        max_size=120,
    )
)
def test_compact_announces_give_the_same_peers_as_announce(
    steps: list[tuple[int, str, int, int, str, int]],
) -> None:
    # two states fed the same announces with the same random draws: one answers with
    # entries, the other in compact form; the peers must be the same ones, in order
    plain = TrackerState(interval=60, clock=lambda: 5.0, rng=random.Random(7))
    fast = TrackerState(interval=60, clock=lambda: 5.0, rng=random.Random(7))
    for peer, ip, port, left, event, numwant in steps:
        a = Announce(H1, bytes([peer]) * 20, ip, port, left=left, event=event, numwant=numwant)
        r = plain.announce(a)
        c = fast.announce_compact(a)
        v4, v6 = protocol.compact_peers(r)
        assert (c.peers, c.peers6) == (v4, v6)
        assert (c.complete, c.incomplete) == (r.complete, r.incomplete)
    assert plain.stats() == fast.stats()
    for s in fast.swarms.values():
        assert s.compacts == [p.compact for p in s.order]
        assert s.v6 == sum(len(p.compact) == 18 for p in s.order)
