"""Which metadata pieces (BEP 9) to ask which peer for, as pure data: the part of fetching a
magnet's info dictionary that decides, apart from the sockets (:mod:`swarm.metadata_fetch`).

One :class:`~swarm.wire.MetadataAssembler` per ``metadata_size`` the peers name, so that one
peer lying about the size cannot stall the honest ones; at most :data:`PIPELINE` pieces in
flight from each peer; who sent pieces of what, so a fetch can say from how many peers.

Metadata that does not hash: when one peer sent all of it, that peer is named to be banned.
When several did, nobody can tell which lied, and banning them all would ban the honest ones
too (a swarm with one liar could then never give us the metadata); so nobody is banned, and
the next round for that size is asked of one peer alone (the first that asks), so that a
second failure names its one sender. (libtorrent bans nobody for metadata that fails: its
``ut_metadata.cpp`` holds off every sender 5 to 30 s, 5 minutes when the metadata is one
piece, through ``failed_hash_check``, and asks again; BEP 9 leaves it open.)
"""

from __future__ import annotations

from collections.abc import Hashable

from swarm import wire
from swarm.errors import ProtocolError

__all__ = ["MAX_SIZES", "PIECE_TIMEOUT", "PIPELINE", "MetadataPlan"]

PIPELINE = 8
PIECE_TIMEOUT = 10.0
MAX_SIZES = 4
"""At most this many different ``metadata_size`` values are followed at once."""


class MetadataPlan:
    """Which metadata pieces to ask whom (pure; peers are any hashable key, times are given)."""

    def __init__(
        self,
        info_hash: bytes,
        *,
        pipeline: int = PIPELINE,
        timeout: float = PIECE_TIMEOUT,
        max_sizes: int = MAX_SIZES,
    ) -> None:
        self.info_hash = info_hash
        self.pipeline = pipeline
        self.timeout = timeout
        self.max_sizes = max_sizes
        self._assemblers: dict[int, wire.MetadataAssembler] = {}
        self._size_of: dict[Hashable, int] = {}
        self._asked: dict[Hashable, dict[int, float]] = {}
        self._senders: dict[int, set[Hashable]] = {}
        self._solo: dict[int, Hashable | None] = {}  # size -> the one peer of this round

    @property
    def peers(self) -> int:
        """Peers that have said they have the metadata (and its size)."""
        return len(self._size_of)

    def progress(self) -> tuple[int, int | None]:
        """(pieces in, pieces in all) of the size that is furthest along."""
        if not self._assemblers:
            return 0, None
        best = max(self._assemblers.values(), key=lambda a: a.have)
        return best.have, best.num_pieces

    def add_peer(self, peer: Hashable, metadata_size: int) -> None:
        """*peer* has the metadata, of *metadata_size* bytes. :class:`ProtocolError` for a size
        out of bounds, or a new size when :attr:`max_sizes` are followed already."""
        if metadata_size not in self._assemblers:
            if len(self._assemblers) >= self.max_sizes:
                raise ProtocolError(f"a {len(self._assemblers) + 1}th metadata size")
            asm = wire.MetadataAssembler(self.info_hash, metadata_size, timeout=self.timeout)
            self._assemblers[metadata_size] = asm
            self._senders[metadata_size] = set()
        self.remove_peer(peer)
        self._size_of[peer] = metadata_size
        self._asked[peer] = {}

    def remove_peer(self, peer: Hashable) -> None:
        """*peer* is gone: what it had in flight is free for others."""
        size = self._size_of.pop(peer, None)
        self._asked.pop(peer, None)
        if size is not None:
            self._assemblers[size].peer_gone(peer)
            if size in self._solo and self._solo[size] == peer:
                self._solo[size] = None  # the next peer to ask takes the round over

    def requests(self, peer: Hashable, now: float) -> list[wire.MetadataRequest]:
        """The requests to send *peer* now (up to :attr:`pipeline` in flight from it)."""
        size = self._size_of.get(peer)
        if size is None:
            return []
        if size in self._solo:
            if self._solo[size] is None:
                self._solo[size] = peer
            elif self._solo[size] != peer:
                return []
        asked = self._asked[peer]
        for piece in [p for p, at in asked.items() if now - at >= self.timeout]:
            del asked[piece]
        out = []
        while len(asked) < self.pipeline:
            req = self._assemblers[size].next_request(peer, now)
            if req is None:
                break
            asked[req.piece] = now
            out.append(req)
        return out

    def on_reject(self, peer: Hashable, message: wire.MetadataReject) -> None:
        size = self._size_of.get(peer)
        if size is not None:
            self._asked[peer].pop(message.piece, None)
            self._assemblers[size].on_reject(peer, message)

    def on_data(
        self, peer: Hashable, message: wire.MetadataData
    ) -> wire.MetadataComplete | wire.MetadataHashFailed | None:
        """A piece from *peer* (ignored from a peer that never said it has the metadata).
        :class:`ProtocolError` for a piece that does not fit the size the peer gave. On a
        hash failure the result's ``contributors`` are the peers to ban: the one sender, or
        none when several sent pieces (see the module's docstring)."""
        size = self._size_of.get(peer)
        if size is None:
            return None
        asm = self._assemblers[size]
        had = asm.have
        result = asm.on_data(peer, message)
        self._asked[peer].pop(message.piece, None)
        if asm.have > had or isinstance(result, wire.MetadataComplete):
            self._senders[size].add(peer)
        if isinstance(result, wire.MetadataHashFailed):
            self._senders[size].clear()
            for other, other_size in self._size_of.items():
                if other_size == size:
                    self._asked[other].clear()  # the assembler forgot what was in flight
            if len(result.contributors) == 1:
                for who in result.contributors:
                    self.remove_peer(who)
                return result
            # a fresh assembler: the one that failed would never ask these peers again
            self._assemblers[size] = wire.MetadataAssembler(
                self.info_hash, size, timeout=self.timeout
            )
            self._solo[size] = None
            return wire.MetadataHashFailed(frozenset())
        return result

    def contributors(self, metadata_size: int) -> int:
        """How many peers sent pieces of the metadata of *metadata_size* bytes."""
        return len(self._senders.get(metadata_size, ()))
