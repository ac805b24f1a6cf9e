"""The request policy: which blocks to ask which peer for, and how many at a time.

It counts what each peer has into the picker (rarest first), keeps each peer's queue at the
right depth, withdraws requests from a peer that chokes, rejects or snubs us and gives them to
others, cancels the other copies of an end-game block when one arrives, and remembers for a
moment the pieces a peer rejected (a seed doing initial seeding tells us to get them from
the swarm). Pure: peers are objects that satisfy :class:`RequestPeer`, time is a clock passed
in, and the tests drive it without sockets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from itertools import compress
from operator import not_
from typing import Protocol

from swarm.initial_seeding import InitialSeeding
from swarm.peer_state import PeerState
from swarm.picker import Block, PiecePicker
from swarm.pipeline import INITIAL_DEPTH, Pipeline

# How long a piece a peer rejected is not asked of it again. A seed in initial seeding turns a
# second asker away; at 2 s, both downloaders of a compare at N = 2 sometimes had every piece
# they could ask the seed for hidden from it at once, and the seed, the bound's bottleneck, sat
# idle: one or both finished exactly 1 or 2 s late in ~30% of runs (6.03 s for a 4.0 s bound);
# 0.5 s: none late in 10 runs.
REJECT_MEMORY_SECONDS = 0.5
MAX_PENDING_BYTES = 16 << 20  # in-hand pieces awaiting hash and write before we stop asking
MIN_QUEUE = INITIAL_DEPTH
SEED = "seed"  # a peer counted as a seed (in picker.seeds), not piece by piece


class _Lacking:
    """How many pieces we lack a peer has (*n*), and the list of what it has that it counts."""

    __slots__ = ("n", "has")

    def __init__(self, n: int, has: list[bool]) -> None:
        self.n = n
        self.has = has


class RequestPeer(Protocol):
    """What the policy needs of a connection: its protocol state, its rate, three verbs."""

    state: PeerState

    def __hash__(self) -> int: ...

    @property
    def closed(self) -> bool: ...

    @property
    def download_rate(self) -> float: ...

    def request(self, blocks: list[Block]) -> None: ...

    def cancel(self, index: int, begin: int, length: int) -> None: ...

    def set_interested(self, value: bool) -> None: ...

    def close(self, reason: str = "") -> None: ...


def _serving(peer: object) -> bool:
    """Whether a piece's owner in initial seeding will get it from us: open and unchoked."""
    return not (peer.closed or peer.state.am_choking)  # type: ignore[attr-defined]


class RequestPolicy:
    """Requests for one torrent's peers, on top of its :class:`PiecePicker`."""

    def __init__(
        self,
        picker: PiecePicker,
        peers: Iterable[RequestPeer],
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.picker = picker
        self.peers = peers  # live view of the connected peers, for refills
        self.clock = clock
        # How each peer is counted in the picker's availability: the list of what it has
        # (counted piece by piece) or SEED.
        self._counted: dict[RequestPeer, list[bool] | str] = {}
        self._rejected: dict[RequestPeer, dict[int, float]] = {}
        self._pipes: dict[RequestPeer, Pipeline] = {}  # each peer's measured rate and delay
        self.seeding = InitialSeeding(picker.num_pieces)
        self._held_back = False  # a fill stopped at MAX_PENDING_BYTES since the last write
        # Peers whose last pick found nothing, with the picker's ``freed`` count then: until a
        # block is freed or the peer gets a piece we want, a pick for it finds nothing again
        # (at N = 64 three picks in four found nothing, each reading the free list).
        self._dry: dict[RequestPeer, int] = {}
        # How many pieces we lack each peer has (counted when first needed, then kept in step
        # by have and lose_interest): whether a peer is interesting is O(1), not a scan of its
        # bitfield (at N = 100 that scan, for every peer at every verified piece, was a tenth
        # of a downloader's time). Each count is kept beside the list it counts (the peer's
        # ``peer_has`` then: a new bitfield drops the count), so that the pass over the
        # counted peers at each verified piece reads no peer's state.
        self._lacking: dict[RequestPeer, _Lacking] = {}

    # -- what peers have ---------------------------------------------------------------------

    def _uncount(self, peer: RequestPeer) -> None:
        counted = self._counted.pop(peer, None)
        if counted is SEED:
            self.picker.seeds -= 1
        elif isinstance(counted, list):
            self.picker.peer_bitfield(counted, -1)

    def bitfield(self, peer: RequestPeer, haves: list[bool]) -> None:
        """The peer said all it has (again: the newest word counts)."""
        self._uncount(peer)
        self._dry.pop(peer, None)
        self._lacking.pop(peer, None)
        self._counted[peer] = SEED if peer.state.peer_is_seed else haves
        self.picker.peer_bitfield(haves)
        if not self._both_seeds(peer):
            self.update_interest(peer)

    def have(self, peer: RequestPeer, index: int) -> None:
        """The peer has a new piece (its state has it already)."""
        state = peer.state
        self._counted.setdefault(peer, state.peer_has)
        self.picker.peer_have(index)
        lacking = self._lacking.get(peer)
        if lacking is not None and not self.picker.have[index]:
            lacking.n += 1
        if state.peer_is_seed:
            self.picker.peer_became_seed(state.peer_has)
            self._counted[peer] = SEED
            if self._both_seeds(peer):
                return
        if self.picker.wanted(index):  # else nothing changed for what we ask of it
            self._dry.pop(peer, None)
            if not state.am_interested:
                peer.set_interested(True)
            if not state.requests_out:  # a busy peer is topped up as its blocks come
                self.fill(peer)

    def _both_seeds(self, peer: RequestPeer) -> bool:
        if peer.state.peer_is_seed and self.picker.complete:
            peer.close("both of us are seeds")
            return True
        return False

    def download_complete(self) -> None:
        """Every piece is ours: seeds have nothing for us and we want nothing of anyone."""
        for peer in list(self.peers):
            if not self._both_seeds(peer):
                peer.set_interested(False)

    def interesting(self, peer: RequestPeer) -> bool:
        """Whether the peer has a piece we lack."""
        lacking = self._lacking.get(peer)
        if lacking is None:
            has, have = peer.state.peer_has, self.picker.have
            if len(has) != len(have):  # not the torrent's shape (yet): not counted
                return self.picker.interesting(has)
            lacking = self._lacking[peer] = _Lacking(sum(compress(map(not_, have), has)), has)
        return lacking.n > 0

    def update_interest(self, peer: RequestPeer) -> None:
        want = not self.picker.complete and self.interesting(peer)
        peer.set_interested(want)
        if want:
            self.fill(peer)

    def lose_interest(self, index: int) -> None:
        """Piece *index* was verified: the peers that have it have one piece less we lack.
        Those left with none lose our interest at the next :meth:`drop_interest`, or at once
        if they unchoke us (:meth:`_free_slot`)."""
        emptied = []
        for peer, lacking in self._lacking.items():
            if lacking.has[index]:  # it has the piece, so we lacked one of its pieces
                lacking.n -= 1
                if not lacking.n:
                    emptied.append(peer)
        for peer in emptied:  # not in the pass: a write may close a peer and drop its count
            self._free_slot(peer)

    def _free_slot(self, peer: RequestPeer) -> None:
        """Not interested at once in a peer that unchokes us and has nothing we lack, so that
        its upload slot goes to a peer that can use it. Left for the next drop_interest, such
        a slot idled: at N = 100, an uploader whose unchoked peers asked nothing of it was half
        the upload the swarm lost, and 63% of those peers had nothing left to ask (last copy
        5.81 -> 5.28 s, 5 pairs of runs; the uploader chokes such a peer and unchokes the one
        waiting longest)."""
        s = peer.state
        if s.am_interested and not s.peer_choking and not s.requests_out:
            peer.set_interested(False)

    def drop_interest(self) -> None:
        """Once a second (the torrent's tick): not interested in the peers with nothing we
        lack and no request of ours out (in those that unchoke us at once: :meth:`_free_slot`).
        Not at once in the others: in a swarm where every peer gets new pieces every moment
        such a peer mostly has one again within the second, and each not-interested and
        interested again cost both sides a message, the uploader a choke and an unchoke of
        someone else, and us the slot (at N = 100 a sixth of the messages)."""
        for peer in list(self.peers):
            s = peer.state
            if s.am_interested and not s.requests_out and not self.interesting(peer):
                peer.set_interested(False)

    def piece_written(self) -> None:
        """A piece left the write queue: requests its bound held back may go now."""
        if self._held_back:
            self._held_back = False
            self.refill_all()

    def peer_gone(self, peer: RequestPeer) -> None:
        """The peer left: its requests go to the others."""
        self._uncount(peer)
        self._rejected.pop(peer, None)
        self._dry.pop(peer, None)
        self._lacking.pop(peer, None)
        self.release(peer)
        self._pipes.pop(peer, None)
        self.seeding.peer_gone(peer)
        if not any(True for _ in self.peers):
            # Everyone we sent pieces to is gone: the next peers start a new swarm, and a
            # seed's initial seeding starts over with them.
            self.seeding.reset(done=False)
        self.refill_all()

    # -- initial seeding (as a seed) ---------------------------------------------------------

    def defer(self, peer: RequestPeer, index: int) -> bool:
        """Whether to turn away *peer*'s request for *index* (see :mod:`swarm.initial_seeding`)."""
        if not self.picker.complete:
            return False
        return self.seeding.defer(peer, index, _serving)

    @property
    def initial_seeding(self) -> bool:
        """Whether we are a seed that has not yet sent a block of every piece."""
        return self.picker.complete and not self.seeding.done

    def blocks_sent(self, blocks: list[Block]) -> None:
        if self.initial_seeding:
            self.seeding.sent(blocks)

    # -- asking ------------------------------------------------------------------------------

    def pipeline(self, peer: RequestPeer) -> Pipeline:
        """The peer's request pipeline: its measured rate and delay (see :mod:`swarm.pipeline`)."""
        pipe = self._pipes.get(peer)
        if pipe is None:
            pipe = self._pipes[peer] = Pipeline(self.clock())
        return pipe

    def queue_depth(self, peer: RequestPeer) -> int:
        """Requests to keep outstanding: the peer's bandwidth-delay product and a margin,
        grown by slow start (:mod:`swarm.pipeline`), within what the peer accepts; one at a
        time to a peer that snubs us. No deeper than that: every request queued at an uploader
        delays the others' requests behind it, and under a rate cap deep queues are what keep
        the last pieces of a swarm from spreading (the default compare: 0.5 s + 8 blocks 4.9 s,
        0.5 s + 2 blocks 4.8 s, 0.25 s + 2 blocks 4.6 s, against a 4.0 s bound)."""
        if peer.state.snubbed:
            return 1
        depth = self.pipeline(peer).depth(self.clock())
        return max(MIN_QUEUE, min(depth, peer.state.remote_reqq))

    def fill(self, peer: RequestPeer) -> None:
        """Top up the peer's queue of our requests, in batches (fewer, larger writes)."""
        state = peer.state
        if peer.closed or state.peer_choking or not state.am_interested or self.picker.complete:
            return
        depth = self.queue_depth(peer)
        outstanding = len(state.requests_out)
        if outstanding > depth // 2:
            return
        if len(self.picker.pending) * self.picker.piece_length > MAX_PENDING_BYTES:
            self._held_back = True
            return
        picker = self.picker
        if self._dry.get(peer) == picker.freed and not picker.in_endgame:
            blocks = []  # nothing new to find since the last pick found nothing
        else:
            has = state.peer_has
            if peer in self._rejected:
                has = self._without_rejected(peer)
            blocks = picker.pick(peer, has, depth - outstanding)
            if not blocks and peer not in self._rejected:  # its rejects expire by the clock
                self._dry[peer] = picker.freed
        if blocks:
            peer.request(blocks)
            self.pipeline(peer).sent(blocks, self.clock())

    def refill_all(self) -> None:
        for peer in list(self.peers):
            if not peer.state.peer_choking and peer.state.am_interested:
                self.fill(peer)

    def _without_rejected(self, peer: RequestPeer) -> list[bool]:
        """What *peer* has, less the pieces it rejected in the last few seconds."""
        rejected = self._rejected[peer]
        cutoff = self.clock() - REJECT_MEMORY_SECONDS
        for index in [i for i, when in rejected.items() if when < cutoff]:
            del rejected[index]
        if not rejected:
            del self._rejected[peer]
        has = list(peer.state.peer_has)
        for index in rejected:
            has[index] = False
        return has

    # -- outcomes ----------------------------------------------------------------------------

    def block_arrived(self, peer: RequestPeer, index: int, begin: int, length: int) -> bool:
        """A block we asked for came: whether it is new (then the other peers it was asked
        of in end-game get a cancel)."""
        self.pipeline(peer).arrived(index, begin, length, self.clock())
        accepted, others = self.picker.block_received(peer, index, begin)
        if accepted:
            for other in others:
                other.cancel(index, begin, length)  # type: ignore[attr-defined]
                self._forget(other, [(index, begin, length)])  # type: ignore[arg-type]
        return accepted

    def release(self, peer: RequestPeer) -> None:
        """Every request out to *peer* will not be answered (choke, snub, close)."""
        if peer.state.requests_out:
            blocks = peer.state.withdraw()
            self.picker.release(peer, blocks)
            self._forget(peer, blocks)

    def _forget(self, peer: RequestPeer, blocks: list[Block]) -> None:
        """Requests to *peer* withdrawn or cancelled: their blocks time nothing."""
        pipe = self._pipes.get(peer)
        if pipe is not None:
            pipe.forget(blocks)

    def unchoked(self, peer: RequestPeer) -> None:
        if self.interesting(peer):
            self.fill(peer)
        else:
            self._free_slot(peer)

    def choked(self, peer: RequestPeer) -> None:
        """The peer choked us: our requests to it will not be answered, and go to others (none
        after we told it we are not interested)."""
        if peer.state.requests_out:
            self.release(peer)
            self.refill_all()

    def rejected(self, peer: RequestPeer, blocks: list[Block]) -> None:
        """The peer rejected these requests of ours (BEP 6; those of one read, together). Do
        not ask it for their pieces again at once: a seed that rejects a piece it has is
        telling us to get it from the swarm (initial seeding), or it is overloaded. The blocks
        go to the peers that have their pieces (and the rest of this peer's queue is topped
        up): at N = 100 a seed's rejects were 60 a downloader, and each topping up every peer
        was a twentieth of the downloaders' CPU time."""
        now = self.clock()
        mine = self._rejected.setdefault(peer, {})
        pieces = {index for index, _, _ in blocks}
        for index in pieces:
            mine[index] = now
        self.picker.release(peer, blocks)
        self._forget(peer, blocks)
        for other in list(self.peers):
            has = other.state.peer_has
            if other is peer or any(has[i] for i in pieces):
                self.fill(other)

    def snubbed(self, peer: RequestPeer) -> None:
        """The peer sat on our requests too long: they go to others, it gets one at a time."""
        self.release(peer)
        self.refill_all()
