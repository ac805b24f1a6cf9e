"""Which block to ask a peer for next: rarest first, finishing started pieces, end-game.

Pure and deterministic (the random source is passed in); peers are any hashable key. It knows
how many peers have each piece, which pieces we have, and which 16 KiB blocks are asked of whom.

Cost. The *free* pieces (we lack them; not started, not being hashed) sit in one list ordered
by availability, in buckets (libtorrent's layout), each bucket in random order. A have, a
bitfield bit or a peer leaving moves a piece one bucket in O(1); a piece entering or leaving the
list costs O(buckets) (at most the peer count). A new piece comes from the rarest bucket holding
a piece the peer has: O(1) for a seed (the common case: the first random probe hits); about 1/d
reads for a peer with a share d of that bucket; worst, a sparse peer whose rarest wanted piece
lies above many free pieces it lacks: O(those), read in C-speed chunks. Bucket 0 (pieces that no
counted peer has) is skipped for a ``peer_has`` list counted by :meth:`peer_bitfield`.
:meth:`interesting` reads the list to the first hit: O(1) for a seed, O(pieces we lack) at
worst. Started pieces with blocks nobody was asked for are kept apart: :meth:`pick` sorts only
those and :attr:`in_endgame` is O(1).
"""

from __future__ import annotations

import random
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from itertools import chain, compress

BLOCK_SIZE = 16 * 1024
RANDOM_FIRST = 4  # pieces picked at random before rarest-first takes over
PROBES = 4  # random tries in a bucket before reading it in order from a random point
_CHUNK = 32  # first chunk read when scanning a bucket; doubles up to _CHUNK_MAX
_CHUNK_MAX = 4096

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

    def open(self) -> bool:
        """Whether some block is neither in hand nor asked of anyone (the two are apart)."""
        return len(self.received) + len(self.requested) < self.nblocks


class PiecePicker:
    """Block selection for one torrent. Others read ``availability``, ``seeds``, ``have``,
    ``num_have``, ``partial`` and ``pending``; change them only through the methods."""

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
        # Free pieces ordered by availability: bucket a is _order[_start[a]:_start[a + 1]],
        # and _start[-1] == len(_order). _pos[i] is i's place in _order, -1 if not free.
        self._order = list(range(num_pieces))
        self._pos = list(range(num_pieces))
        self._start = [0, num_pieces]
        self._open: set[int] = set()  # partial pieces with a block nobody was asked for
        # Lists counted piece by piece, by identity (held here, so no id is reused), and times:
        # every piece such a list has is counted, so none of them is in bucket 0.
        self._counted: dict[int, tuple[list[bool], int]] = {}
        self.freed = 0  # times a piece or block became free to ask for (RequestPolicy.fill)

    # -- what peers and we have ----------------------------------------------------------

    def set_have(self, index: int, value: bool = True) -> None:
        if self.have[index] != value:
            self.have[index] = value
            self.num_have += 1 if value else -1
            self._sync(index)

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
        """A peer's bitfield arrived (delta=1) or the peer left (delta=-1).

        A list counted piece by piece is known by identity: :meth:`pick` trusts every piece it
        has is counted, so keep it in step with :meth:`peer_have` and uncount the same list."""
        if all(haves):
            self.seeds += delta
            return
        self._count_list(haves, delta)
        step = self._up if delta > 0 else self._down
        for i in list(compress(range(len(haves)), haves)) * abs(delta):
            step(i)

    def peer_became_seed(self, haves: list[bool]) -> None:
        """A peer counted piece by piece now has everything: its pieces leave the counts and it
        counts as a seed (not :meth:`peer_bitfield`, which takes a full one for a seed leaving)."""
        self._count_list(haves, -1)
        for i in compress(range(len(haves)), haves):
            self._down(i)
        self.seeds += 1

    def peer_have(self, index: int) -> None:
        self._up(index)

    def _count_list(self, haves: list[bool], delta: int) -> None:
        key = id(haves)  # a list uncounted unknown was counted by peer_have alone: ignored
        n = self._counted.pop(key, (haves, 0))[1] + delta
        if n > 0:
            self._counted[key] = (haves, n)

    # -- the ordered free list -----------------------------------------------------------

    def _up(self, i: int) -> None:
        a = self.availability[i]
        self.availability[i] = a + 1
        p = self._pos[i]
        if p < 0 or a < 0:  # not free, or below zero (a caller's slip: sorts as zero)
            return
        start = self._start
        if a + 2 == len(start):
            start.append(start[-1])
        start[a + 1] -= 1  # the bucket above takes the last slot of a
        self._swap(p, start[a + 1])
        self._scatter(start[a + 1], start[a + 1], start[a + 2])

    def _down(self, i: int) -> None:
        a = self.availability[i]
        self.availability[i] = a - 1
        p = self._pos[i]
        if p < 0 or a <= 0:
            return
        start = self._start
        start[a] += 1  # the bucket below takes the first slot of a
        self._swap(p, start[a] - 1)
        self._scatter(start[a] - 1, start[a - 1], start[a])
        self._trim()

    def _swap(self, p: int, q: int) -> None:
        order, pos = self._order, self._pos
        i, j = order[p], order[q]
        order[p], order[q], pos[i], pos[j] = j, i, q, p

    def _scatter(self, p: int, lo: int, hi: int) -> None:
        """Swap _order[p] with a random piece of _order[lo:hi]: a bucket keeps no runs of one
        peer's pieces (as counting a bitfield leaves) for a scan to read through."""
        self._swap(p, lo + int(self.rng.random() * (hi - lo)))

    def _trim(self) -> None:
        while len(self._start) > 2 and self._start[-2] == self._start[-1]:
            self._start.pop()

    def _sync(self, i: int) -> None:
        """Put piece *i* in the free list or take it out, as its state now says."""
        free = not self.have[i] and i not in self.partial and i not in self.pending
        if free != (self._pos[i] >= 0):
            (self._insert if free else self._remove)(i)

    def _insert(self, i: int) -> None:
        self.freed += 1
        order, pos, start = self._order, self._pos, self._start
        k = max(self.availability[i], 0)
        while len(start) - 2 < k:
            start.append(start[-1])
        order.append(i)
        hole = len(order) - 1
        start[-1] = len(order)
        # The hole travels down from the end: each bucket above k gives it its first piece.
        for b in range(len(start) - 2, k, -1):
            s = start[b]
            if s != hole:
                j = order[s]
                order[hole], pos[j] = j, hole
                hole = s
            start[b] = s + 1
        order[hole], pos[i] = i, hole
        self._scatter(hole, start[k], hole + 1)

    def _remove(self, i: int) -> None:
        order, pos, start = self._order, self._pos, self._start
        k = max(self.availability[i], 0)
        hole = pos[i]
        # The hole travels up to the end: each bucket from k gives its last piece to it.
        for b in range(k, len(start) - 1):
            last = start[b + 1] - 1
            if last != hole:
                j = order[last]
                order[hole], pos[j] = j, hole
                hole = last
            start[b + 1] = last
        order.pop()
        pos[i] = -1
        self._trim()

    def _scan(self, peer_has: list[bool], lo: int, hi: int) -> int | None:
        """The first piece in _order[lo:hi] the peer has, read in growing chunks."""
        order, get, step = self._order, peer_has.__getitem__, _CHUNK
        while lo < hi:
            mid = min(hi, lo + step)
            found = next(filter(get, order[lo:mid]), None)
            if found is not None:
                return found
            lo, step = mid, min(step * 2, _CHUNK_MAX)
        return None

    def _choose(self, peer_has: list[bool], lo: int, hi: int) -> int | None:
        """A random piece of _order[lo:hi] the peer has: uniform if a probe hits (always for a
        seed), else the first after a random point (likelier after a run it lacks)."""
        n = hi - lo
        if n <= 0:
            return None
        order, rand = self._order, self.rng.randrange
        for _ in range(min(PROBES, n)):
            i = order[lo + rand(n)]
            if peer_has[i]:
                return i
        mid = lo + rand(n)
        found = self._scan(peer_has, mid, hi)
        return found if found is not None else self._scan(peer_has, lo, mid)

    # -- picking -------------------------------------------------------------------------

    def wanted(self, index: int) -> bool:
        return not self.have[index] and index not in self.pending

    def interesting(self, peer_has: list[bool]) -> bool:
        """Whether a peer has anything we still want."""
        if len(peer_has) < self.num_pieces:  # not the torrent's shape (yet): compare as is
            return any(p and not h for p, h in zip(peer_has, self.have, strict=False))
        lo = self._start[1] if id(peer_has) in self._counted else 0
        if self._scan(peer_has, lo, len(self._order)) is not None:
            return True
        have = self.have
        return any(peer_has[i] and not have[i] for i in chain(self.partial, self.pending))

    def pick(
        self, peer: Hashable, peer_has: list[bool], count: int, endgame: bool = True
    ) -> list[Block]:
        """Up to *count* blocks to request from *peer*, marking them requested."""
        out: list[Block] = []
        if count <= 0:
            return out
        # 1. Finish pieces that are started, most-complete first (those with blocks unasked).
        for index in sorted(self._open, key=self._partial_order):
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
            self._remove(new)
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
                break
        self._mark_open(index, p)

    def _mark_open(self, index: int, p: _Partial) -> None:
        (self._open.add if p.open() else self._open.discard)(index)

    def _new_piece(self, peer_has: list[bool]) -> int | None:
        start = self._start
        first = 1 if id(peer_has) in self._counted else 0
        if self.num_have < RANDOM_FIRST:
            # Random first pieces spread the swarm and let us trade sooner.
            return self._choose(peer_has, start[first], start[-1])
        for b in range(first, len(start) - 1):
            found = self._choose(peer_has, start[b], start[b + 1])
            if found is not None:
                return found
        return None

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
        started = self.num_have + len(self.pending) + len(self.partial)
        return started >= self.num_pieces and not self._open

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
        self._mark_open(index, p)
        return True, peers

    def piece_full(self, index: int) -> bool:
        p = self.partial.get(index)
        return p is not None and len(p.received) == p.nblocks

    def start_verify(self, index: int) -> None:
        """Every block is in hand: the piece goes to hashing."""
        del self.partial[index]
        self._open.discard(index)
        self.pending.add(index)

    def piece_verified(self, index: int) -> None:
        self.pending.discard(index)
        self.set_have(index)

    def piece_failed(self, index: int) -> None:
        """The hash did not match: every block must be fetched again."""
        self.pending.discard(index)
        self.partial.pop(index, None)
        self._open.discard(index)
        self._sync(index)

    def release(self, peer: Hashable, blocks: Iterable[Block]) -> None:
        """Blocks asked of *peer* that will not come (choke, reject, disconnect, snub)."""
        for index, begin, _length in blocks:
            p, b = self.partial.get(index), begin // self.block_size
            if p is None or (peers := p.requested.get(b)) is None:
                continue
            peers.discard(peer)
            if not peers:
                del p.requested[b]
                self.freed += 1
            if not p.requested and not p.received:
                del self.partial[index]
                self._open.discard(index)
                self._sync(index)
            else:
                self._mark_open(index, p)
