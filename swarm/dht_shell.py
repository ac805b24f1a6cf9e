"""The asyncio UDP shell around the sans-I/O Mainline DHT node (BEP 5, :mod:`swarm.dht.node`).

It only moves datagrams and time: every datagram received goes to ``node.receive`` and every
datagram the node returns is sent; a timer calls ``node.tick`` twice a second; after each call
into the node, the searches that finished resolve the futures of whoever waits for them. Every
wait is bounded: a lookup that outlasts its caller's timeout gives what it has found so far.

It lives beside the engine, not in :mod:`swarm.dht`, which stays free of asyncio and sockets.
A node runs on its own UDP socket (:meth:`DhtNode.start`, as ``swarm dht`` does) or on a
socket it shares (:meth:`DhtNode.start_on`): a session's uTP endpoint, which hands it the
datagrams that are not uTP (BEP 29 and BEP 5 packets differ by their first byte) and sends
its answers from the same port, the port peers also dial over TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import secrets
import socket
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Protocol

from swarm.dht import krpc
from swarm.dht.node import Datagram, Node, Search
from swarm.dht_nodes import PUBLIC_ROUTERS
from swarm.errors import BencodeError, SessionError

log = logging.getLogger(__name__)

__all__ = ["PUBLIC_ROUTERS", "DhtNode", "SharedPort", "resolve"]

Address = tuple[str, int]

TICK = 0.5
RESOLVE_TIMEOUT = 5.0
LOOKUP_TIMEOUT = 30.0
SAVE_EVERY = 300.0


async def resolve(addrs: Iterable[Address], timeout: float = RESOLVE_TIMEOUT) -> list[Address]:
    """*addrs* with host names resolved to one IPv4 address each (an answer must come from
    the exact address its query went to); names that do not resolve in time are left out."""

    async def one(host: str, port: int) -> Address | None:
        if krpc.is_ipv4(host):
            return host, port
        loop = asyncio.get_running_loop()
        try:
            async with asyncio.timeout(timeout):
                infos = await loop.getaddrinfo(
                    host, port, family=socket.AF_INET, type=socket.SOCK_DGRAM
                )
        except (OSError, TimeoutError) as exc:
            log.info("dht: cannot resolve %s: %s", host, exc)
            return None
        return (str(infos[0][4][0]), port) if infos else None

    found = await asyncio.gather(*(one(h, p) for h, p in dict.fromkeys(addrs)))
    return list(dict.fromkeys(a for a in found if a is not None))


class SharedPort(Protocol):
    """A UDP socket another protocol owns (:class:`~swarm.utp_shell.UtpEndpoint`): *other*
    gets its datagrams that are not that protocol's; :meth:`sendto` sends from it."""

    address: Address
    other: Callable[[bytes, Address], None] | None

    def sendto(self, data: bytes, addr: Address) -> None: ...


class DhtNode(asyncio.DatagramProtocol):
    """One DHT node on a UDP socket: :meth:`start`, :meth:`bootstrap`, then :meth:`get_peers`
    and :meth:`announce` as often as wanted; :meth:`stop` saves the table to *state_path*
    (when given) for the next start. *options* go to :class:`~swarm.dht.node.Node`
    (``query_rate``, ``query_burst``: a bootstrap node for many local nodes needs more)."""

    def __init__(
        self,
        *,
        state_path: Path | None = None,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        **options: Any,
    ) -> None:
        self.state_path = state_path
        self.rng = rng or random.Random(secrets.randbits(64))
        self.clock = clock
        self.node = self._load(options)
        self.routers: list[Address] = []
        self.address: Address = ("0.0.0.0", 0)
        self._transport: asyncio.DatagramTransport | None = None
        self._shared: SharedPort | None = None
        self._waiting: dict[Search, asyncio.Future[list[Address]]] = {}
        self._ticker: asyncio.Task[None] | None = None
        self._saved_at = clock()

    def _load(self, options: dict[str, Any]) -> Node:
        now = self.clock()
        if self.state_path is not None:
            try:
                return Node.from_state(self.state_path.read_bytes(), self.rng, now, **options)
            except FileNotFoundError:
                pass
            except (OSError, BencodeError) as exc:
                log.warning("dht: %s not used: %s", self.state_path, exc)
        return Node(self.rng, now, **options)

    # -- life cycle ---------------------------------------------------------------------------

    async def start(self, host: str = "0.0.0.0", port: int = 0) -> None:
        """Bind the UDP socket (port 0: any free port) and start the timer."""
        loop = asyncio.get_running_loop()
        try:
            transport, _ = await loop.create_datagram_endpoint(
                lambda: self, local_addr=(host, port), family=socket.AF_INET
            )
        except OSError as exc:
            raise SessionError(f"cannot open the DHT's UDP port {host}:{port}: {exc}") from None
        self._transport = transport
        sockname = transport.get_extra_info("sockname")
        self.address = (str(sockname[0]), int(sockname[1]))
        self._ticker = asyncio.ensure_future(self._tick_loop())
        log.info("dht: node %s on %s:%d", self.node.id.hex(), *self.address)

    async def start_on(self, port: SharedPort) -> None:
        """Run on *port*, a socket another protocol owns (it stays open when we stop): its
        other datagrams come to this node, which sends through it; then start the timer."""
        self._shared = port
        port.other = self.datagram_received
        self.address = port.address
        self._ticker = asyncio.ensure_future(self._tick_loop())
        log.info("dht: node %s on %s:%d (shared)", self.node.id.hex(), *self.address)

    async def stop(self) -> None:
        """Stop the timer, save the table, close the socket; waiters get what they have."""
        if self._ticker is not None:
            self._ticker.cancel()
            await asyncio.gather(self._ticker, return_exceptions=True)
            self._ticker = None
        self.save()
        for search, fut in self._waiting.items():
            if not fut.done():
                fut.set_result(list(search.peers))
        self._waiting.clear()
        if self._transport is not None:
            self._transport.close()
            self._transport = None
        if self._shared is not None:
            self._shared.other = None
            self._shared = None

    def save(self) -> None:
        """Write the node's id and table to *state_path* whole or not at all."""
        if self.state_path is None:
            return
        tmp = self.state_path.with_name(f".{self.state_path.name}.{secrets.token_hex(4)}.tmp")
        try:
            tmp.write_bytes(self.node.to_state())
            tmp.replace(self.state_path)
        except OSError as exc:
            log.warning("dht: cannot save %s: %s", self.state_path, exc)
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
        self._saved_at = self.clock()

    # -- what callers start -------------------------------------------------------------------

    async def bootstrap(self, addrs: Iterable[Address], timeout: float = LOOKUP_TIMEOUT) -> int:
        """Join the DHT through the routers *addrs* (names resolved here) added to those
        given before, and the nodes of a saved table; wait for the lookup of our own id (at
        most *timeout* seconds) and return how many nodes the table then holds."""
        self.routers = list(dict.fromkeys([*self.routers, *await resolve(addrs)]))
        search, out = self.node.bootstrap(self.routers, self.clock())
        await self._wait(search, out, timeout)
        return len(self.node.table)

    async def get_peers(self, info_hash: bytes, timeout: float = LOOKUP_TIMEOUT) -> list[Address]:
        """Peers of *info_hash* the DHT knows: the lookup's, or what it found within
        *timeout* seconds."""
        search, out = self.node.get_peers(info_hash, self.clock())
        return await self._wait(search, out, timeout)

    async def announce(
        self, info_hash: bytes, port: int, timeout: float = LOOKUP_TIMEOUT
    ) -> list[Address]:
        """Tell the nodes nearest *info_hash* that we have it on TCP *port* (a get_peers
        lookup, then ``announce_peer``); the peers the lookup found on the way."""
        return (await self.announce_search(info_hash, port, timeout)).peers

    async def announce_search(
        self, info_hash: bytes, port: int, timeout: float = LOOKUP_TIMEOUT
    ) -> Search:
        """:meth:`announce`, giving its :class:`~swarm.dht.node.Search`: its ``peers``, the
        nodes ``announced_to``, and its lookup's ``missed()`` nodes (that never answered)."""
        search, out = self.node.announce(info_hash, port, self.clock())
        await self._wait(search, out, timeout)
        return search

    def ping(self, addr: Address) -> None:
        """Ping *addr*, a node a peer named in a BEP 5 PORT message: it joins the table if it
        answers. An address the node cannot use (not IPv4) is ignored."""
        try:
            self._send(self.node.ping(addr, self.clock()))
        except ValueError:
            log.debug("dht: no ping to %s:%d (not an IPv4 address)", *addr)

    def stats(self) -> dict[str, int | str]:
        """The node's figures (id, table, store, work in flight) and its address."""
        return {**self.node.stats(), "address": f"{self.address[0]}:{self.address[1]}"}

    async def _wait(self, search: Search, out: list[Datagram], timeout: float) -> list[Address]:
        fut: asyncio.Future[list[Address]] = asyncio.get_running_loop().create_future()
        self._waiting[search] = fut
        self._send(out)
        try:
            async with asyncio.timeout(timeout):
                return await asyncio.shield(fut)
        except TimeoutError:
            return list(search.peers)
        finally:
            self._waiting.pop(search, None)

    # -- datagrams and time -------------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        self._send(self.node.receive(data, (str(addr[0]), int(addr[1])), self.clock()))

    def error_received(self, exc: Exception) -> None:
        log.debug("dht: %s", exc)  # an ICMP error of an earlier send: the query times out

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK)
            self._send(self.node.tick(self.clock()))
            if self.state_path is not None and self.clock() - self._saved_at >= SAVE_EVERY:
                self.save()

    def _send(self, out: list[Datagram]) -> None:
        if self._shared is not None:
            for data, addr in out:
                self._shared.sendto(data, addr)
        elif self._transport is not None and not self._transport.is_closing():
            for data, addr in out:
                self._transport.sendto(data, addr)
        for search in self.node.pop_finished():
            if log.isEnabledFor(logging.DEBUG):
                to = " ".join(f"{n.addr[0]}:{n.addr[1]}" for n in search.announced_to)
                log.debug(
                    "dht: %s %s done: %d queries, %s; %d peers%s",
                    search.kind, search.target.hex()[:8], search.lookup.queries,
                    search.lookup.tally(), len(search.peers), f"; announced to {to}" if to else "",
                )  # fmt: skip
            fut = self._waiting.get(search)
            if fut is not None and not fut.done():
                fut.set_result(list(search.peers))
