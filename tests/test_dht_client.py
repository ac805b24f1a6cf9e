"""A session's DHT client (swarm.dht_client) on loopback sockets, with stand-in torrents: a
public torrent is announced with the session's port and its peers handed over; a private one
never reaches the DHT; a metadata fetch is fed while it runs, and not after."""

from __future__ import annotations

import asyncio
import hashlib
import random
from collections.abc import Callable
from typing import Any

from swarm.dht.node import Search
from swarm.dht_client import ANNOUNCE_RETRIES, DhtClient
from swarm.dht_shell import DhtNode

LOOPBACK = "127.0.0.1"


class FakeTorrent:
    def __init__(self, name: bytes) -> None:
        self.info_hash = hashlib.sha1(name).digest()
        self.complete = asyncio.Event()
        self.stopped = asyncio.Event()
        self.peers: dict[tuple[str, int], None] = {}
        self.given: list[tuple[str, int]] = []

    def add_peers(self, addresses: list[tuple[str, int]]) -> None:
        self.given += addresses


async def _until(predicate: Callable[[], bool], timeout: float, what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


async def _client(router: DhtNode, port: int, seed: int) -> DhtClient:
    node = DhtNode(rng=random.Random(seed))
    await node.start(LOOPBACK, 0)
    client = DhtClient(node, lambda: port, [router.address], random.Random(seed))
    client.start()
    return client


def test_public_torrents_are_announced_and_fed_private_ones_never() -> None:
    async def main() -> None:
        router = DhtNode(rng=random.Random(1), query_rate=1000.0, query_burst=1000.0)
        await router.start(LOOPBACK, 0)
        seeder = await _client(router, 6001, 2)
        leecher = await _client(router, 6002, 3)
        try:
            public, private = FakeTorrent(b"public"), FakeTorrent(b"private")
            seeder.watch(public, private=False)
            seeder.watch(private, private=True)
            await _until(lambda: router.node.store.peer_count() == 1, 10.0, "the announce")
            stored = router.node.store.get(public.info_hash, router.clock(), random.Random(0))
            assert stored == [(LOOPBACK, 6001)]
            found: list[tuple[str, int]] = []
            async with leecher.feeding(public.info_hash, found.extend):
                await _until(lambda: (LOOPBACK, 6001) in found, 10.0, "the fed peer")
            assert not any(key[0] == "metadata" for key in leecher._tasks if isinstance(key, tuple))
            downloading = FakeTorrent(b"public")
            leecher.watch(downloading, private=False)
            await _until(lambda: (LOOPBACK, 6001) in downloading.given, 10.0, "the peers")
            await _until(lambda: router.node.store.peer_count() == 2, 10.0, "its announce")
            leecher.unwatch(downloading)
            hidden = await leecher.node.get_peers(private.info_hash, timeout=10.0)
            assert hidden == [] and private.given == []
        finally:
            await asyncio.gather(seeder.close(), leecher.close(), router.stop())

    asyncio.run(main())


class BusyNode(DhtNode):
    """A node whose host is busy (as a helper process of the 50-node test could be for a few
    seconds on a loaded machine): while ``busy``, datagrams to it go unanswered."""

    busy = False

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        if not self.busy:
            super().datagram_received(data, addr)


class CountingNode(DhtNode):
    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.announces: list[Search] = []

    async def announce_search(self, info_hash: bytes, port: int, timeout: float = 30.0) -> Search:
        search = await super().announce_search(info_hash, port, timeout)
        self.announces.append(search)
        return search


def test_an_announce_that_missed_the_nearest_node_is_made_again_soon() -> None:
    """The node nearest the info-hash is busy during the first announce (its lookup's query
    to it times out): the announce reaches only the router; once that node answers again,
    the announce made again a little later reaches it. Before, the next announce came 15 to
    30 minutes later: the 50-node test's seed, its announce made while the helper process
    holding half the nearest nodes was busy, never reached them (its 30 s wait failed)."""

    async def main() -> None:
        torrent = FakeTorrent(b"busy")
        fast = {"query_timeout": 0.4, "slow_after": 0.2}
        router = DhtNode(rng=random.Random(1), query_rate=1000.0, query_burst=1000.0, **fast)
        nearest = bytes(b ^ (i == 19) for i, b in enumerate(torrent.info_hash))
        busy = BusyNode(rng=random.Random(2), node_id=nearest, query_rate=1000.0, **fast)
        node = CountingNode(rng=random.Random(3), **fast)
        for n in (router, busy, node):
            await n.start(LOOPBACK, 0)
        client = DhtClient(node, lambda: 6001, [router.address], random.Random(3), retry=0.5)
        try:
            assert await busy.bootstrap([router.address], timeout=5.0) >= 1
            client.start()
            busy.busy = True
            client.watch(torrent, private=False)
            await _until(lambda: len(node.announces) >= 1, 10.0, "the first announce")
            first = node.announces[0]
            assert [n.addr for n in first.announced_to] == [router.address]
            assert first.lookup.missed() == 1  # the busy node, nearer than the router
            assert busy.node.store.peer_count() == 0
            busy.busy = False
            await _until(lambda: busy.node.store.peer_count() == 1, 10.0, "the announce again")
            again = node.announces[-1]
            assert busy.address in [n.addr for n in again.announced_to]
            assert again.lookup.missed() == 0
        finally:
            await asyncio.gather(client.close(), busy.stop(), router.stop())

    asyncio.run(main())


class _Lookup:
    def __init__(self, missed: int) -> None:
        self._missed = missed

    def missed(self) -> int:
        return self._missed


class _Announced:
    def __init__(self, reached: int, missed: int) -> None:
        self.peers: list[tuple[str, int]] = []
        self.announced_to = [object()] * reached
        self.lookup = _Lookup(missed)


class ScriptedNode:
    """A stand-in DHT node whose announces reach *reached* nodes and miss *missed*."""

    def __init__(self, reached: int, missed: int) -> None:
        self.reached, self.missed = reached, missed
        self.announces = 0

    async def announce_search(self, info_hash: bytes, port: int) -> _Announced:
        self.announces += 1
        return _Announced(self.reached, self.missed)

    async def stop(self) -> None:
        pass


def test_announces_that_miss_nodes_are_made_again_three_times_at_most() -> None:
    """Dead nodes are always among the nearest on the real DHT: an announce missing some is
    made again ANNOUNCE_RETRIES times, then at the usual interval; one that reached nobody
    (no table yet) is made again until it reaches some."""

    async def served(node: ScriptedNode, first_again: float = 60.0) -> int:
        client = DhtClient(node, lambda: 6001, retry=0.01, first_again=first_again)  # type: ignore[arg-type]
        client._joined.set()  # no bootstrap to wait for
        torrent = FakeTorrent(b"retried")
        torrent.complete.set()  # a seed: announces only
        client.watch(torrent, private=False)
        await asyncio.sleep(0.5)
        await client.close()
        return node.announces

    assert asyncio.run(served(ScriptedNode(reached=8, missed=2))) == 1 + ANNOUNCE_RETRIES
    assert asyncio.run(served(ScriptedNode(reached=8, missed=0))) == 1
    assert asyncio.run(served(ScriptedNode(reached=0, missed=0))) > 1 + ANNOUNCE_RETRIES


def test_a_torrents_first_announce_is_made_once_more_from_a_fuller_table() -> None:
    """The first announce goes out as soon as the node joined, from a table still filling:
    it is made once more after first_again seconds even when it missed nobody it knew, and
    then at the usual interval."""

    async def served(node: ScriptedNode) -> int:
        client = DhtClient(node, lambda: 6001, retry=0.01, first_again=0.05)  # type: ignore[arg-type]
        client._joined.set()
        torrent = FakeTorrent(b"again")
        torrent.complete.set()
        client.watch(torrent, private=False)
        await asyncio.sleep(0.5)
        await client.close()
        return node.announces

    assert asyncio.run(served(ScriptedNode(reached=8, missed=0))) == 2
