"""The iterative lookup as a state machine: alpha in flight, the K nearest, when it stops."""

from __future__ import annotations

import random

from swarm.dht.krpc import NodeInfo
from swarm.dht.lookup import ALPHA, MAX_CANDIDATES, K, Lookup
from swarm.dht.routing import distance

TARGET = bytes(20)


def _node(d: int) -> NodeInfo:
    """A node at XOR distance *d* from TARGET."""
    return NodeInfo(d.to_bytes(20, "big"), (f"10.0.{d // 250}.{d % 250 + 1}", 6881))


def test_alpha_queries_in_flight_nearest_first() -> None:
    lookup = Lookup(TARGET, get_peers=False)
    for d in (900, 100, 500, 300, 700):
        lookup.add(_node(d).id, _node(d).addr)
    assert lookup.next_queries() == [_node(100), _node(300), _node(500)]
    assert lookup.next_queries() == []  # alpha in flight: wait
    assert lookup.in_flight() == ALPHA
    lookup.answered(_node(300).addr, _node(300).id, nodes=(_node(50), _node(60)))
    assert lookup.next_queries() == [_node(50)]  # nearer ones jump the queue


def test_it_stops_once_the_k_nearest_have_answered() -> None:
    lookup = Lookup(TARGET, get_peers=False)
    for d in range(1, 31):
        lookup.add(_node(d * 10).id, _node(d * 10).addr)
    asked: list[NodeInfo] = []
    while not lookup.done:
        batch = lookup.next_queries()
        assert batch
        for node in batch:
            assert isinstance(node, NodeInfo)
            asked.append(node)
            lookup.answered(node.addr, node.id)
    assert sorted(asked, key=lambda n: n.id) == [_node(d * 10) for d in range(1, K + 1)]
    assert lookup.closest() == [_node(d * 10) for d in range(1, K + 1)]
    assert lookup.queries == K


def test_failed_nodes_give_way_to_the_next_nearest() -> None:
    lookup = Lookup(TARGET, get_peers=False, k=2, alpha=2)
    for d in (1, 2, 3, 4, 5):
        lookup.add(_node(d).id, _node(d).addr)
    assert lookup.next_queries() == [_node(1), _node(2)]
    lookup.failed(_node(1).addr)
    lookup.answered(_node(2).addr, _node(2).id)
    assert not lookup.done
    assert lookup.next_queries() == [_node(3)]
    lookup.failed(_node(3).addr)
    assert lookup.next_queries() == [_node(4)]
    lookup.answered(_node(4).addr, _node(4).id)
    assert lookup.done and lookup.closest() == [_node(2), _node(4)]
    lookup.answered(_node(5).addr, _node(5).id)  # never asked: ignored
    assert lookup.closest() == [_node(2), _node(4)]
    assert lookup.missed() == 2  # 1 and 3, nearer than 4, the farthest of the nearest two


def test_missed_counts_only_failures_nearer_than_the_k_nearest_answered() -> None:
    lookup = Lookup(TARGET, get_peers=True, k=2, alpha=2)
    for d in (3, 4, 5):
        lookup.add(_node(d).id, _node(d).addr)
    assert lookup.next_queries() == [_node(3), _node(4)]
    lookup.failed(_node(4).addr)
    assert lookup.missed() == 1  # fewer than k answered: every failure counts
    lookup.answered(_node(3).addr, _node(3).id, nodes=(_node(1), _node(2)), token=b"t")
    assert lookup.next_queries() == [_node(1), _node(2)]
    lookup.answered(_node(1).addr, _node(1).id, token=b"t")
    lookup.answered(_node(2).addr, _node(2).id, token=b"t")
    assert lookup.done and lookup.missed() == 0  # 4 is beyond the nearest two, 1 and 2


def test_it_stops_when_nobody_is_left_to_ask() -> None:
    lookup = Lookup(TARGET, get_peers=False)
    lookup.add(_node(1).id, _node(1).addr)
    assert lookup.next_queries() == [_node(1)]
    lookup.failed(_node(1).addr)
    assert lookup.done and lookup.next_queries() == []


def test_get_peers_collects_values_and_the_tokens_of_the_nearest() -> None:
    lookup = Lookup(TARGET, get_peers=True, k=2)
    for d in (1, 2, 3):
        lookup.add(_node(d).id, _node(d).addr)
    lookup.next_queries()
    lookup.answered(_node(3).addr, _node(3).id, values=(("1.1.1.1", 1),), token=b"t3")
    lookup.answered(
        _node(1).addr, _node(1).id, values=(("1.1.1.1", 1), ("2.2.2.2", 2)), token=b"t1"
    )
    lookup.answered(_node(2).addr, _node(2).id, token=None)
    assert lookup.done
    assert lookup.peers == [("1.1.1.1", 1), ("2.2.2.2", 2)]
    assert lookup.announce_targets() == [(_node(1), b"t1")]  # node 2 gave no token


def test_a_bootstrap_address_is_asked_and_then_placed_by_its_id() -> None:
    lookup = Lookup(TARGET, get_peers=False, own_id=_node(7).id)
    lookup.add(None, ("192.0.2.1", 6881))
    assert lookup.next_queries() == [("192.0.2.1", 6881)]
    lookup.answered(("192.0.2.1", 6881), _node(40).id, nodes=(_node(7), _node(20)))
    assert lookup.next_queries() == [_node(20)]  # our own id is never asked
    lookup.answered(_node(20).addr, _node(20).id)
    assert lookup.done
    assert lookup.closest() == [_node(20), NodeInfo(_node(40).id, ("192.0.2.1", 6881))]


def test_answers_cannot_grow_a_lookup_without_bound() -> None:
    rng = random.Random(1)
    lookup = Lookup(TARGET, get_peers=True)
    lookup.add(_node(1 << 100).id, _node(1 << 100).addr)
    (first,) = lookup.next_queries()
    assert isinstance(first, NodeInfo)
    flood = tuple(
        NodeInfo(rng.randbytes(20), (f"10.1.{i // 250}.{i % 250 + 1}", 1)) for i in range(5000)
    )
    lookup.answered(first.addr, first.id, nodes=flood)
    assert len(lookup._by_addr) == len(lookup._order) == MAX_CANDIDATES
    nearest = sorted(flood, key=lambda n: distance(n.id, TARGET))[:ALPHA]
    assert lookup.next_queries() == nearest


def test_a_slow_node_gives_up_its_slot_but_may_still_answer() -> None:
    lookup = Lookup(TARGET, get_peers=False, k=3, alpha=2)
    for d in (1, 2, 3, 4):
        lookup.add(_node(d).id, _node(d).addr)
    assert lookup.next_queries() == [_node(1), _node(2)]
    lookup.slow(_node(1).addr)
    assert lookup.next_queries() == [_node(3)]  # one more in its place
    assert lookup.in_flight() == 3
    lookup.answered(_node(2).addr, _node(2).id)
    lookup.answered(_node(3).addr, _node(3).id)
    assert not lookup.done  # node 1 is among the 3 nearest: it is waited for...
    lookup.answered(_node(1).addr, _node(1).id)  # ...and its late answer counts
    assert lookup.done and lookup.closest() == [_node(1), _node(2), _node(3)]
