"""A session's use of the Mainline DHT (BEP 5): one :class:`~swarm.dht_shell.DhtNode` for all
its torrents, looking up peers for each torrent that wants them and announcing each one.

For every torrent that is not private (BEP 27: a private torrent's peers come from its
trackers only): ``announce_peer`` with the session's TCP port at the start and every 15 to 30
minutes (the announce's lookup hands its peers over too), sooner after an announce that
missed nodes (:data:`ANNOUNCE_RETRY`); while the torrent downloads, a ``get_peers`` lookup
every :data:`LOOKUP_AGAIN` seconds, or every :data:`LOOKUP_SOON` while it has fewer than
:data:`FEW_PEERS` peers. A magnet's metadata fetch is fed the same way.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Coroutine, Iterable, Sized
from typing import Any, Protocol

from swarm.dht_shell import DhtNode

log = logging.getLogger(__name__)

__all__ = [
    "ANNOUNCE_EVERY",
    "ANNOUNCE_RETRIES",
    "ANNOUNCE_RETRY",
    "FEW_PEERS",
    "LOOKUP_AGAIN",
    "LOOKUP_SOON",
    "PATIENCE",
    "DhtClient",
]

Address = tuple[str, int]

ANNOUNCE_EVERY = (15 * 60.0, 30 * 60.0)
"""Seconds between announces of one torrent: a random time in this range."""
ANNOUNCE_RETRY = 5.0
"""Seconds before an announce is made again when it reached no node, or when nodes as near the
info-hash as those it reached never answered its lookup (dead, or busy past the query
timeout): they, or nodes found since in their place, should hold the peer too. The wait
doubles at each such announce (up to :data:`ANNOUNCE_EVERY`'s shortest); one that missed
nodes is made again at most :data:`ANNOUNCE_RETRIES` times (the DHT always has dead nodes:
more would multiply the announces' traffic), one that reached nobody until it reaches some."""
ANNOUNCE_RETRIES = 3
FIRST_AGAIN = 10.0
"""Seconds after a torrent's first announce before it is made once more, whatever it reached:
it is made as soon as the node has joined, from a table that is still filling, and its lookup
may end at the nearest nodes that table knew rather than the nearest there are (the 50-node
test's seed, started while the 50 were still finding each other, missed them now and then)."""
LOOKUP_AGAIN = 300.0
"""Seconds between ``get_peers`` lookups of a download that has peers enough."""
LOOKUP_SOON = 15.0
"""Seconds between lookups of a download (or a metadata fetch) short of peers."""
FEW_PEERS = 5
PATIENCE = 300.0
"""How long a download or a metadata fetch that has the DHT waits with nobody to ask before it
gives up (without the DHT a torrent with nothing to ask gives up after 30 s)."""


class Torrent(Protocol):
    """What the client needs of a torrent controller."""

    info_hash: bytes
    complete: asyncio.Event
    stopped: asyncio.Event

    @property
    def peers(self) -> Sized: ...
    def add_peers(self, addresses: list[Address]) -> None: ...


class DhtClient:
    """Owns one task per torrent (and per metadata fetch) it serves; :meth:`close` ends them
    and stops the node. *port* gives the session's TCP port to announce; *retry*: the first
    wait before an announce that missed nodes is made again (:data:`ANNOUNCE_RETRY`);
    *first_again*: when a torrent's first announce is made once more (:data:`FIRST_AGAIN`)."""

    def __init__(
        self,
        node: DhtNode,
        port: Callable[[], int],
        routers: Iterable[Address] = (),
        rng: random.Random | None = None,
        *,
        retry: float = ANNOUNCE_RETRY,
        first_again: float = FIRST_AGAIN,
    ) -> None:
        self.node = node
        self.retry = retry
        self.first_again = first_again
        self._port = port
        self._routers = list(routers)
        self.rng = rng or random.Random()
        self._tasks: dict[object, asyncio.Task[Any]] = {}
        self._joined = asyncio.Event()
        self._joining = 0

    def start(self) -> None:
        """Join the DHT in the background: torrents wait for it (bounded) before their first
        lookup, so that it goes to nodes rather than to an empty table."""
        self._join(self._routers)

    def add_routers(self, routers: Iterable[Address]) -> None:
        """More nodes to bootstrap from (a torrent's BEP 5 ``nodes``)."""
        new = [a for a in routers if a not in self._routers]
        if new:
            self._routers += new
            self._join(new)

    def _join(self, routers: list[Address]) -> None:
        # counted now, not when the task starts: a torrent watched next must wait for it
        self._joining += 1
        self._joined.clear()
        self._spawn(("join", tuple(routers)), self._bootstrap(routers))

    async def _bootstrap(self, routers: list[Address]) -> None:
        try:
            n = await self.node.bootstrap(routers)
            log.info("dht: %d nodes in the table after the bootstrap", n)
        finally:
            self._joining -= 1
            if self._joining == 0:
                self._joined.set()

    def watch(self, torrent: Torrent, *, private: bool) -> None:
        """Find peers for *torrent* and announce it, until :meth:`unwatch`; nothing for a
        *private* torrent."""
        if private:
            return
        self._spawn(torrent, self._serve(torrent))

    def unwatch(self, torrent: object) -> None:
        task = self._tasks.pop(torrent, None)
        if task is not None:
            task.cancel()

    @contextlib.asynccontextmanager
    async def feeding(
        self, info_hash: bytes, add_peers: Callable[[list[Address]], None]
    ) -> AsyncIterator[None]:
        """While the block runs, look up *info_hash* every :data:`LOOKUP_SOON` seconds and
        hand what is found to *add_peers* (a magnet's metadata fetch)."""
        key = ("metadata", info_hash)
        self._spawn(key, self._feed(info_hash, add_peers))
        try:
            yield
        finally:
            self.unwatch(key)

    async def close(self) -> None:
        """End every task and stop the node (which saves its table)."""
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._tasks.clear()
        await self.node.stop()

    # -- inside ---------------------------------------------------------------------------------

    def _spawn(self, key: object, coro: Coroutine[Any, Any, Any]) -> None:
        self.unwatch(key)
        task = asyncio.ensure_future(coro)
        self._tasks[key] = task
        task.add_done_callback(lambda t: self._done(key, t))

    def _done(self, key: object, task: asyncio.Task[Any]) -> None:
        if self._tasks.get(key) is task:
            del self._tasks[key]
        if not task.cancelled() and task.exception() is not None:
            log.warning("dht: %r", task.exception())

    async def _ready(self) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(60.0):
                await self._joined.wait()

    async def _serve(self, torrent: Torrent) -> None:
        await self._ready()
        loop = asyncio.get_running_loop()
        announce_at = lookup_at = loop.time()
        retry, retried = self.retry, 0
        first = True
        while not torrent.stopped.is_set():  # a torrent that failed wants nothing more
            now = loop.time()
            if now >= announce_at:
                search = await self.node.announce_search(torrent.info_hash, self._port())
                peers, reached, missed = search.peers, search.announced_to, search.lookup.missed()
                log.info(
                    "dht: announced %s to %d nodes (%d near ones did not answer); %d peers",
                    torrent.info_hash.hex(), len(reached), missed, len(peers),
                )  # fmt: skip
                if torrent.stopped.is_set():
                    return
                torrent.add_peers(peers)
                if not reached or (missed and retried < ANNOUNCE_RETRIES):
                    announce_at = loop.time() + retry  # some nodes may lack it: again soon
                    retry, retried = min(retry * 2, ANNOUNCE_EVERY[0]), retried + bool(reached)
                elif first:  # once more from a table that has filled since
                    announce_at = loop.time() + self.first_again
                else:
                    announce_at = loop.time() + self.rng.uniform(*ANNOUNCE_EVERY)
                    retry, retried = self.retry, 0
                first = False
                lookup_at = loop.time() + LOOKUP_SOON
            elif now >= lookup_at and not torrent.complete.is_set():
                peers = await self.node.get_peers(torrent.info_hash)
                log.debug("dht: %d peers for %s", len(peers), torrent.info_hash.hex())
                if torrent.stopped.is_set():
                    return
                torrent.add_peers(peers)
            if now >= lookup_at:
                lookup_at = loop.time() + (
                    LOOKUP_SOON if len(torrent.peers) < FEW_PEERS else LOOKUP_AGAIN
                )
            await asyncio.sleep(max(0.0, min(announce_at, lookup_at) - loop.time()))

    async def _feed(self, info_hash: bytes, add_peers: Callable[[list[Address]], None]) -> None:
        await self._ready()
        while True:
            peers = await self.node.get_peers(info_hash)
            log.debug("dht: %d peers for the metadata of %s", len(peers), info_hash.hex())
            add_peers(peers)
            await asyncio.sleep(LOOKUP_SOON)
