"""The peer store (BEP 5): who announced themselves for which info-hash, for get_peers.

An ``announce_peer`` (with a valid token) files the querier's address under the info-hash
with the time; a peer not announced again within :data:`PEER_TTL` (30 minutes; clients
re-announce every 15-30) is forgotten. Hard caps: :data:`MAX_PEERS` a torrent and
:data:`MAX_TORRENTS` torrents, the least recently announced dropped first. libtorrent allows
500 peers for each of 2,000 torrents (``dht_max_peers``, ``dht_max_torrents``) and answers
with up to 100 (``dht_max_peers_reply``); swarm keeps less, since a get_peers answer carries
at most :data:`REPLY_VALUES` anyway (so as not to amplify: see swarm.dht.node).
Both orders live in insertion-ordered dicts, so every operation is amortised O(1) beside the
sample it returns.
"""

from __future__ import annotations

import random

from swarm.dht.krpc import Address

__all__ = ["MAX_PEERS", "MAX_TORRENTS", "PEER_TTL", "REPLY_VALUES", "PeerStore"]

PEER_TTL = 30 * 60.0
MAX_PEERS = 100
MAX_TORRENTS = 1000
REPLY_VALUES = 10
"""Values in one answer: 10 compact peers are 80 bytes; with the K nodes sent beside them
(208 bytes: libtorrent sends both) an answer stays under 4 times its query's size, so that a
node is no amplifier. A lookup asks 8 nodes or more, each giving its own random 10."""


class PeerStore:
    """info_hash -> {address: last announced}, oldest first at every level."""

    def __init__(
        self,
        max_torrents: int = MAX_TORRENTS,
        max_peers: int = MAX_PEERS,
        ttl: float = PEER_TTL,
    ) -> None:
        self._torrents: dict[bytes, dict[Address, float]] = {}
        self._max_torrents = max_torrents
        self._max_peers = max_peers
        self._ttl = ttl

    def __len__(self) -> int:
        """The number of info-hashes with peers stored."""
        return len(self._torrents)

    def peer_count(self) -> int:
        return sum(len(p) for p in self._torrents.values())

    def announce(self, info_hash: bytes, addr: Address, now: float) -> None:
        """*addr* is a peer of *info_hash* as of *now*."""
        self.expire(now)
        peers = self._torrents.pop(info_hash, None)
        if peers is None:
            peers = {}
            while len(self._torrents) >= self._max_torrents:
                del self._torrents[next(iter(self._torrents))]
        self._torrents[info_hash] = peers  # now the most recently announced torrent
        peers.pop(addr, None)
        peers[addr] = now
        self._expire_peers(info_hash, peers, now)
        while len(peers) > self._max_peers:
            del peers[next(iter(peers))]

    def get(
        self, info_hash: bytes, now: float, rng: random.Random, n: int = REPLY_VALUES
    ) -> list[Address]:
        """Up to *n* live peers of *info_hash*, a random sample when there are more."""
        self.expire(now)
        peers = self._torrents.get(info_hash)
        if not peers:
            return []
        self._expire_peers(info_hash, peers, now)
        live = list(peers)
        return live if len(live) <= n else rng.sample(live, n)

    def expire(self, now: float) -> None:
        """Drop the torrents nobody has announced for in :data:`PEER_TTL` (a torrent's own
        stale peers go when it is next read or announced)."""
        cutoff = now - self._ttl
        while self._torrents:
            info_hash = next(iter(self._torrents))
            peers = self._torrents[info_hash]
            if peers and next(reversed(peers.values())) > cutoff:
                break
            del self._torrents[info_hash]

    def _expire_peers(self, info_hash: bytes, peers: dict[Address, float], now: float) -> None:
        cutoff = now - self._ttl
        while peers and next(iter(peers.values())) <= cutoff:
            del peers[next(iter(peers))]
        if not peers:
            del self._torrents[info_hash]
