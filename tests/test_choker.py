"""The choker as pure logic, with fake peers."""

from __future__ import annotations

import random

from swarm import wire
from swarm.choker import Choker, PeerInfo, choke_round, unchoke_if_free, unchoke_waiting
from swarm.peer_state import PeerState, Torrent


def peer(
    key: str,
    down: float = 0,
    up: float = 0,
    interested: bool = True,
    age: float = 300,
    seed: bool = False,
) -> PeerInfo:
    return PeerInfo(key, interested, down, up, age, seed)


def test_best_uploaders_to_us_are_unchoked_plus_one_optimistic() -> None:
    c = Choker(slots=2, rng=random.Random(1))
    peers = [
        peer("a", down=10),
        peer("b", down=50),
        peer("c", down=30),
        peer("d", down=1),
        peer("e", down=0),
    ]
    unchoked = c.rechoke(peers, am_seed=False)
    assert {"b", "c"} <= unchoked
    assert len(unchoked) == 3
    assert c.optimistic in {"a", "d", "e"}


def test_uninterested_peers_and_seeds_stay_choked() -> None:
    c = Choker(slots=4, rng=random.Random(1))
    peers = [peer("a", down=99, interested=False), peer("b", down=5, seed=True), peer("c", down=1)]
    assert c.rechoke(peers, am_seed=False) == {"c"}


def test_seed_prefers_peers_it_uploads_to_fastest() -> None:
    c = Choker(slots=1, rng=random.Random(1))
    peers = [peer("a", up=5), peer("b", up=500), peer("c", up=50)]
    unchoked = c.rechoke(peers, am_seed=True)
    assert "b" in unchoked and len(unchoked) == 2


def test_optimistic_unchoke_rotates_every_third_round() -> None:
    c = Choker(slots=1, rng=random.Random(3))
    peers = [peer("top", down=100)] + [peer(f"p{i}") for i in range(20)]
    seen = []
    for _ in range(9):
        c.rechoke(peers, am_seed=False)
        seen.append(c.optimistic)
    assert seen[0] == seen[1] == seen[2]
    assert len(set(seen)) > 1


def test_new_peers_are_favoured_for_the_optimistic_slot() -> None:
    c = Choker(slots=0, rng=random.Random(5))
    peers = [peer("new", age=5)] + [peer(f"old{i}", age=600) for i in range(3)]
    picks = []
    for _ in range(300):
        c._round = 0
        c.rechoke(peers, am_seed=False)
        picks.append(c.optimistic)
    share = picks.count("new") / len(picks)
    assert 0.35 < share < 0.65  # weight 3 of 6


def test_free_slot_between_rounds() -> None:
    c = Choker(slots=4)
    assert c.has_free_slot(4)
    assert not c.has_free_slot(5)


class _State:
    def __init__(self, interested: bool, seed: bool = False) -> None:
        self.peer_interested = interested
        self.am_choking = True
        self.connected_at = 0.0
        self.waiting_since = 0.0
        self.peer_is_seed = seed


class _Conn:
    """A connection as choke_round sees it, recording the verbs."""

    def __init__(self, rate: float, interested: bool = True, seed: bool = False) -> None:
        self.state = _State(interested, seed)
        self.download_rate = rate
        self.upload_rate = 0.0

    def choke(self) -> None:
        self.state.am_choking = True

    def unchoke(self) -> None:
        self.state.am_choking = False


def test_choke_round_unchokes_the_best_uploaders_and_one_optimistic() -> None:
    conns = [_Conn(rate=float(r)) for r in range(8)] + [_Conn(99.0, seed=True)]
    choke_round(Choker(slots=4, rng=random.Random(3)), conns, am_seed=False, now=100.0)
    unchoked = [c for c in conns if not c.state.am_choking]
    assert len(unchoked) == 5
    assert {c.download_rate for c in unchoked} >= {7.0, 6.0, 5.0, 4.0}
    assert conns[-1].state.am_choking  # a seed wants nothing from us


def test_unchoke_if_free_fills_a_free_slot_between_rounds() -> None:
    choker = Choker(slots=1)
    a, b, c = _Conn(1.0), _Conn(1.0), _Conn(1.0)
    unchoke_if_free(choker, a, [a, b, c])
    unchoke_if_free(choker, b, [a, b, c])  # slots + the optimistic one
    unchoke_if_free(choker, c, [a, b, c])
    assert [x.state.am_choking for x in (a, b, c)] == [False, False, True]


def test_a_slot_freed_between_rounds_goes_to_a_waiting_peer_at_once() -> None:
    choker = Choker(slots=1, rng=random.Random(5))
    a, b, c, seed = _Conn(1.0), _Conn(1.0), _Conn(1.0), _Conn(1.0, seed=True)
    peers = [a, b, c, seed]
    for p in (a, b):
        unchoke_if_free(choker, p, peers)  # the slot and the optimistic one
    assert c.state.am_choking
    unchoke_waiting(choker, peers, now=10.0)  # nothing came free: c still waits
    assert c.state.am_choking
    a.state.peer_interested = False  # a lost interest: its slot is c's now
    unchoke_waiting(choker, peers, now=10.0)
    assert not c.state.am_choking
    assert seed.state.am_choking  # a seed wants nothing: never given a slot
    b.state.peer_interested = False
    unchoke_waiting(choker, peers, now=10.0)  # a free slot, nobody interested waiting
    assert seed.state.am_choking


def test_a_freed_slot_goes_to_the_peer_that_has_waited_longest() -> None:
    choker = Choker(slots=1, rng=random.Random(5))
    a, b = _Conn(1.0), _Conn(1.0)
    waiters = [_Conn(1.0) for _ in range(6)]
    for i, w in enumerate(waiters):
        w.state.waiting_since = 5.0 - i  # the last one has waited longest
    peers = [a, b, *waiters]
    for p in (a, b):
        unchoke_if_free(choker, p, peers)
    a.state.peer_interested = False
    unchoke_waiting(choker, peers, now=10.0)
    assert [w.state.am_choking for w in waiters] == [True] * 5 + [False]
    b.state.peer_interested = False
    unchoke_waiting(choker, peers, now=10.0)
    assert [w.state.am_choking for w in waiters] == [True] * 4 + [False, False]


def test_a_peer_waits_from_its_interest_or_our_choke_whichever_is_later() -> None:
    ih = b"\x01" * 20
    s = PeerState(b"-SW0100-ourselves000", info_hash=ih, now=1.0)
    s.receive(wire.Handshake(wire.make_reserved(), ih, b"p" * 20).encode(), 1.0)
    s.attach(Torrent(ih, 4, 16384, 4 * 16384, [True] * 4))
    s.receive(wire.encode(wire.INTERESTED), 3.0)
    assert s.waiting_since == 3.0
    s.unchoke()
    s.receive(wire.encode(wire.INTERESTED), 4.0)  # no change: interested already
    assert s.waiting_since == 3.0
    s.choke(7.0)
    assert s.waiting_since == 7.0


def test_a_spreading_seed_unchokes_every_interested_peer_then_returns_to_its_slots() -> None:
    """A capped seed in initial seeding sends each piece once, whole: more unchoked peers
    split no piece and spread the new pieces over more of the swarm."""
    spreading = True
    choker = Choker(slots=1, rng=random.Random(2), spreading=lambda: spreading)
    conns = [_Conn(1.0) for _ in range(6)] + [_Conn(1.0, interested=False)]
    for c in conns:
        unchoke_if_free(choker, c, conns)
    assert [c.state.am_choking for c in conns] == [False] * 6 + [True]
    infos = [peer(f"p{i}", up=i) for i in range(6)] + [peer("x", interested=False)]
    assert choker.rechoke(infos, am_seed=True) == {f"p{i}" for i in range(6)}
    spreading = False  # every piece has gone out once: the slots again
    assert len(choker.rechoke(infos, am_seed=True)) == 2
    late = _Conn(1.0)
    unchoke_if_free(choker, late, [*conns, late])
    assert late.state.am_choking
