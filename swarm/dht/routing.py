"""The DHT routing table (BEP 5): K-buckets over the 160-bit id space, split only on our own id.

Bucket ``i`` of ``n`` holds the nodes whose id shares exactly ``i`` leading bits with ours;
the last bucket holds every node that shares ``n - 1`` bits or more, so it is the only one
whose range covers our own id and the only one that may split (BEP 5). A bucket holds
:data:`K` nodes that have answered one of our queries; nodes that have only queried us, or
that a full bucket has no room for, wait in the bucket's replacement cache (newest kept)
until a bad node leaves a slot and the candidate has answered a ping.

Node states (BEP 5): *good* when it answered us within 15 minutes, or answered us once and
queried us within 15 minutes; *bad* after :data:`MAX_FAILS` failed queries in a row;
*questionable* otherwise. Pure: every method takes ``now``; a refresh id comes from the
caller's ``random.Random``.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import chain

from swarm.dht.krpc import Address, NodeInfo

__all__ = [
    "GOOD_FOR",
    "ID_BITS",
    "K",
    "MAX_FAILS",
    "MAX_NODES",
    "REFRESH_AFTER",
    "REPLACEMENTS",
    "Contact",
    "RoutingTable",
    "distance",
]

ID_BITS = 160
K = 8
GOOD_FOR = 15 * 60.0
REFRESH_AFTER = 15 * 60.0
SPARSE = K
MAX_FAILS = 2
"""BEP 5: "try once more before discarding the node": two failures in a row make it bad."""
REPLACEMENTS = 8
"""Candidates kept per bucket (the newest; libtorrent keeps as many as the bucket holds)."""
MAX_NODES = 1000
"""Hard cap on the table (not counting candidates). A table in a DHT of millions holds some
20 buckets, ~160 nodes; only ids crafted close to ours could fill more."""


def distance(a: bytes, b: bytes) -> int:
    """XOR distance of two ids as an unsigned integer (BEP 5)."""
    return int.from_bytes(a, "big") ^ int.from_bytes(b, "big")


@dataclass(slots=True)
class Contact:
    """A node in the table or a bucket's replacement cache."""

    id: bytes
    addr: Address
    key: int
    last_response: float | None = None
    last_query: float | None = None
    fails: int = 0
    pinged: float = float("-inf")

    def good(self, now: float) -> bool:
        if self.fails >= MAX_FAILS or self.last_response is None:
            return False
        if now - self.last_response < GOOD_FOR:
            return True
        return self.last_query is not None and now - self.last_query < GOOD_FOR

    def bad(self) -> bool:
        return self.fails >= MAX_FAILS

    @property
    def info(self) -> NodeInfo:
        return NodeInfo(self.id, self.addr)


@dataclass(slots=True)
class _Bucket:
    nodes: dict[bytes, Contact]
    replacements: dict[bytes, Contact]
    changed: float


class RoutingTable:
    """Our view of the DHT, nearest to our own id in the most detail."""

    def __init__(self, own_id: bytes, now: float, max_nodes: int = MAX_NODES) -> None:
        if len(own_id) != 20:
            raise ValueError("a node id is 20 bytes")
        self.own_id = own_id
        self._own = int.from_bytes(own_id, "big")
        self._buckets = [_Bucket({}, {}, now)]
        self._by_addr: dict[Address, bytes] = {}
        self._count = 0
        self._max_nodes = max_nodes

    def __len__(self) -> int:
        return self._count

    @property
    def bucket_count(self) -> int:
        return len(self._buckets)

    def _index(self, key: int) -> int:
        shared = ID_BITS - (key ^ self._own).bit_length()
        return min(shared, len(self._buckets) - 1)

    def get(self, node_id: bytes) -> Contact | None:
        """The table's entry for *node_id* (not a replacement candidate), if any."""
        if len(node_id) != 20:
            return None
        return self._buckets[self._index(int.from_bytes(node_id, "big"))].nodes.get(node_id)

    def contacts(self) -> Iterator[Contact]:
        for bucket in self._buckets:
            yield from bucket.nodes.values()

    def responded(self, node_id: bytes, addr: Address, now: float) -> bool:
        """*node_id* at *addr* answered a query of ours: refresh it or take it in. Returns
        whether it is in the table now (else it waits as a replacement candidate)."""
        if node_id == self.own_id:
            return False
        key = int.from_bytes(node_id, "big")
        bucket = self._buckets[self._index(key)]
        node = bucket.nodes.get(node_id)
        if node is not None:
            if node.addr != addr:
                return False  # the id answered from elsewhere: keep the address we know
            node.last_response, node.fails = now, 0
            bucket.changed = now
            return True
        if self._by_addr.get(addr, node_id) != node_id:
            self._drop_addr(addr)  # the address now speaks for another id
        candidate = bucket.replacements.pop(node_id, None) or Contact(node_id, addr, key)
        candidate.addr, candidate.last_response, candidate.fails = addr, now, 0
        return self._insert(candidate, now)

    def queried(self, node_id: bytes, addr: Address, now: float) -> bool:
        """*node_id* at *addr* sent us a query. Returns True when it is unknown and worth a
        ping (BEP 5 lets only nodes that answer us into the table)."""
        if node_id == self.own_id:
            return False
        key = int.from_bytes(node_id, "big")
        bucket = self._buckets[self._index(key)]
        node = bucket.nodes.get(node_id)
        if node is not None:
            if node.addr == addr:
                node.last_query = now
            return False
        held = self._at(addr)
        if held is not None:
            if held.id != node_id:
                # the address speaks for a new id (libtorrent takes one once it learns its
                # external address, BEP 42): the old entry turns questionable, so to_ping asks
                # it soon, and the answer (responded) puts the new id in its place
                held.last_response = held.last_query = None
            return False
        known = bucket.replacements.get(node_id)
        if known is not None and known.addr == addr:
            known.last_query = now
            return False  # pinged when first heard; to_ping tries it again in time
        candidate = Contact(node_id, addr, key, last_query=now)
        self._remember(bucket, candidate)
        if self._fits(bucket, key):
            candidate.pinged = now
            return True
        return False

    def failed(self, node_id: bytes, addr: Address) -> None:
        """A query of ours to *node_id* went unanswered; after :data:`MAX_FAILS` in a row
        the node is bad, and the freshest candidate that has answered us takes its slot."""
        bucket = self._buckets[self._index(int.from_bytes(node_id, "big"))]
        node = bucket.nodes.get(node_id)
        if node is None or node.addr != addr:
            bucket.replacements.pop(node_id, None)
            return
        node.fails += 1
        if node.bad():
            for cid in reversed(bucket.replacements):
                candidate = bucket.replacements[cid]
                if candidate.last_response is not None:
                    del bucket.replacements[cid]
                    self._remove(bucket, node)
                    self._add(bucket, candidate, candidate.last_response)
                    return

    def closest(self, target: bytes, k: int = K) -> list[Contact]:
        """The *k* table nodes nearest *target*, nearest first; bad nodes left out.

        Every answer to find_node or get_peers asks this, so it reads buckets nearest first
        and stops at *k* nodes, rather than sort the table. Bucket *i* holds the nodes that
        share exactly *i* leading bits with our id (the last bucket: at least that many).
        With *s* the bits the target shares with our id: the target's own bucket is nearest;
        a bucket *i* < *s* is at distance 2^(159 - i) or more, each farther than the next;
        a deeper bucket *j* (*s* < *j* < last) comes before all those deeper than it when
        our id and the target differ in bit *j*, after them when they agree."""
        key = int.from_bytes(target, "big")
        at, last = self._index(key), len(self._buckets) - 1
        apart = key ^ self._own
        before: list[int] = []
        after: list[int] = []
        for j in range(at + 1, last):
            (before if apart >> (ID_BITS - 1 - j) & 1 else after).append(j)
        deeper = (last,) if at < last else ()
        order = chain((at,), before, deeper, reversed(after), range(at - 1, -1, -1))
        out: list[Contact] = []
        for i in order:
            ranked = [n for n in self._buckets[i].nodes.values() if n.fails < MAX_FAILS]
            ranked.sort(key=lambda n: n.key ^ key)
            out += ranked
            if len(out) >= k:
                break
        return out[:k]

    def to_ping(self, now: float, interval: float) -> list[Contact]:
        """At most one node a bucket to ping now: the least recently seen questionable one, or
        else, where a slot is free or held by a bad node, the newest candidate. A node is not
        named twice within *interval* seconds."""
        out = []
        last = self._buckets[-1]
        for bucket in self._buckets:
            pick: Contact | None = None
            has_bad = False
            for n in bucket.nodes.values():  # one plain pass: this runs on every tick
                if n.fails >= MAX_FAILS:
                    has_bad = True
                elif now - n.pinged >= interval and not n.good(now):
                    if pick is None or (n.last_response or 0.0) < (pick.last_response or 0.0):
                        pick = n
            room = len(bucket.nodes) < K or has_bad
            if pick is None and bucket.replacements and (room or bucket is last):
                fresh = [c for c in bucket.replacements.values() if now - c.pinged >= interval]
                pick = fresh[-1] if fresh else None
            if pick is not None:
                pick.pinged = now
                out.append(pick)
        return out

    def refresh_targets(self, now: float, rng: random.Random) -> list[tuple[bytes, int]]:
        """Random ids to look up (find_node), one in the range of each bucket unchanged for
        :data:`REFRESH_AFTER` seconds, with the leading bits that range shares with the id;
        those buckets count as changed now."""
        out = []
        last = len(self._buckets) - 1
        for i, bucket in enumerate(self._buckets):
            if now - bucket.changed >= REFRESH_AFTER:
                bucket.changed = now
                out.append((self._random_id(i, rng), i if i == last else i + 1))
        return out

    def sparse_targets(self, now: float, rng: random.Random) -> list[tuple[bytes, int]]:
        """The Kademlia join: a random id at each distance farther than our nearest neighbour
        (sharing 0, 1, ... fewer leading bits with us than it does) where the table has fewer
        than K nodes; looking those up fills the rest of the table."""
        shared = [ID_BITS - (n.key ^ self._own).bit_length() for n in self.contacts()]
        if not shared:
            return []
        counts = [0] * ID_BITS
        for depth in shared:
            counts[min(depth, ID_BITS - 1)] += 1
        out = []
        for depth in range(min(max(shared), ID_BITS - 1)):
            if counts[depth] < SPARSE:
                self._buckets[min(depth, len(self._buckets) - 1)].changed = now
                out.append((self._random_id(depth, rng, differ=True), depth + 1))
        return out

    def _random_id(self, index: int, rng: random.Random, differ: bool = False) -> bytes:
        # share `index` leading bits with our id; for all but the last bucket, differ on the next
        low = ID_BITS - index
        prefix = (self._own >> low) << low
        rest = rng.getrandbits(low) if low else 0
        if differ or index < len(self._buckets) - 1:
            rest = (rest | (1 << (low - 1))) ^ (self._own & (1 << (low - 1)))
        return (prefix | rest).to_bytes(20, "big")

    def _fits(self, bucket: _Bucket, key: int) -> bool:
        """Whether a node of id *key* would find a place in the table now: its bucket has a
        free or bad slot, or it is ours and would split so that the node finds room."""
        if len(bucket.nodes) < K or any(n.bad() for n in bucket.nodes.values()):
            return True
        if bucket is not self._buckets[-1] or len(self._buckets) >= ID_BITS:
            return False
        depth = ID_BITS - (key ^ self._own).bit_length()
        same = sum(
            ID_BITS - (n.key ^ self._own).bit_length() == depth for n in bucket.nodes.values()
        )
        return same < K

    def _remember(self, bucket: _Bucket, candidate: Contact) -> None:
        bucket.replacements.pop(candidate.id, None)
        bucket.replacements[candidate.id] = candidate
        while len(bucket.replacements) > REPLACEMENTS:
            del bucket.replacements[next(iter(bucket.replacements))]

    def _insert(self, node: Contact, now: float) -> bool:
        while True:
            bucket = self._buckets[self._index(node.key)]
            if len(bucket.nodes) < K and self._count < self._max_nodes:
                self._add(bucket, node, now)
                return True
            bad = next((n for n in bucket.nodes.values() if n.bad()), None)
            if bad is not None:
                self._remove(bucket, bad)
                self._add(bucket, node, now)
                return True
            if bucket is not self._buckets[-1] or len(self._buckets) >= ID_BITS:
                self._remember(bucket, node)
                return False
            if self._count >= self._max_nodes:
                self._remember(bucket, node)
                return False
            self._split()

    def _split(self) -> None:
        last = self._buckets[-1]
        depth = len(self._buckets) - 1
        near = _Bucket({}, {}, last.changed)
        self._buckets.append(near)
        for table in ("nodes", "replacements"):
            old: dict[bytes, Contact] = getattr(last, table)
            for node_id in [i for i, n in old.items() if self._index(n.key) > depth]:
                getattr(near, table)[node_id] = old.pop(node_id)

    def _add(self, bucket: _Bucket, node: Contact, now: float) -> None:
        bucket.nodes[node.id] = node
        self._by_addr[node.addr] = node.id
        self._count += 1
        bucket.changed = now

    def _remove(self, bucket: _Bucket, node: Contact) -> None:
        del bucket.nodes[node.id]
        if self._by_addr.get(node.addr) == node.id:
            del self._by_addr[node.addr]
        self._count -= 1

    def _at(self, addr: Address) -> Contact | None:
        """The table's node at *addr*, if any."""
        node_id = self._by_addr.get(addr)
        return None if node_id is None else self.get(node_id)

    def _drop_addr(self, addr: Address) -> None:
        node_id = self._by_addr[addr]
        bucket = self._buckets[self._index(int.from_bytes(node_id, "big"))]
        node = bucket.nodes.get(node_id)
        if node is not None:
            self._remove(bucket, node)
