"""Initial seeding: a seed that has not yet sent every piece once sends each piece once.

While a seed has not yet sent every piece, a second copy of a piece is upload spent on data
the swarm already has. The first peer to ask for a piece owns it; others are turned away (a
BEP 6 reject, so any fast-extension peer follows it) and fetch it from that peer: the idea of
BEP 16 super-seeding. Each peer is turned away only once per piece, so nobody can starve, and
an owner we have since choked (it will not get the piece from us) loses the piece to the next
asker. Initial seeding ends once a block of every piece has gone out, and starts over when
every peer has left (the next peers are a new swarm). Pure; peers are any hashable key.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable


class InitialSeeding:
    """Which requests a seed turns away, for one torrent."""

    def __init__(self, num_pieces: int) -> None:
        self.num_pieces = num_pieces
        self.done = False
        self._owner: dict[int, Hashable] = {}
        self._deferred: dict[Hashable, set[int]] = {}  # pieces each peer was turned away for
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
        turned_away = self._deferred.setdefault(peer, set())
        if index in turned_away:
            return False
        turned_away.add(index)
        return True

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
