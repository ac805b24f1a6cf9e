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
downloader's CPU time. Haves also ride along whatever else we write to a peer before the window
ends (:meth:`HaveBatcher.take`: blocks, requests), in the same system call.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterable, Sized
from typing import Protocol

from swarm import wire

HAVE_DELAY = 0.002  # seconds: a have waits at most this long to a peer downloading from us
# (each hop of a new piece through a swarm waits it; N = 100, 4 pairs of runs each: 50 ms
# gave a median copy of 6.29 s against 6.03 s with 10 ms, and 10 ms 6.23 s against 5.97 s
# with 2 ms, the last copy 6.62 against 6.21 s, CPU no higher; 150 ms was slower still)
IDLE_DELAY = 0.5  # and this long to the peers not interested in us (it may make them so)
WAITING_DELAY = 2.0  # and this long to those interested but choked by us (see _flush)
_HAVE = struct.Struct(">IBI")


class HaveState(Protocol):
    peer_has: list[bool]
    am_choking: bool
    peer_interested: bool

    @property
    def requests_in(self) -> Sized: ...


class HavePeer(Protocol):
    """A connection as the batcher sees it: what the peer has, and a way to send."""

    @property
    def state(self) -> HaveState: ...
    @property
    def closed(self) -> bool: ...
    def send(self, *msgs: wire.Message) -> None: ...


def downloading(peer: HavePeer) -> bool:
    """Whether the peer downloads from us now: it must hear of a new piece soon to ask for it
    (with our next blocks to it, when it has requests queued with us). The others hear later
    (at N = 100 these writes were a sixth of a downloader's time: one system call per peer per
    window, most of them to peers that could not ask us anyway)."""
    return not peer.state.am_choking and peer.state.peer_interested


class HaveBatcher:
    """Collects verified pieces and sends their haves together (call :meth:`close` at the end):
    within *delay* to the peers downloading from us, within *idle_delay* to those not interested
    in us (a new piece may make them so), within *waiting_delay* (at the next idle window after
    it) to those interested that we choke: they cannot ask us for it yet, and hear it with our
    unchoke (:meth:`take`); at N = 100 they were most of a downloader's peers, each told twice a
    second, and their haves a twentieth of its time at both ends. Each peer is told each piece
    once: a log of the verified pieces, and how far each peer has heard it (from
    :meth:`joined`, when its bitfield went out)."""

    def __init__(
        self,
        peers: Iterable[HavePeer],
        delay: float = HAVE_DELAY,
        idle_delay: float = IDLE_DELAY,
        waiting_delay: float = WAITING_DELAY,
    ) -> None:
        self.peers = peers  # the torrent's live set of connected peers
        self.delay = delay
        self.idle_delay = idle_delay
        self.waiting_delay = waiting_delay
        self._waiting_at = 0.0  # loop time from which the waiting peers hear again
        self.log: list[int] = []  # pieces verified, in order
        self._heard: dict[HavePeer, int] = {}  # how much of the log each peer was told
        self._timer: asyncio.TimerHandle | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._closed = False
        self._busy: HavePeer | None = None  # a peer seen with requests queued with us

    def joined(self, peer: HavePeer) -> None:
        """The peer was just sent our bitfield: it knows every piece in the log."""
        self._heard[peer] = len(self.log)

    def add(self, index: int) -> None:
        """Piece *index* is verified: its have goes out within the delays; to the peers not
        interested in us within the short one while no peer has requests queued with us: our
        upload is idle, and only a have can make a peer ask (a swarm's start, where every peer
        has nothing to give until it hears; at N = 100 the long window made each step of the
        start's spread wait up to 0.5 s, the machine's CPU idle)."""
        self.log.append(index)
        if self._closed:
            return
        loop = asyncio.get_running_loop()
        if self._timer is None:
            self._timer = loop.call_later(self.delay, self._flush, False)
        idle = self._idle_timer
        if not self._uploading():
            if idle is not None and idle.when() > loop.time() + self.delay:
                idle.cancel()
                idle = None
            if idle is None:
                self._idle_timer = loop.call_later(self.delay, self._flush, True)
        elif idle is None:
            self._idle_timer = loop.call_later(self.idle_delay, self._flush, True)

    def _uploading(self) -> bool:
        """Whether a peer has requests queued with us: the one found last time, if it still
        has (the scan of every peer at each verified piece was 2% of a group's CPU at
        N = 200), else the first found now."""
        busy = self._busy
        if busy is None or busy.closed or not busy.state.requests_in:
            busy = self._busy = next((p for p in self.peers if p.state.requests_in), None)
        return busy is not None

    def flush(self) -> None:
        """Send what is pending now, to everyone (we just became a seed, say)."""
        self._cancel()
        self._waiting_at = 0.0
        self._flush(True)

    def _flush(self, everyone: bool) -> None:
        if self._closed:
            return
        waiting = True  # peers interested in us that we choke: only now and then
        if everyone:
            self._idle_timer = None
            # forget the peers that left; a peer never seen joining hears the whole log
            self._heard = {p: self._heard.get(p, 0) for p in self.peers}
            now = asyncio.get_running_loop().time()
            waiting = now >= self._waiting_at
            if waiting:
                self._waiting_at = now + self.waiting_delay
            elif self._idle_timer is None:  # what they were not told goes out later
                self._idle_timer = asyncio.get_running_loop().call_later(
                    self.idle_delay, self._flush, True
                )
        else:
            self._timer = None
        end = len(self.log)
        for peer in list(self.peers):
            st = peer.state
            if everyone:
                if not (waiting or not st.peer_interested or downloading(peer)):
                    continue
            elif not downloading(peer) or st.requests_in:
                continue  # with requests of its queued, our next blocks to it carry them
            start = self._heard.get(peer, 0)
            if start < end:
                self._heard[peer] = end  # first: the write must not take them again
                self._send(peer, self.log[start:end])

    def take(self, peer: HavePeer) -> bytes:
        """The haves *peer* has not heard yet (those it lacks), encoded, to go out now with
        something else written to it: they are then not sent again at the window's end. Nothing
        for a peer not known to have had our bitfield (:meth:`joined`)."""
        start = self._heard.get(peer)
        end = len(self.log)
        if start is None or start >= end:
            return b""
        self._heard[peer] = end
        has = peer.state.peer_has
        n = len(has)
        have = _HAVE.pack
        return b"".join(
            [have(5, wire.MsgId.HAVE, i) for i in self.log[start:end] if i >= n or not has[i]]
        )

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
        self._busy = None
