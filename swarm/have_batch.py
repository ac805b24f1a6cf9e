"""Our ``have`` messages (BEP 3), sent in batches and only where they tell something.

A verified piece is announced to each connected peer that lacks it, together with the other
pieces verified within the same short window (:data:`HAVE_DELAY`), in one write per peer. A
peer that has the piece already is not told (it will never ask us for it: libtorrent's
``send_redundant_have`` off, as its versions before 1.0 did); every peer still learns of every
piece we have that it lacks. With small pieces this is most of a swarm's messages: the default
``swarm compare`` (256 pieces of 16 KiB) sent 256 haves to each of up to 50 peers, each its own
system call and its own wake-up at the other end; at N = 32 that was a quarter of every
downloader's CPU time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Protocol

from swarm import wire

HAVE_DELAY = 0.05  # seconds: a piece's have waits at most this long for others to share a write


class HaveState(Protocol):
    peer_has: list[bool]


class HavePeer(Protocol):
    """A connection as the batcher sees it: what the peer has, and a way to send."""

    @property
    def state(self) -> HaveState: ...
    @property
    def closed(self) -> bool: ...
    def send(self, *msgs: wire.Message) -> None: ...


class HaveBatcher:
    """Collects verified pieces and sends their haves together (call :meth:`close` at the end)."""

    def __init__(self, peers: Iterable[HavePeer], delay: float = HAVE_DELAY) -> None:
        self.peers = peers  # the torrent's live set of connected peers
        self.delay = delay
        self.pending: list[int] = []
        self._timer: asyncio.TimerHandle | None = None

    def add(self, index: int) -> None:
        """Piece *index* is verified: its have goes out within :attr:`delay` seconds."""
        self.pending.append(index)
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.delay, self.flush)

    def flush(self) -> None:
        """Send what is pending now: to each peer, one write of the haves it lacks."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        indices, self.pending = self.pending, []
        if not indices:
            return
        for peer in list(self.peers):
            has = peer.state.peer_has
            lacks = [wire.Have(i) for i in indices if i >= len(has) or not has[i]]
            if lacks and not peer.closed:
                peer.send(*lacks)

    def close(self) -> None:
        """Drop what is pending (the torrent is stopping)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.pending = []
