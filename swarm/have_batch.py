"""Our ``have`` messages (BEP 3), sent in batches and only where they tell something.

A verified piece is announced to each connected peer that lacks it, together with the other
pieces verified within the same window, in one write per peer: a short window
(:data:`HAVE_DELAY`) for the peers downloading from us, who may want to ask for it at once, a
longer one (:data:`IDLE_DELAY`) for the rest. A
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

HAVE_DELAY = 0.05  # seconds: a have waits at most this long to a peer downloading from us
IDLE_DELAY = 0.5  # and this long to the others (choked by us, or not interested)


class HaveState(Protocol):
    peer_has: list[bool]
    am_choking: bool
    peer_interested: bool


class HavePeer(Protocol):
    """A connection as the batcher sees it: what the peer has, and a way to send."""

    @property
    def state(self) -> HaveState: ...
    @property
    def closed(self) -> bool: ...
    def send(self, *msgs: wire.Message) -> None: ...


def downloading(peer: HavePeer) -> bool:
    """Whether the peer downloads from us now: it must hear of a new piece soon to ask for it.
    The others hear later (at N = 100 these writes were a sixth of a downloader's time: one
    system call per peer per window, most of them to peers that could not ask us anyway)."""
    return not peer.state.am_choking and peer.state.peer_interested


class HaveBatcher:
    """Collects verified pieces and sends their haves together (call :meth:`close` at the end):
    within *delay* to the peers downloading from us, within *idle_delay* to the others. Each
    peer is told each piece once: a log of the verified pieces, and how far each peer has
    heard it (from :meth:`joined`, when its bitfield went out)."""

    def __init__(
        self, peers: Iterable[HavePeer], delay: float = HAVE_DELAY, idle_delay: float = IDLE_DELAY
    ) -> None:
        self.peers = peers  # the torrent's live set of connected peers
        self.delay = delay
        self.idle_delay = idle_delay
        self.log: list[int] = []  # pieces verified, in order
        self._heard: dict[HavePeer, int] = {}  # how much of the log each peer was told
        self._timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._closed = False

    def joined(self, peer: HavePeer) -> None:
        """The peer was just sent our bitfield: it knows every piece in the log."""
        self._heard[peer] = len(self.log)

    def add(self, index: int) -> None:
        """Piece *index* is verified: its have goes out within the delays."""
        self.log.append(index)
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        if self._timer is None:
            self._timer = loop.call_later(self.delay, self._flush, False)
        if self._idle_timer is None:
            self._idle_timer = loop.call_later(self.idle_delay, self._flush, True)

    def flush(self) -> None:
        """Send what is pending now, to everyone (we just became a seed, say)."""
        self._cancel()
        self._flush(True)

    def _flush(self, everyone: bool) -> None:
        if self._closed:
            return
        if everyone:
            self._idle_timer = None
            # forget the peers that left; a peer never seen joining hears the whole log
            self._heard = {p: self._heard.get(p, 0) for p in self.peers}
        else:
            self._timer = None
        end = len(self.log)
        for peer in list(self.peers):
            if everyone or downloading(peer):
                start = self._heard.get(peer, 0)
                if start < end:
                    self._send(peer, self.log[start:end])
                    self._heard[peer] = end

    def _send(self, peer: HavePeer, indices: list[int]) -> None:
        """One write of the haves the peer lacks."""
        has = peer.state.peer_has
        lacks = [wire.Have(i) for i in indices if i >= len(has) or not has[i]]
        if lacks and not peer.closed:
            peer.send(*lacks)

    def _cancel(self) -> None:
        for timer in (self._timer, self._idle_timer):
            if timer is not None:
                timer.cancel()
        self._timer = self._idle_timer = None

    def close(self) -> None:
        """Drop what is pending (the torrent is stopping)."""
        self._cancel()
        self._closed = True
