"""The routing table (BEP 5): splits on our own range only, node states, replacement of bad
nodes from the cache, refresh ids, closest, caps."""

from __future__ import annotations

import random

from swarm.dht.routing import (
    GOOD_FOR,
    REFRESH_AFTER,
    REPLACEMENTS,
    K,
    RoutingTable,
    distance,
)

OWN = bytes(20)


def _id(prefix: str, rng: random.Random) -> bytes:
    """A random id that starts with the bits *prefix*."""
    rest = 160 - len(prefix)
    value = (int(prefix, 2) << rest if prefix else 0) | rng.getrandbits(rest)
    return value.to_bytes(20, "big")


def _addr(i: int) -> tuple[str, int]:
    return f"10.0.{i // 250}.{i % 250 + 1}", 6881


def _fill(
    table: RoutingTable, prefix: str, count: int, rng: random.Random, start: int
) -> list[bytes]:
    ids = [_id(prefix, rng) for _ in range(count)]
    for i, node_id in enumerate(ids):
        table.responded(node_id, _addr(start + i), 0.0)
    return ids


def test_a_bucket_splits_only_when_it_covers_our_own_id() -> None:
    rng = random.Random(1)
    table = RoutingTable(OWN, 0.0)
    far = _fill(table, "1", K, rng, 0)  # the one bucket covers everything, ours too
    assert (table.bucket_count, len(table)) == (1, K)
    more_far = _fill(table, "1", 5, rng, 100)  # full: split; the far half stays full
    assert table.bucket_count == 2
    assert {c.id for c in table.contacts()} == set(far)
    _fill(table, "1", 20, rng, 200)  # the far bucket does not cover us: never split
    assert (table.bucket_count, len(table)) == (2, K)
    assert all(table.get(i) is None for i in more_far)
    near = _fill(table, "01", K, rng, 300)  # the near half fills...
    assert (table.bucket_count, len(table)) == (2, 2 * K)
    _fill(table, "01", 3, rng, 400)  # ...and once full splits again: "01" is not ours
    assert (table.bucket_count, len(table)) == (3, 2 * K)
    assert {c.id for c in table.contacts()} == set(far) | set(near)
    _fill(table, "0000001", K, rng, 500)  # nodes very near us fill our own bucket
    assert (table.bucket_count, len(table)) == (3, 3 * K)
    _fill(table, "0001", 1, rng, 600)  # it splits as often as it takes to make room
    assert (table.bucket_count, len(table)) == (5, 3 * K + 1)


def test_node_states_follow_bep5() -> None:
    rng = random.Random(2)
    table = RoutingTable(OWN, 0.0)
    a, b = _id("1", rng), _id("1", rng)
    table.responded(a, _addr(1), 100.0)
    table.responded(b, _addr(2), 100.0)
    node = table.get(a)
    assert node is not None
    assert node.good(100.0 + GOOD_FOR - 1)
    assert not node.good(100.0 + GOOD_FOR)  # 15 minutes of silence: questionable
    assert not node.bad()
    table.queried(a, _addr(1), 2000.0)  # it answered once and queries us now: good again
    assert node.good(2000.0 + GOOD_FOR - 1)
    table.failed(a, _addr(1))
    assert not node.bad()  # BEP 5: try once more
    table.failed(a, _addr(1))
    assert node.bad() and not node.good(2001.0)
    assert [c.id for c in table.closest(a, K)] == [b]  # bad nodes are never handed out
    table.responded(a, _addr(1), 2002.0)  # it answers again: good, failures forgotten
    assert node.good(2002.0) and node.fails == 0


def test_a_node_that_only_queries_us_waits_for_a_ping_before_it_joins() -> None:
    rng = random.Random(3)
    table = RoutingTable(OWN, 0.0)
    a = _id("1", rng)
    assert table.queried(a, _addr(1), 5.0) is True  # unknown and there is room: ping it
    assert table.get(a) is None and len(table) == 0
    assert table.queried(a, _addr(1), 6.0) is False  # not twice for one flood
    assert table.responded(a, _addr(1), 7.0) is True
    assert table.get(a) is not None


def test_a_bad_node_is_replaced_by_the_freshest_candidate_that_answered() -> None:
    rng = random.Random(4)
    table = RoutingTable(OWN, 0.0)
    _fill(table, "1", K, rng, 0)
    _fill(table, "0", K, rng, 50)  # split: "1" is a full far bucket now
    full = [c for c in table.contacts() if c.id[0] & 0x80]
    assert len(full) == K
    waiting = [_id("1", rng) for _ in range(REPLACEMENTS + 3)]
    for i, node_id in enumerate(waiting):
        assert table.responded(node_id, _addr(100 + i), 10.0) is False
    # a full bucket of good nodes: a querier is not worth a ping
    assert table.queried(_id("1", rng), _addr(200), 11.0) is False
    victim = full[3]
    table.failed(victim.id, victim.addr)
    assert table.get(victim.id) is not None
    table.failed(victim.id, victim.addr)
    assert table.get(victim.id) is None
    assert table.get(waiting[-1]) is not None  # the newest candidate took its place
    assert len(table) == 2 * K
    # the cache kept only the newest REPLACEMENTS candidates: the oldest are gone
    for node_id in waiting[:3]:
        table.responded(node_id, _addr(999), 12.0)
        assert table.get(node_id) is None


def test_a_bad_node_gives_way_to_a_newcomer_at_once_without_candidates() -> None:
    rng = random.Random(5)
    table = RoutingTable(OWN, 0.0)
    ids = _fill(table, "1", K, rng, 0)
    _fill(table, "0", K, rng, 50)
    table.failed(ids[0], _addr(0))
    table.failed(ids[0], _addr(0))
    newcomer = _id("1", rng)
    assert table.responded(newcomer, _addr(77), 3.0) is True
    assert table.get(ids[0]) is None and table.get(newcomer) is not None


def test_an_id_keeps_its_address() -> None:
    rng = random.Random(6)
    table = RoutingTable(OWN, 0.0)
    a = _id("1", rng)
    table.responded(a, _addr(1), 1.0)
    assert table.responded(a, _addr(2), 2.0) is False  # someone else answering as a
    node = table.get(a)
    assert node is not None and node.addr == _addr(1) and node.last_response == 1.0
    table.failed(a, _addr(2))  # a failure at another address is not a's
    assert node.fails == 0


def test_an_address_that_queries_with_a_new_id_is_asked_again_and_takes_it() -> None:
    # libtorrent changes its node id once it learns its external address (BEP 42): the
    # queries it sends from then on carry the new id, from the address we hold the old one at
    rng = random.Random(12)
    table = RoutingTable(OWN, 0.0)
    old, new = _id("1", rng), _id("1", rng)
    table.responded(old, _addr(1), 1.0)
    assert table.to_ping(2.0, 60.0) == []  # good
    assert table.queried(new, _addr(1), 3.0) is False  # no ping from here, and not taken
    assert table.get(new) is None
    assert [c.id for c in table.to_ping(3.5, 60.0)] == [old]  # questionable now: pinged
    assert table.responded(new, _addr(1), 4.0) is True  # the answer carries the new id
    assert table.get(old) is None and len(table) == 1
    node = table.get(new)
    assert node is not None and node.addr == _addr(1) and node.good(4.0)
    assert table.queried(new, _addr(1), 5.0) is False and table.to_ping(5.0, 60.0) == []


def test_closest_is_the_k_nearest_by_xor() -> None:
    rng = random.Random(7)
    table = RoutingTable(rng.randbytes(20), 0.0)
    ids = [rng.randbytes(20) for _ in range(300)]
    for i, node_id in enumerate(ids):
        table.responded(node_id, _addr(i), 0.0)
    held = [c.id for c in table.contacts()]
    assert K * 3 < len(held) < 300
    for _ in range(20):
        target = rng.randbytes(20)
        want = sorted(held, key=lambda i: distance(i, target))[:K]
        assert [c.id for c in table.closest(target, K)] == want


def test_closest_reads_buckets_nearest_first_and_agrees_with_a_full_sort() -> None:
    # closest() answers every find_node and get_peers, so it reads a few buckets, not the
    # whole table (it used to sort every node: 66 us a get_peers answer with 36 nodes, 171
    # with 320): targets in every bucket, deep ones near our id too, bad nodes, any k
    rng = random.Random(9)
    own = rng.randbytes(20)
    mine = int.from_bytes(own, "big")

    def near(depth: int) -> bytes:  # shares exactly *depth* leading bits with our id
        return (mine ^ (1 << (159 - depth)) ^ rng.getrandbits(159 - depth)).to_bytes(20, "big")

    table = RoutingTable(own, 0.0)
    for i in range(3000):
        table.responded(near(i % 24), _addr(i), 0.0)
    for c in list(table.contacts())[::7]:
        table.failed(c.id, c.addr)
        table.failed(c.id, c.addr)
    held = [c.id for c in table.contacts() if not c.bad()]
    assert table.bucket_count > 16 and len(held) > 100
    targets = [rng.randbytes(20) for _ in range(20)] + [near(d) for d in range(30)] + [own]
    for target in targets:
        for k in (1, K, 3 * K, 1000):
            want = sorted(held, key=lambda i: distance(i, target))[:k]
            assert [c.id for c in table.closest(target, k)] == want


def test_stale_buckets_give_a_random_id_in_their_range_to_look_up() -> None:
    rng = random.Random(8)
    own = rng.randbytes(20)
    table = RoutingTable(own, 0.0)
    for i in range(300):
        table.responded(rng.randbytes(20), _addr(i), 0.0)
    n = table.bucket_count
    assert table.refresh_targets(REFRESH_AFTER - 1, rng) == []
    targets = table.refresh_targets(REFRESH_AFTER, rng)
    assert len(targets) == n
    for index, (target, within) in enumerate(targets):
        shared = 160 - distance(target, own).bit_length()
        assert shared == index if index < n - 1 else shared >= index
        assert within == (index + 1 if index < n - 1 else index)
    assert table.refresh_targets(REFRESH_AFTER + 1, rng) == []  # refreshed: changed now


def test_to_ping_names_the_least_recently_seen_questionable_node_once() -> None:
    rng = random.Random(9)
    table = RoutingTable(OWN, 0.0)
    a, b = _id("1", rng), _id("1", rng)
    table.responded(a, _addr(1), 10.0)
    table.responded(b, _addr(2), 20.0)
    assert table.to_ping(30.0, 60.0) == []  # all good
    later = 20.0 + GOOD_FOR
    assert [c.id for c in table.to_ping(later - 10, 60.0)] == [a]  # one a bucket, oldest first
    assert [c.id for c in table.to_ping(later, 60.0)] == [b]
    assert table.to_ping(later + 1, 60.0) == []  # neither again within the interval
    table.responded(b, _addr(2), later + 2)
    assert [c.id for c in table.to_ping(later + 51, 60.0)] == [a]


def test_the_table_has_a_hard_cap() -> None:
    rng = random.Random(10)
    table = RoutingTable(OWN, 0.0, max_nodes=20)
    for i in range(200):  # ids crafted ever nearer ours, to make it split and split
        table.responded(_id("0" * (i // 4 + 1) + "1", rng), _addr(i), 0.0)
    assert len(table) == 20
