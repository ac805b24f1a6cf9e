"""Which block to ask a peer for next: rarest first, finishing started pieces, end-game.

Pure and deterministic (the random source is passed in). The picker knows how many peers have
each piece, which pieces we have, and which 16 KiB blocks are requested from whom. Peers are
any hashable key.
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field

BLOCK_SIZE = 16 * 1024
RANDOM_FIRST = 4  # pieces picked at random before rarest-first takes over

Block = tuple[int, int, int]  # (piece index, begin, length)


@dataclass(slots=True)
class _Partial:
    """A piece being downloaded: which blocks are missing, asked for, or in hand."""

    nblocks: int
    requested: dict[int, set[Hashable]] = field(default_factory=dict)  # block -> peers
    received: set[int] = field(default_factory=set)

    def unrequested(self) -> Iterable[int]:
        for b in range(self.nblocks):
            if b not in self.received and b not in self.requested:
                yield b


class PiecePicker:
    """Block selection for one torrent."""

    def __init__(
        self,
        num_pieces: int,
        piece_length: int,
        total_length: int,
        rng: random.Random | None = None,
        block_size: int = BLOCK_SIZE,
    ) -> None:
        self.num_pieces = num_pieces
        self.piece_length = piece_length
        self.total_length = total_length
        self.block_size = block_size
        self.rng = rng or random.Random()
        self.availability = [0] * num_pieces
        self.have = [False] * num_pieces
        self.num_have = 0
        self.partial: dict[int, _Partial] = {}
        self.pending: set[int] = set()  # all blocks in hand, being hashed and written
        self.seeds = 0  # peers that have everything; counted apart to keep updates O(1)

    # -- what peers and we have ----------------------------------------------------------

    def set_have(self, index: int, value: bool = True) -> None:
        if self.have[index] != value:
            self.have[index] = value
            self.num_have += 1 if value else -1

    @property
    def complete(self) -> bool:
        return self.num_have == self.num_pieces

    def piece_size(self, index: int) -> int:
        if index == self.num_pieces - 1:
            return self.total_length - index * self.piece_length
        return self.piece_length

    def have_bytes(self) -> int:
        """Bytes of the pieces we have."""
        if self.num_have == self.num_pieces:
            return self.total_length
        n = self.num_have * self.piece_length
        last = self.num_pieces - 1
        if self.num_pieces and self.have[last]:
            n -= self.piece_length - self.piece_size(last)
        return n

    def _nblocks(self, index: int) -> int:
        return -(-self.piece_size(index) // self.block_size)

    def block_length(self, index: int, block: int) -> int:
        return min(self.block_size, self.piece_size(index) - block * self.block_size)

    def peer_bitfield(self, haves: list[bool], delta: int = 1) -> None:
        """A peer's bitfield arrived (delta=1) or the peer left (delta=-1)."""
        if all(haves):
            self.seeds += delta
            return
        avail = self.availability
        for i, h in enumerate(haves):
            if h:
                avail[i] += delta

    def peer_became_seed(self, haves: list[bool]) -> None:
        """A peer that was counted piece by piece now has everything: its pieces leave the
        availability counts and it counts as a seed. (Not through :meth:`peer_bitfield`, which
        would take a full bitfield for a seed leaving.)"""
        avail = self.availability
        for i, h in enumerate(haves):
            if h:
                avail[i] -= 1
        self.seeds += 1

    def peer_have(self, index: int) -> None:
        self.availability[index] += 1

    # -- picking -------------------------------------------------------------------------

    def wanted(self, index: int) -> bool:
        return not self.have[index] and index not in self.pending

    def interesting(self, peer_has: list[bool]) -> bool:
        """Whether a peer has anything we still want."""
        have = self.have
        return any(p and not h for p, h in zip(peer_has, have, strict=False))

    def pick(
        self, peer: Hashable, peer_has: list[bool], count: int, endgame: bool = True
    ) -> list[Block]:
        """Up to *count* blocks to request from *peer*, marking them requested."""
        out: list[Block] = []
        if count <= 0:
            return out
        # 1. Finish pieces that are started, most-complete first.
        for index in sorted(self.partial, key=self._partial_order):
            if peer_has[index]:
                self._take(index, peer, count, out)
                if len(out) >= count:
                    return out
        # 2. Start new pieces: random at first, then rarest first.
        while len(out) < count:
            new = self._new_piece(peer_has)
            if new is None:
                break
            self.partial[new] = _Partial(self._nblocks(new))
            self._take(new, peer, count, out)
        # 3. End-game: nothing left unrequested, ask for blocks others are fetching.
        if len(out) < count and endgame and self.in_endgame:
            self._endgame(peer, peer_has, count, out)
        return out

    def _partial_order(self, index: int) -> tuple[int, int]:
        p = self.partial[index]
        return (-(len(p.received) + len(p.requested)), index)

    def _take(self, index: int, peer: Hashable, count: int, out: list[Block]) -> None:
        p = self.partial[index]
        for b in p.unrequested():
            p.requested[b] = {peer}
            out.append((index, b * self.block_size, self.block_length(index, b)))
            if len(out) >= count:
                return

    def _new_piece(self, peer_has: list[bool]) -> int | None:
        partial = self.partial
        candidates = [
            i
            for i in range(self.num_pieces)
            if peer_has[i] and not self.have[i] and i not in partial and i not in self.pending
        ]
        if not candidates:
            return None
        if self.num_have < RANDOM_FIRST:
            # Random first pieces spread the swarm and let us trade sooner.
            return self.rng.choice(candidates)
        avail = self.availability
        rarest = min(avail[i] for i in candidates)
        best = [i for i in candidates if avail[i] == rarest]
        return self.rng.choice(best)

    def _endgame(self, peer: Hashable, peer_has: list[bool], count: int, out: list[Block]) -> None:
        for index, p in self.partial.items():
            if not peer_has[index]:
                continue
            for b, peers in p.requested.items():
                if peer not in peers and len(peers) < 3:
                    peers.add(peer)
                    out.append((index, b * self.block_size, self.block_length(index, b)))
                    if len(out) >= count:
                        return

    @property
    def in_endgame(self) -> bool:
        """No block is left that nobody has been asked for."""
        if self.num_have + len(self.pending) + len(self.partial) < self.num_pieces:
            return False
        return all(not any(True for _ in p.unrequested()) for p in self.partial.values())

    # -- outcomes ------------------------------------------------------------------------

    def block_received(self, peer: Hashable, index: int, begin: int) -> tuple[bool, set[Hashable]]:
        """A block arrived. Returns (accepted, other peers to cancel it with); accepted is
        False for a block we never asked for or already have."""
        p = self.partial.get(index)
        if p is None or begin % self.block_size:
            return False, set()
        b = begin // self.block_size
        if b >= p.nblocks or b in p.received:
            return False, set()
        peers = p.requested.pop(b, set())
        p.received.add(b)
        peers.discard(peer)
        return True, peers

    def piece_full(self, index: int) -> bool:
        p = self.partial.get(index)
        return p is not None and len(p.received) == p.nblocks

    def start_verify(self, index: int) -> None:
        """Every block is in hand: the piece goes to hashing."""
        del self.partial[index]
        self.pending.add(index)

    def piece_verified(self, index: int) -> None:
        self.pending.discard(index)
        self.set_have(index)

    def piece_failed(self, index: int) -> None:
        """The hash did not match: every block must be fetched again."""
        self.pending.discard(index)
        self.partial.pop(index, None)

    def release(self, peer: Hashable, blocks: Iterable[Block]) -> None:
        """Blocks asked of *peer* that will not come (choke, reject, disconnect, snub)."""
        for index, begin, _length in blocks:
            p = self.partial.get(index)
            if p is None:
                continue
            b = begin // self.block_size
            peers = p.requested.get(b)
            if peers is None:
                continue
            peers.discard(peer)
            if not peers:
                del p.requested[b]
            if not p.requested and not p.received:
                del self.partial[index]
