"""A Mainline DHT node (BEP 5), sans I/O: datagrams in, datagrams out, time and chance given.

:class:`Node` ties the KRPC codec, the routing table, the tokens, the peer store and the
lookups together. The asyncio shell around it is plumbing:

* ``datagram_received(data, addr)`` -> ``node.receive(data, addr, now)`` -> ``sendto`` each
  ``(bytes, address)`` returned;
* a timer calls ``node.tick(now)`` about twice a second and sends what it returns (timeouts
  move lookups on; questionable nodes are pinged; stale buckets refreshed);
* ``get_peers`` / ``announce`` / ``find_node`` / ``bootstrap`` / ``ping`` start work and
  return the first datagrams; after each call the shell hands each :class:`Search` of
  :meth:`Node.pop_finished` (its ``peers``) to whoever waits for it.

Defences: a datagram that is not KRPC is dropped, or answered with error 203/204 when it was
a query (rate-limited like any answer); an answer whose transaction id and source address
match no query of ours is dropped; queries are rate-limited per source IP (a token bucket
each, the map of buckets bounded); an ``announce_peer`` stores nothing without a token we
issued to that IP; answers stay small (a ``nodes`` answer of K nodes is what BEP 5 requires;
a ``values`` answer carries at most :data:`~swarm.dht.store.REPLY_VALUES` peers, no larger).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from swarm import bencoding
from swarm.dht import krpc
from swarm.dht.krpc import Address, NodeInfo
from swarm.dht.lookup import Lookup
from swarm.dht.ratelimit import QUERY_BURST, QUERY_RATE, RateLimits
from swarm.dht.routing import K, RoutingTable
from swarm.dht.store import PeerStore
from swarm.dht.tokens import Tokens
from swarm.errors import BencodeError

__all__ = [
    "BOOTSTRAP_AGAIN",
    "MAX_PENDING",
    "PING_AGAIN",
    "SLOW_AFTER",
    "QUERY_TIMEOUT",
    "Datagram",
    "Node",
    "Search",
]

Datagram = tuple[bytes, Address]

QUERY_TIMEOUT = 2.0
"""Seconds we wait for an answer before a query counts as failed (BEP 5 has no retries)."""
SLOW_AFTER = 1.0
"""Seconds after which a lookup's query stops holding one of its alpha slots (it may still
answer until QUERY_TIMEOUT): a dead node then delays a lookup by this, not the timeout."""
MAX_PENDING = 4096
"""Our queries awaiting an answer; past this a lookup counts a query as failed unsent."""
PING_AGAIN = 30.0
"""A questionable node or a candidate is pinged at most this often."""
MAX_SEARCHES = 64
"""Lookups at once; a table refresh waits while this many run (the caller's never do)."""
MAX_SAVED = 200
BOOTSTRAP_SOON, BOOTSTRAP_AGAIN = 2.0, 30.0
"""While the table holds under K nodes, a bootstrap is made again 2 s after it began, then
after twice as long each time, up to 30 s (routers knew nobody yet, or answered nothing)."""


@dataclass(eq=False)
class Search:
    """A lookup: ``kind`` is "bootstrap", "find_node", "get_peers" or "announce" (started by
    the node's owner, reported by :meth:`Node.pop_finished`), or "refresh" (the table's own)."""

    kind: str
    target: bytes
    lookup: Lookup
    announce_port: int | None = None
    implied_port: bool = False
    done: bool = False
    announced_to: list[NodeInfo] = field(default_factory=list)

    @property
    def peers(self) -> list[Address]:
        return self.lookup.peers

    @property
    def queries(self) -> int:
        """Queries this search has sent: its lookup's, and its announces."""
        return self.lookup.queries + len(self.announced_to)


@dataclass(slots=True)
class _Pending:
    sent: float
    node_id: bytes | None
    search: Search | None


class Node:
    """One DHT node: its id, table, tokens, peer store, lookups and queries in flight."""

    def __init__(
        self,
        rng: random.Random,
        now: float,
        node_id: bytes | None = None,
        *,
        query_timeout: float = QUERY_TIMEOUT,
        slow_after: float = SLOW_AFTER,
        query_rate: float = QUERY_RATE,
        query_burst: float = QUERY_BURST,
        version: bytes | None = None,
    ) -> None:
        self.id = node_id if node_id is not None else rng.randbytes(20)
        if len(self.id) != 20:
            raise ValueError("a node id is 20 bytes")
        self.rng = rng
        self.table = RoutingTable(self.id, now)
        self.tokens = Tokens(rng, now)
        self.store = PeerStore()
        self.version = version
        self._timeout, self._slow = query_timeout, slow_after
        self.limits = RateLimits(query_rate, query_burst)
        self._pending: dict[tuple[Address, bytes], _Pending] = {}
        self._fresh: dict[tuple[Address, bytes], None] = {}  # lookup queries not yet slow
        self._next_t = rng.getrandbits(16)
        self._searches: set[Search] = set()
        self._finished: list[Search] = []
        self._saved: list[NodeInfo] = []
        self._join: tuple[list[Address], Search, float, float] | None = None  # the last bootstrap

    # --- what the owner starts ---

    def bootstrap(
        self, addrs: list[Address], now: float, again: float = BOOTSTRAP_SOON
    ) -> tuple[Search, list[Datagram]]:
        """Look up our own id (BEP 5) from *addrs* (routers; ids unknown), a saved state's nodes
        and the table; again *again* s later while the table is short (:data:`BOOTSTRAP_SOON`).
        Router names are resolved first: an answer must come from the address queried."""
        if not all(krpc.is_ipv4(host) for host, _ in addrs):
            raise ValueError("bootstrap addresses must be IPv4 addresses, resolved")
        search = self._search("bootstrap", self.id)
        self._join = (list(addrs), search, now, again)
        for n in self._saved:
            search.lookup.add(n.id, n.addr)
        for addr in addrs:
            search.lookup.add(None, addr)
        return search, self._advance(search, now)

    def find_node(self, target: bytes, now: float) -> tuple[Search, list[Datagram]]:
        search = self._search("find_node", target)
        return search, self._advance(search, now)

    def get_peers(self, info_hash: bytes, now: float) -> tuple[Search, list[Datagram]]:
        search = self._search("get_peers", info_hash)
        return search, self._advance(search, now)

    def announce(
        self, info_hash: bytes, port: int, now: float, implied_port: bool = False
    ) -> tuple[Search, list[Datagram]]:
        """A get_peers lookup, then ``announce_peer`` with *port* to the K nearest nodes that
        gave a token; the search's ``peers`` are what the lookup found on the way."""
        search = self._search("announce", info_hash)
        search.announce_port, search.implied_port = port, implied_port
        return search, self._advance(search, now)

    def ping(self, addr: Address, now: float) -> list[Datagram]:
        """Ping *addr* (a BEP 5 PORT message named it); it joins the table if it answers."""
        if not krpc.is_ipv4(addr[0]):
            raise ValueError("a DHT node address must be an IPv4 address")
        return self._query(self._ping, addr, None, None, now)

    def pop_finished(self) -> list[Search]:
        """Searches finished since the last call, in the order they finished."""
        out, self._finished = self._finished, []
        return out

    # --- datagrams and time ---

    def receive(self, data: bytes, addr: Address, now: float) -> list[Datagram]:
        """One datagram from *addr*: what to send in return (an answer, or our next queries).
        IPv4 only for now: a datagram from any other address is dropped."""
        if not krpc.is_ipv4(addr[0]):
            return []
        try:
            msg = krpc.decode(data)
        except krpc.KrpcError as exc:
            if exc.t is None or not self.limits.allow(addr[0], now):
                return []
            # BEP 5's short names, not our longer reasons: an error must not amplify either
            text = "Method Unknown" if exc.code == krpc.METHOD_UNKNOWN else "Protocol Error"
            error = krpc.Error(exc.t, exc.code, text, self.version)
            return [(krpc.encode(error), addr)]
        if isinstance(msg, krpc.Response | krpc.Error):
            return self._on_answer(msg, addr, now)
        if not self.limits.allow(addr[0], now):
            return []
        out = [(krpc.encode(self._answer(msg, addr, now)), addr)]
        if self.table.queried(msg.id, addr, now):
            out += self._query(self._ping, addr, msg.id, None, now)
        return out

    def tick(self, now: float) -> list[Datagram]:
        """Slow queries and timeouts, pings of questionable nodes and candidates, bucket
        refreshes. Call it about twice a second (slow queries are noticed here)."""
        out: list[Datagram] = []
        stalled: dict[Search, None] = {}
        while self._fresh:
            key = next(iter(self._fresh))
            pending = self._pending.get(key)
            if pending is not None and now - pending.sent < self._slow:
                break
            del self._fresh[key]
            if pending is not None and pending.search is not None and not pending.search.done:
                pending.search.lookup.slow(key[0])
                stalled[pending.search] = None
        while self._pending:
            key, pending = next(iter(self._pending.items()))
            if now - pending.sent < self._timeout:
                break
            del self._pending[key]
            if pending.node_id is not None:
                self.table.failed(pending.node_id, key[0])
            if pending.search is not None and not pending.search.done:
                pending.search.lookup.failed(key[0])
                stalled[pending.search] = None
        for search in stalled:
            out += self._advance(search, now)
        for contact in self.table.to_ping(now, PING_AGAIN):
            out += self._query(self._ping, contact.addr, contact.id, None, now)
        out += self._refresh(self.table.refresh_targets(now, self.rng), now)
        routers, last, began, wait = self._join or ([], None, 0.0, 0.0)
        if last is not None and last.done and len(self.table) < K and now - began >= wait:
            out += self.bootstrap(routers, now, min(wait * 2, BOOTSTRAP_AGAIN))[1]
        self.store.expire(now)
        return out

    # --- state kept between runs ---

    def to_state(self) -> bytes:
        """Our id and the table's nodes (all but the bad: after a restart every node is
        questionable by the clock), bencoded, for the shell to keep in a file."""
        nodes = [c.info for c in self.table.contacts() if not c.bad()]
        return bencoding.encode({b"id": self.id, b"nodes": krpc.pack_nodes(nodes)})

    @classmethod
    def from_state(cls, data: bytes, rng: random.Random, now: float, **options: Any) -> Node:
        """A node with the saved id; the saved nodes seed :meth:`bootstrap` (they join the
        table once they answer). Raises BencodeError for a state that is not ours."""
        state = bencoding.decode(data)
        if not isinstance(state, dict):
            raise BencodeError("a DHT state is a dictionary")
        node_id, nodes = state.get(b"id"), state.get(b"nodes")
        if not isinstance(node_id, bytes) or len(node_id) != 20 or not isinstance(nodes, bytes):
            raise BencodeError("a DHT state needs a 20-byte id and compact nodes")
        node = cls(rng, now, node_id, **options)
        try:
            node._saved = list(krpc.unpack_nodes(nodes, MAX_SAVED))
        except ValueError as exc:
            raise BencodeError(f"a DHT state with bad nodes: {exc}") from None
        return node

    def stats(self) -> dict[str, int | str]:
        """Figures for a status line: the table, the store, the work in flight."""
        return {
            "id": self.id.hex(),
            "nodes": len(self.table),
            "buckets": self.table.bucket_count,
            "torrents": len(self.store),
            "peers": self.store.peer_count(),
            "pending": len(self._pending),
            "searches": len(self._searches),
        }

    # --- inside ---

    def _answer(self, q: krpc.Query, addr: Address, now: float) -> krpc.Message:
        me, v = self.id, self.version
        if isinstance(q, krpc.Ping):
            return krpc.Response(q.t, me, v=v)
        if isinstance(q, krpc.FindNode):
            nodes = tuple(c.info for c in self.table.closest(q.target, K))
            return krpc.Response(q.t, me, nodes=nodes, v=v)
        if isinstance(q, krpc.GetPeers):
            token = self.tokens.token_for(addr[0], now)
            values = tuple(self.store.get(q.info_hash, now, self.rng)) or None
            # nodes with the peers, as libtorrent answers: a lookup goes on past us to the
            # other nodes that should hold them (an announce made again must reach them)
            nodes = tuple(c.info for c in self.table.closest(q.info_hash, K))
            return krpc.Response(q.t, me, nodes=nodes, values=values, token=token, v=v)
        if not self.tokens.valid(q.token, addr[0], now):
            return krpc.Error(q.t, krpc.PROTOCOL_ERROR, "bad token", v)
        self.store.announce(q.info_hash, (addr[0], addr[1] if q.implied_port else q.port), now)
        return krpc.Response(q.t, me, v=v)

    def _on_answer(
        self, msg: krpc.Response | krpc.Error, addr: Address, now: float
    ) -> list[Datagram]:
        pending = self._pending.pop((addr, msg.t), None)
        self._fresh.pop((addr, msg.t), None)
        if pending is None:
            return []  # not an answer to a query of ours from that address: dropped
        search = pending.search
        if isinstance(msg, krpc.Error):
            if search is not None and not search.done:
                search.lookup.failed(addr)
                return self._advance(search, now)
            return []
        self.table.responded(msg.id, addr, now)
        if search is None or search.done:
            return []
        search.lookup.answered(addr, msg.id, msg.nodes, msg.values, msg.token)
        return self._advance(search, now)

    def _refresh(self, targets: list[tuple[bytes, int]], now: float) -> list[Datagram]:
        out: list[Datagram] = []
        for target, within in targets:
            if len(self._searches) < MAX_SEARCHES:
                search = self._search("refresh", target, within)
                out += self._advance(search, now)
        return out

    def _search(self, kind: str, target: bytes, within: int | None = None) -> Search:
        if len(target) != 20:
            raise ValueError("a DHT target is 20 bytes")
        get_peers = kind in ("get_peers", "announce")
        lookup = Lookup(target, get_peers=get_peers, own_id=self.id, within=within)
        for c in self.table.closest(target, K * 2):
            lookup.add(c.id, c.addr)
        search = Search(kind, target, lookup)
        self._searches.add(search)
        return search

    def _advance(self, search: Search, now: float) -> list[Datagram]:
        out: list[Datagram] = []
        lookup = search.lookup

        def query(t: bytes) -> krpc.Query:
            if lookup.get_peers:
                return krpc.GetPeers(t, self.id, search.target, self.version)
            return krpc.FindNode(t, self.id, search.target, self.version)

        for target in lookup.next_queries():
            addr, node_id = (
                (target.addr, target.id) if isinstance(target, NodeInfo) else (target, None)
            )
            sent = self._query(query, addr, node_id, search, now)
            if not sent:
                lookup.failed(addr)
            out += sent
        if lookup.done:
            search.done = True
            self._searches.discard(search)
            if search.kind == "announce" and search.announce_port is not None:
                for info, token in lookup.announce_targets():

                    def announce(t: bytes, token: bytes = token) -> krpc.Query:
                        port, implied = search.announce_port or 0, search.implied_port
                        return krpc.AnnouncePeer(
                            t, self.id, search.target, port, token, implied, self.version
                        )

                    out += self._query(announce, info.addr, info.id, None, now)
                    search.announced_to.append(info)
            if search.kind == "bootstrap":
                out += self._refresh(self.table.sparse_targets(now, self.rng), now)
            if search.kind != "refresh":
                self._finished.append(search)
        elif not out and not lookup.in_flight():
            # every candidate failed to send: nothing will ever move this search again
            search.done = True
            self._searches.discard(search)
            if search.kind != "refresh":
                self._finished.append(search)
        return out

    def _ping(self, t: bytes) -> krpc.Query:
        return krpc.Ping(t, self.id, self.version)

    def _query(
        self,
        build: Callable[[bytes], krpc.Query],
        addr: Address,
        node_id: bytes | None,
        search: Search | None,
        now: float,
    ) -> list[Datagram]:
        if len(self._pending) >= MAX_PENDING:
            return []
        for _ in range(4):
            self._next_t = (self._next_t + 1) & 0xFFFF
            t = self._next_t.to_bytes(2, "big")
            if (addr, t) not in self._pending:
                break
        else:
            return []
        self._pending[(addr, t)] = _Pending(now, node_id, search)
        if search is not None:
            self._fresh[(addr, t)] = None
        return [(krpc.encode(build(t)), addr)]
