"""The iterative lookup of BEP 5 (Kademlia's node lookup) as a state machine, no I/O.

A :class:`Lookup` for a target id keeps the nodes it has heard of, nearest first, and says
which to query next (:meth:`Lookup.next_queries`): the nearest not yet asked, :data:`ALPHA`
at a time. The caller sends the queries (``find_node`` or ``get_peers``) and reports each
answer (:meth:`Lookup.answered`, with the ``nodes``, ``values`` and ``token`` it carried) or
its absence (:meth:`Lookup.failed`, on the caller's timeout). The lookup is done when the
:data:`K` nearest nodes not known to be dead have all answered (so no nearer node is left to
ask), or when nobody is left to ask. A get_peers lookup collects the peers (``values``) and
the tokens of the nearest nodes that answered: the ones to ``announce_peer`` to.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass

from swarm.dht.krpc import Address, NodeInfo

__all__ = ["ALPHA", "K", "MAX_CANDIDATES", "MAX_PEERS", "Lookup"]

ALPHA = 3
K = 8
MAX_CANDIDATES = 64
"""Nodes kept in view (nearest first); more than K, so that dead nodes among the nearest
leave live ones behind them to ask, and bounded, so that answers cannot grow the lookup."""
MAX_PEERS = 1000
"""Peers (values) one get_peers lookup collects at most."""

_FAR = 1 << 160  # a bootstrap address whose id we do not know yet: the farthest of all
_NEW, _ASKED, _ANSWERED, _FAILED, _SLOW = range(5)


@dataclass(slots=True, eq=False)
class _Candidate:
    addr: Address
    id: bytes | None
    key: int
    state: int = _NEW
    token: bytes | None = None


def _key(c: _Candidate) -> int:
    return c.key


class Lookup:
    """One find_node or get_peers lookup of *target* (a node id or an info-hash).

    *within*: a table refresh, done as soon as K nodes that share that many leading bits with
    the target have answered (they fill the bucket; the very nearest do not matter)."""

    def __init__(
        self,
        target: bytes,
        *,
        get_peers: bool,
        own_id: bytes | None = None,
        k: int = K,
        alpha: int = ALPHA,
        within: int | None = None,
    ) -> None:
        self.target = target
        self.get_peers = get_peers
        self._target = int.from_bytes(target, "big")
        self._own_id = own_id
        self._k = k
        self._alpha = alpha
        self._by_addr: dict[Address, _Candidate] = {}
        self._order: list[_Candidate] = []  # nearest first
        self._counts = [0, 0, 0, 0, 0]  # candidates in each state
        self._peers: dict[Address, None] = {}
        self._within = None if within is None else 1 << (160 - within)
        self._answered_within = 0
        self.queries = 0
        """Queries this lookup has asked for so far."""

    def add(self, node_id: bytes | None, addr: Address) -> None:
        """A node to consider (from the routing table, an answer, or a bootstrap address whose
        id is unknown: None)."""
        if addr in self._by_addr or (node_id is not None and node_id == self._own_id):
            return
        key = _FAR if node_id is None else int.from_bytes(node_id, "big") ^ self._target
        if len(self._order) >= MAX_CANDIDATES and key >= self._order[-1].key:
            return
        c = _Candidate(addr, node_id, key)
        self._by_addr[addr] = c
        bisect.insort(self._order, c, key=_key)
        self._counts[_NEW] += 1
        if len(self._order) > MAX_CANDIDATES:
            farthest = self._order.pop()
            del self._by_addr[farthest.addr]
            self._counts[farthest.state] -= 1

    def _set(self, c: _Candidate, state: int) -> None:
        self._counts[c.state] -= 1
        self._counts[state] += 1
        c.state = state

    def _nearest(self) -> list[_Candidate]:
        out = []
        for c in self._order:
            if c.state != _FAILED:
                out.append(c)
                if len(out) == self._k:
                    break
        return out

    @property
    def done(self) -> bool:
        if not self._counts[_NEW] and not self._counts[_ASKED] and not self._counts[_SLOW]:
            return True  # nobody left to ask or to wait for
        if self._within is not None and self._answered_within >= self._k:
            return True
        return self._nearest_answered(self._nearest())

    def _nearest_answered(self, nearest: list[_Candidate]) -> bool:
        return all(c.state == _ANSWERED for c in nearest)

    def tally(self) -> dict[str, int]:
        """How many candidates are in each state (for the logs)."""
        names = ("new", "asked", "answered", "failed", "slow")
        return dict(zip(names, self._counts, strict=True))

    def in_flight(self) -> int:
        """Queries out and not yet given up on, slow ones included."""
        return self._counts[_ASKED] + self._counts[_SLOW]

    def next_queries(self) -> list[NodeInfo | Address]:
        """The nodes to query now (marked asked): a :class:`NodeInfo`, or an address alone for
        a node whose id is not known yet. Empty when the lookup is done or must wait."""
        room = self._alpha - self._counts[_ASKED]
        if room <= 0 or not self._counts[_NEW]:
            return []
        if self._within is not None and self._answered_within >= self._k:
            return []
        nearest = self._nearest()
        if self._nearest_answered(nearest):
            return []
        out: list[NodeInfo | Address] = []
        for c in nearest:
            if room <= 0:
                break
            if c.state == _NEW:
                self._set(c, _ASKED)
                room -= 1
                out.append(c.addr if c.id is None else NodeInfo(c.id, c.addr))
        self.queries += len(out)
        return out

    def answered(
        self,
        addr: Address,
        node_id: bytes,
        nodes: tuple[NodeInfo, ...] | None = None,
        values: tuple[Address, ...] | None = None,
        token: bytes | None = None,
    ) -> None:
        """The node at *addr* answered as *node_id*, naming *nodes* and *values*."""
        c = self._by_addr.get(addr)
        if c is None or c.state not in (_ASKED, _SLOW):
            return
        self._set(c, _ANSWERED)
        c.token = token
        if c.id != node_id:  # a bootstrap address, or a node that named itself anew
            self._order.remove(c)
            c.id, c.key = node_id, int.from_bytes(node_id, "big") ^ self._target
            bisect.insort(self._order, c, key=_key)
        if self._within is not None and c.key < self._within:
            self._answered_within += 1
        for n in nodes or ():
            self.add(n.id, n.addr)
        if self.get_peers:
            for peer in values or ():
                if len(self._peers) >= MAX_PEERS:
                    break
                self._peers[peer] = None

    def failed(self, addr: Address) -> None:
        """The query to *addr* timed out or was refused."""
        c = self._by_addr.get(addr)
        if c is not None and c.state in (_ASKED, _SLOW):
            self._set(c, _FAILED)

    def slow(self, addr: Address) -> None:
        """The query to *addr* is taking long (the caller's short timeout): it stops holding
        one of the alpha slots, so the next node is asked meanwhile; its answer still counts
        if it comes before :meth:`failed` (libtorrent's "short timeout")."""
        c = self._by_addr.get(addr)
        if c is not None and c.state == _ASKED:
            self._set(c, _SLOW)

    @property
    def peers(self) -> list[Address]:
        """The peers (values) collected so far, in the order first heard."""
        return list(self._peers)

    def closest(self) -> list[NodeInfo]:
        """The nearest nodes that answered (up to K), nearest first."""
        return [NodeInfo(c.id, c.addr) for c in self._answered() if c.id is not None]

    def announce_targets(self) -> list[tuple[NodeInfo, bytes]]:
        """The nearest nodes that answered with a token (up to K), and their tokens: where an
        ``announce_peer`` goes once the lookup is done."""
        return [
            (NodeInfo(c.id, c.addr), c.token)
            for c in self._answered()
            if c.id is not None and c.token is not None
        ]

    def missed(self) -> int:
        """Nodes that never answered (timed out, or refused) among those as near the target as
        the nearest K that answered (all of them while fewer than K answered): the nodes an
        announce after this lookup should have reached and did not (a node that was only
        slow to answer, a host busy for a few seconds, is among them)."""
        answered = self._answered()
        if len(answered) < self._k:
            return self._counts[_FAILED]
        edge = answered[-1].key
        return sum(1 for c in self._order if c.key < edge and c.state == _FAILED)

    def _answered(self) -> list[_Candidate]:
        return [c for c in self._order if c.state == _ANSWERED][: self._k]
