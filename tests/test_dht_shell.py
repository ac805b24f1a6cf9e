"""The asyncio shell of the DHT (swarm.dht_shell) on real loopback sockets: nodes bootstrap
from one, a peer announced through one node is found by a lookup from another, every wait is
bounded, and the table saved at stop is the one the next start uses."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Callable
from pathlib import Path

from swarm.dht_shell import DhtNode, resolve

LOOPBACK = "127.0.0.1"


async def _network(n: int) -> tuple[DhtNode, list[DhtNode]]:
    router = DhtNode(rng=random.Random(1), query_rate=1000.0, query_burst=1000.0)
    await router.start(LOOPBACK, 0)
    nodes = [DhtNode(rng=random.Random(10 + i)) for i in range(n)]
    for node in nodes:
        await node.start(LOOPBACK, 0)
    await asyncio.gather(*(node.bootstrap([router.address], timeout=10.0) for node in nodes))
    return router, nodes


async def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll *predicate* until true, or fail after *timeout* seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _stop(*nodes: DhtNode) -> None:
    await asyncio.gather(*(n.stop() for n in nodes))


def test_nodes_bootstrap_from_one_and_find_an_announced_peer() -> None:
    async def main() -> None:
        router, nodes = await _network(6)
        try:
            assert all(len(n.node.table) >= 1 for n in nodes)
            # the router pings those that queried it; they join its table as they answer
            await _until(lambda: router.stats()["nodes"] == 6, 10.0, "the router's table")
            info_hash = hashlib.sha1(b"a torrent").digest()
            assert await nodes[0].get_peers(info_hash, timeout=10.0) == []
            await nodes[1].announce(info_hash, 51413, timeout=10.0)
            assert await nodes[-1].get_peers(info_hash, timeout=10.0) == [(LOOPBACK, 51413)]
            other = hashlib.sha1(b"another torrent").digest()
            assert await nodes[2].get_peers(other, timeout=10.0) == []
        finally:
            await _stop(router, *nodes)

    asyncio.run(main())


def test_a_lookup_is_bounded_by_its_timeout() -> None:
    async def main() -> None:
        node, silent = DhtNode(rng=random.Random(3)), DhtNode(rng=random.Random(4))
        await node.start(LOOPBACK, 0)
        await silent.start(LOOPBACK, 0)
        silent.connection_lost(None)  # it no longer answers: its datagrams go nowhere
        silent.datagram_received = lambda data, addr: None  # type: ignore[method-assign]
        try:
            loop = asyncio.get_running_loop()
            started = loop.time()
            assert await node.bootstrap([silent.address], timeout=0.3) == 0
            assert loop.time() - started < 2.0
        finally:
            await _stop(node, silent)

    asyncio.run(main())


def test_the_table_is_saved_and_reused(tmp_path: Path) -> None:
    async def main() -> None:
        router, nodes = await _network(3)
        state = tmp_path / ".swarm-dht.state"
        node = DhtNode(state_path=state, rng=random.Random(99))
        await node.start(LOOPBACK, 0)
        try:
            assert await node.bootstrap([router.address], timeout=10.0) >= 1
            node_id = node.node.id
        finally:
            await node.stop()
        assert state.is_file()
        again = DhtNode(state_path=state, rng=random.Random(100))
        await again.start(LOOPBACK, 0)
        try:
            assert again.node.id == node_id
            # no router given: the saved nodes alone bring the table back
            assert await again.bootstrap([], timeout=10.0) >= 1
        finally:
            await _stop(again, router, *nodes)

    asyncio.run(main())


def test_a_bad_state_file_gives_a_fresh_node(tmp_path: Path) -> None:
    state = tmp_path / ".swarm-dht.state"
    state.write_bytes(b"not bencoded")
    assert len(DhtNode(state_path=state, rng=random.Random(5)).node.id) == 20


def test_resolve_keeps_ipv4_addresses_and_drops_what_does_not_resolve() -> None:
    addrs = [("127.0.0.1", 1), ("localhost", 2), ("no-such-host.invalid", 3)]
    got = asyncio.run(resolve(addrs, 5.0))
    assert ("127.0.0.1", 1) in got and ("127.0.0.1", 2) in got
    assert all(port != 3 for _, port in got)
