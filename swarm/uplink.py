"""Rarest piece first on an uplink with no upload limit of ours: one batch in the uplink at a time.

Under an upload limit, :class:`~swarm.ratelimit.RateLimiter` hands the rate out batch by batch,
the batch of the rarest piece first, so a piece goes out whole at the whole rate and its peer can
pass it on soon. With no limit of ours and a slow uplink (a home line; the kernel's cap in
``swarm compare --lab netns``), every unchoked peer's blocks went into the kernel as fast as it
took them, the link interleaved them, and every piece took as long as all of them together: at
N = 8 in the lab 1.25x the bound, against 1.06x with our own limit at the link's rate.

:class:`UplinkGate` keeps that order without knowing the rate: a batch is written once the one
written before it has (nearly) left its socket, the rarest waiting first. What left is the
socket's own count (``TCP_INFO``'s unsent bytes, and what the transport still holds). On a fast
uplink a batch is gone by the time the next asks, and nothing waits. A batch the peer's side
holds back (its receive window full, or a slow path that takes much longer than the uplink's
recent pace) stops holding the others: one slow peer must not set everyone's rate.

:class:`GateCore` is the decision, pure (the clock and the sockets' counts passed in); the gate
around it polls the socket of the batch in the uplink every :data:`POLL` seconds while batches
wait. Connections without a TCP socket (uTP) pass without waiting.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import socket
import struct
from dataclasses import dataclass
from typing import Any

from swarm.ratelimit import aged

LOW = 16 * 1024  # unsent bytes under which a batch counts as gone: the next one may go
POLL = 0.002  # seconds between looks at the socket while batches wait
SLACK = 3.0  # a batch this many times slower than the uplink's pace is held by its peer's side

_TCP_INFO = getattr(socket, "TCP_INFO", None)
_NOTSENT = struct.Struct("=I")  # tcpi_notsent_bytes, at byte 144 (Linux 4.6)
_UNACKED = struct.Struct("=I")  # tcpi_unacked (segments), at byte 24
_MSS = struct.Struct("=I")  # tcpi_snd_mss, at byte 16
_SND_WND = struct.Struct("=I")  # tcpi_snd_wnd, the peer's window, at byte 228 (Linux 5.4)
_MIN_RTT = struct.Struct("=I")  # tcpi_min_rtt (microseconds), at byte 148
_RATE = struct.Struct("=Q")  # tcpi_delivery_rate (bytes/s), at byte 160


@dataclass(frozen=True, slots=True)
class Queued:
    """What a connection's socket still holds of what we wrote."""

    unsent: int  # bytes not yet sent: in the transport and in the kernel's send queue
    peer_limited: bool  # the peer's receive window is full: its side holds them, not our uplink
    rate: int = 0  # bytes per second the socket delivers lately (the kernel's measure)


def queued(transport: Any) -> Queued | None:
    """The send queue of a TCP *transport* (None: no TCP socket, or closed)."""
    if _TCP_INFO is None or transport is None or transport.is_closing():
        return None
    sock = transport.get_extra_info("socket")
    if sock is None or sock.type != socket.SOCK_STREAM:
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, _TCP_INFO, 232)
    except OSError:
        return None
    return from_tcp_info(info, transport.get_write_buffer_size())


def from_tcp_info(info: bytes, buffered: int) -> Queued | None:
    """The send queue from a socket's ``TCP_INFO`` (Linux's struct tcp_info) and the bytes its
    transport still holds; None if the kernel's struct is too old to say."""
    if len(info) < 168:
        return None
    unsent = buffered + _NOTSENT.unpack_from(info, 144)[0]
    mss = _MSS.unpack_from(info, 16)[0]
    in_flight = _UNACKED.unpack_from(info, 24)[0] * mss
    # Sent and not yet acknowledged beyond what the path itself holds (the delivery rate times
    # the round trip): what waits in a queue, ours (the qdisc) or the bottleneck's.
    rate = _RATE.unpack_from(info, 160)[0]
    unsent += max(0, in_flight - rate * _MIN_RTT.unpack_from(info, 148)[0] // 1_000_000)
    peer_limited = False
    if len(info) >= 232:
        peer_limited = _SND_WND.unpack_from(info, 228)[0] - in_flight < 2 * mss
    return Queued(unsent, peer_limited, rate)


@dataclass(slots=True)
class _Current:
    key: object  # whose batch (a connection)
    since: float
    size: int
    seen_busy: bool = False  # found still there once: its time to leave says the uplink's pace


class GateCore:
    """Whether the batch written last still holds the uplink, and the uplink's pace (seconds
    a byte, learnt from batches seen leaving) to tell a slow uplink from a slow peer."""

    def __init__(self, low: int = LOW, slack: float = SLACK, poll: float = POLL) -> None:
        self.low = low
        self.slack = slack
        self.poll = poll
        self.pace: float | None = None  # seconds per byte, once a batch was seen leaving
        self.current: _Current | None = None

    def admitted(self, key: object, now: float, size: int) -> None:
        """*key*'s batch of *size* bytes goes into the uplink now."""
        self.current = _Current(key, now, size)

    def release(self, key: object) -> None:
        """*key*'s batch admitted was not written after all (closed, or choked meanwhile)."""
        if self.current is not None and self.current.key is key:
            self.current = None

    def holding(self, now: float, q: Queued | None) -> bool:
        """Whether the current batch, whose socket holds *q* (None: gone), still holds the
        uplink: True while more than :attr:`low` bytes of it wait, unless its peer's window
        is full, or it has taken :attr:`slack` times the pace (its peer's side is slow), or
        the uplink is so fast that :attr:`low` bytes leave in less than a :attr:`poll` (between
        two looks it would run dry: there, order is not worth a wait). The pace is learnt from
        batches seen still there once and then gone (the kernel's own delivery rate is no
        guide: a token bucket's bursts made it 10-290 MB/s on a 1 MiB/s link)."""
        cur = self.current
        if cur is None:
            return False
        elapsed = now - cur.since
        if q is None or q.peer_limited or q.unsent < self.low:
            if cur.seen_busy:
                self._learn(elapsed, cur.size - (q.unsent if q is not None else 0))
            self.current = None
            return False
        fast = self.pace is not None and self.pace * self.low < self.poll
        if fast or (self.pace is not None and elapsed > self.slack * self.pace * cur.size):
            self.current = None
            return False
        cur.seen_busy = True
        return True

    def _learn(self, elapsed: float, left: int) -> None:
        if left <= 0:
            return
        pace = elapsed / left
        self.pace = pace if self.pace is None else 0.75 * self.pace + 0.25 * pace


class UplinkGate:
    """One per session (its uplink): :meth:`admit` before writing a batch, no upload limit."""

    def __init__(self, low: int = LOW, slack: float = SLACK, poll: float = POLL) -> None:
        self.core = GateCore(low, slack, poll)
        # waiting batches: (rank aged by arrival, arrival, key, transport, size, future)
        self._waiting: list[tuple[float, int, object, Any, int, asyncio.Future[None]]] = []
        self._arrivals = itertools.count()
        self._timer: asyncio.TimerHandle | None = None
        self._transport: Any = None  # the current batch's
        self.waited = False  # the last batch admitted had to wait: the uplink is the limit

    def _holding(self, now: float, q: Queued | None = None) -> bool:
        """Whether the current batch still holds the uplink (*q*: its socket's queue, if
        read already)."""
        if self.core.current is None:
            return False
        return self.core.holding(now, q if q is not None else queued(self._transport))

    async def admit(self, key: object, transport: Any, size: int, rank: int) -> None:
        """Wait until *key*'s batch of *size* bytes may be written (lowest *rank* first, aged
        as :class:`~swarm.ratelimit.RateLimiter` ages its waiters); write it at once after.
        A connection without a TCP socket passes at once and is not waited for, as does one
        whose socket still holds an earlier batch of its own (its peer's side is the limit)."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        q = queued(transport)
        cur = self.core.current
        if q is None or (
            (cur is None or cur.key is not key) and (q.peer_limited or q.unsent >= self.core.low)
        ):
            return  # no TCP socket; or its earlier batch is still there, held by its peer's side
        own = cur is not None and cur.key is key  # the batch before was ours: q is its queue
        if not self._waiting and not self._holding(now, q if own else None):
            self._admit(key, transport, now, size, waited=False)
            return
        fut: asyncio.Future[None] = loop.create_future()
        entry = (aged(rank, now), next(self._arrivals), key, transport, size, fut)
        heapq.heappush(self._waiting, entry)
        self._arm()
        try:
            await fut
        except asyncio.CancelledError:
            self.release(key)
            raise

    def release(self, key: object) -> None:
        """*key* was admitted and did not write (it closed, or was choked meanwhile)."""
        self.core.release(key)

    def _admit(self, key: object, transport: Any, now: float, size: int, waited: bool) -> None:
        self.core.admitted(key, now, size)
        self._transport = transport
        self.waited = waited

    def _arm(self) -> None:
        if self._timer is None:
            self._timer = asyncio.get_running_loop().call_later(self.core.poll, self._serve_waiting)

    def _serve_waiting(self) -> None:
        self._timer = None
        now = asyncio.get_running_loop().time()
        waiting = self._waiting
        while waiting and not self._holding(now):
            _, _, key, transport, size, fut = heapq.heappop(waiting)
            if not fut.done():  # a caller cancelled while it waited takes nothing
                self._admit(key, transport, now, size, waited=True)
                fut.set_result(None)
                break
        if waiting:
            self._arm()
