"""The peer store (BEP 5): expiry, the caps per info-hash and in all, random samples."""

from __future__ import annotations

import random

from swarm.dht.store import MAX_PEERS, PEER_TTL, REPLY_VALUES, PeerStore

H1, H2, H3 = b"1" * 20, b"2" * 20, b"3" * 20


def _peer(i: int) -> tuple[str, int]:
    return f"10.{i // 62500}.{i // 250 % 250}.{i % 250 + 1}", 6881


def test_peers_expire_thirty_minutes_after_their_last_announce() -> None:
    rng = random.Random(1)
    store = PeerStore()
    store.announce(H1, _peer(1), 0.0)
    store.announce(H1, _peer(2), 600.0)
    assert sorted(store.get(H1, PEER_TTL - 1, rng)) == [_peer(1), _peer(2)]
    assert store.get(H1, PEER_TTL, rng) == [_peer(2)]
    store.announce(H1, _peer(2), 1500.0)  # announced again: good for 30 minutes more
    assert store.get(H1, 1500.0 + PEER_TTL - 1, rng) == [_peer(2)]
    assert store.get(H1, 1500.0 + PEER_TTL, rng) == []
    assert len(store) == 0 and store.peer_count() == 0


def test_a_torrent_keeps_its_newest_peers_up_to_the_cap() -> None:
    rng = random.Random(2)
    store = PeerStore()
    for i in range(MAX_PEERS + 50):
        store.announce(H1, _peer(i), float(i))
    assert store.peer_count() == MAX_PEERS  # the 50 oldest are gone
    store.announce(H1, _peer(60), 1000.0)  # re-announced: now among the newest
    for i in range(1000, 1011):
        store.announce(H1, _peer(i), 1001.0)
    kept = set(store.get(H1, 1001.0, rng, n=10_000))
    newest = [*range(62, MAX_PEERS + 50), 60, *range(1000, 1011)]
    assert kept == {_peer(i) for i in newest}


def test_the_least_recently_announced_torrent_goes_first() -> None:
    rng = random.Random(3)
    store = PeerStore(max_torrents=2)
    store.announce(H1, _peer(1), 0.0)
    store.announce(H2, _peer(2), 1.0)
    store.announce(H1, _peer(3), 2.0)  # H1 is the fresher now
    store.announce(H3, _peer(4), 3.0)
    assert len(store) == 2
    assert store.get(H2, 3.0, rng) == []
    assert sorted(store.get(H1, 3.0, rng)) == [_peer(1), _peer(3)]
    assert store.get(H3, 3.0, rng) == [_peer(4)]


def test_get_gives_a_random_sample_that_fits_an_answer() -> None:
    store = PeerStore()
    for i in range(MAX_PEERS):
        store.announce(H1, _peer(i), 0.0)
    a = store.get(H1, 1.0, random.Random(4))
    b = store.get(H1, 1.0, random.Random(5))
    assert len(a) == len(set(a)) == REPLY_VALUES
    assert set(a) != set(b)
    assert set(a) <= {_peer(i) for i in range(MAX_PEERS)}
    assert len(store.get(H1, 1.0, random.Random(6), n=3)) == 3


def test_memory_is_bounded_whatever_is_announced() -> None:
    store = PeerStore(max_torrents=50, max_peers=20)
    rng = random.Random(7)
    for i in range(20_000):
        store.announce(rng.randbytes(20) if i % 2 else H1, _peer(i), i / 100)
    assert len(store) == 50
    assert store.peer_count() <= 50 * 20
