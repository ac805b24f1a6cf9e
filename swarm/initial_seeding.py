"""Initial seeding: a seed that has not yet sent every piece once sends each piece once.

While a seed has not yet sent every piece, a second copy of a piece is upload spent on data
the swarm already has. The first peer to ask for a piece owns it; others are turned away (a
BEP 6 reject, so any fast-extension peer follows it) and fetch it from that peer: the idea of
BEP 16 super-seeding. A peer is turned away for a piece for up to :data:`HOLD_SECONDS` from
the first time (it asks again every half second or so), then served, so nobody starves for
long; an owner we have since choked (it will not get the piece from us) loses the piece to
the next asker. Initial seeding ends once a block of every piece has gone out, and starts over
when every peer has left (the next peers are a new swarm). Pure; peers are any hashable key,
the clock is passed in.

Turned away only once per piece, as before, a peer got its second copy half a second later:
in ``swarm compare --peers 100`` a quarter of the seed's first 6 s went on pieces it had sent
already, and its last new block left at 5.9-6.1 s, not at F / u_s = 4 s (now 3.9 s); in the
texts' scenario at 125 s, not 100 s (now 103.5 s).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Iterable

# Seconds a peer is turned away for a piece whose owner we still serve: a few hops of the piece
# through the swarm even at the texts' 100 kB/s (a 64 KiB piece takes ~3 s a hop there).
HOLD_SECONDS = 10.0


class InitialSeeding:
    """Which requests a seed turns away, for one torrent."""

    def __init__(
        self,
        num_pieces: int,
        hold: float = HOLD_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.num_pieces = num_pieces
        self.hold = hold
        self.clock = clock
        self.done = False
        self._owner: dict[int, Hashable] = {}
        # For each peer, the pieces it was turned away for, and when first.
        self._deferred: dict[Hashable, dict[int, float]] = {}
        self._sent: set[int] = set()

    def defer(self, peer: Hashable, index: int, can_serve: Callable[[Hashable], bool]) -> bool:
        """Whether to reject *peer*'s request for *index* (we are a complete seed).
        *can_serve(owner)*: the owner is still connected and unchoked by us."""
        if self.done:
            return False
        owner = self._owner.get(index)
        if owner is None or owner is peer or not can_serve(owner):
            self._owner[index] = peer
            return False
        now = self.clock()
        first = self._deferred.setdefault(peer, {}).setdefault(index, now)
        return now - first < self.hold

    def sent(self, blocks: Iterable[tuple[int, int, int]]) -> None:
        """Blocks went out; initial seeding ends once a block of every piece has."""
        if self.done:
            return
        self._sent.update(index for index, _, _ in blocks)
        if len(self._sent) == self.num_pieces:
            self.reset(done=True)

    def peer_gone(self, peer: Hashable) -> None:
        self._deferred.pop(peer, None)

    def reset(self, done: bool) -> None:
        self.done = done
        self._sent.clear()
        self._owner.clear()
        self._deferred.clear()
