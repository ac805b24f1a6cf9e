"""One uTP connection (BEP 29) as a state machine, sans I/O.

Fed datagrams (:meth:`UtpConnection.receive`), the application's bytes (:meth:`send`),
:meth:`close` / :meth:`abort` and time (:meth:`tick`); every call returns an :class:`Output`:
the datagrams to send to the peer and the :data:`Event` s for the application (connected,
data in order, the peer's end of stream, closed with a reason). ``now`` is seconds on any
monotonic clock; randomness comes from the ``random.Random`` given to the constructors.

Connection ids follow BEP 29: the initiator picks ``recv_id`` and sends with ``recv_id + 1``
(its SYN carries ``recv_id``); the acceptor of a SYN with id *i* receives on *i + 1* and sends
with *i*. Sequence numbers start at a random 16-bit value, are unbounded ints inside (see
:func:`~swarm.utp.packet.unwrap`) and wrap only on the wire.

States: ``SYN_SENT`` (initiator, until its SYN is acked), ``CONNECTED``, ``FIN_SENT`` (close
asked: the queued bytes go, then a FIN; closed when it is acked), ``CLOSED`` and ``RESET``.
A closed connection still re-acks a peer's repeated FIN while its owner keeps it (the mux, for
a short time) so the peer can close cleanly too.
"""

from __future__ import annotations

import random

from swarm.utp.bulk import MAX_DEFERRED_ACKS, PAYLOAD_SIZE, BulkPaths
from swarm.utp.events import Closed, Connected, Data, Eof, Event, Output, State
from swarm.utp.ledbat import Ledbat
from swarm.utp.packet import (
    HEADER_SIZE,
    Packet,
    PacketType,
    UtpPacketError,
    decode,
    header,
    unwrap,
)
from swarm.utp.receiver import Receiver
from swarm.utp.sender import AckResult, OutPacket, Sender

__all__ = ["PACKET_SIZE", "PAYLOAD_SIZE", "RECV_WINDOW", "UtpConnection"]

PACKET_SIZE = PAYLOAD_SIZE + HEADER_SIZE  # 1400 bytes of UDP payload: fits a 1500-byte MTU
RECV_WINDOW = 1 << 20  # bytes we accept ahead of the application (libutp's default)
MAX_PACKETS_IN_FLIGHT = 1000  # below the peer's reorder limit (1024 in libutp and here)
SYN_RETRIES = 2  # a SYN times out after 1 + 2 + 4 seconds
# Consecutive timeouts of a connected socket before it gives up: libtorrent's utp_num_resends
# (3), so a dead peer is found in 0.5 + 1 + 2 + 4 s at the least timeout, not 31.5 s as with 5
# (on uvloop no ICMP error tells us a peer's port closed: see swarm/utp_shell.py).
MAX_RETRIES = 3
KEEPALIVE = 29.0  # seconds without sending before an empty ack (NAT bindings; libutp's)
ZERO_WINDOW_PROBE = 1.0  # seconds a zero window from the peer is obeyed before one probe
NOTHING = Output()  # what a call that produced nothing returns; never changed by its readers


class UtpConnection(BulkPaths):
    """One connection to the peer at *addr*; make it with :meth:`connect` or :meth:`accept`."""

    def __init__(
        self, addr: tuple[str, int], recv_id: int, send_id: int, seq_nr: int, now: float
    ) -> None:
        self.addr = addr
        self.recv_id = recv_id & 0xFFFF
        self.send_id = send_id & 0xFFFF
        self.state = State.SYN_SENT
        self.sender = Sender(seq_nr)
        self.receiver = Receiver(0)
        self.ledbat = Ledbat(PAYLOAD_SIZE, now)
        self.peer_window = RECV_WINDOW
        self.read_backlog = 0  # bytes delivered that the application has not taken yet
        self.retries = 0
        self._sendbuf = bytearray()
        self._close_asked = False
        self._syn_seq: int | None = None  # the acceptor: the SYN it answered
        self._reply_micro = 0
        self._need_ack = False
        self._acks_owed = 0
        self._rto_at: float | None = None
        self._zero_window_at: float | None = None
        self._last_sent = now
        self._advertised = RECV_WINDOW
        self._out = Output()

    # -- making one -------------------------------------------------------------------------

    @classmethod
    def connect(
        cls, addr: tuple[str, int], recv_id: int, rng: random.Random, now: float
    ) -> tuple[UtpConnection, Output]:
        """Dial *addr*: the connection in SYN_SENT and its SYN."""
        conn = cls(addr, recv_id, recv_id + 1, rng.getrandbits(16), now)
        pkt = conn.sender.add(PacketType.SYN, b"")
        conn._transmit(pkt, now)
        return conn, conn._take()

    @classmethod
    def accept(
        cls, syn: Packet, addr: tuple[str, int], rng: random.Random, now: float
    ) -> tuple[UtpConnection, Output]:
        """Answer the SYN *syn* from *addr*: the connection, connected, and its ST_STATE."""
        conn = cls(addr, syn.connection_id + 1, syn.connection_id, rng.getrandbits(16), now)
        conn.receiver = Receiver(syn.seq_nr)
        conn._syn_seq = syn.seq_nr
        conn._note_timing(syn, now)
        conn.peer_window = syn.wnd_size
        conn.state = State.CONNECTED
        conn._events_add(Connected())
        conn._need_ack = True
        conn._flush(now)
        return conn, conn._take()

    # -- the application's calls ------------------------------------------------------------

    @property
    def send_buffer_size(self) -> int:
        """Bytes given to :meth:`send` and not yet acked."""
        return len(self._sendbuf) + self.sender.unacked_bytes

    @property
    def unsent(self) -> int:
        return len(self._sendbuf)

    def send(self, data: bytes, now: float) -> Output:
        """Queue *data* for the peer and send what the windows allow."""
        if self.state in (State.SYN_SENT, State.CONNECTED) and not self._close_asked:
            self._sendbuf += data
            self._flush(now)
        return self._take()

    def close(self, now: float) -> Output:
        """Send what is queued, then a FIN; :class:`Closed` follows once it is acked."""
        if self.state in (State.SYN_SENT, State.CONNECTED):
            self._close_asked = True
            if self.state is State.SYN_SENT:
                self._end(None, reset=True, now=now)
            else:
                self._flush(now)
        return self._take()

    def abort(self, now: float) -> Output:
        """Drop the connection at once with an ST_RESET."""
        if self.state not in (State.CLOSED, State.RESET):
            self._end(None, reset=True, now=now)
        return self._take()

    def unreachable(self, now: float) -> Output:
        """An ICMP error says nothing listens where our SYN went: refused, without the wait
        for its timeouts. Ignored once connected (a forged ICMP error must not end one)."""
        if self.state is State.SYN_SENT:
            self._end("connection refused", now=now)
        return self._take()

    def set_read_backlog(self, size: int, now: float) -> Output:
        """The application holds *size* delivered bytes unread (it paused reading): the window
        we advertise shrinks by as much, and an ack says so when it opens again."""
        self.read_backlog = max(size, 0)
        if self.state in (State.CONNECTED, State.FIN_SENT) and self._advertised < RECV_WINDOW // 2:
            if self._window() >= RECV_WINDOW // 2:
                self._need_ack = True
                self._flush(now)
        return self._take()

    # -- the network's calls ----------------------------------------------------------------

    def receive(self, datagram: bytes | Packet, now: float, *, defer_ack: bool = False) -> Output:
        """Take one datagram (or packet already decoded) from the peer. With *defer_ack*, the
        ack of in-order data may wait for :meth:`flush` (the owner calls it after a batch of
        datagrams, so one ack covers them), up to :data:`MAX_DEFERRED_ACKS` packets."""
        if isinstance(datagram, Packet):
            pkt = datagram
        else:
            try:
                pkt = decode(datagram)
            except UtpPacketError:
                return self._take()
        ptype = pkt.type
        if self.state in (State.CLOSED, State.RESET):
            if self.state is State.CLOSED and ptype in (PacketType.FIN, PacketType.DATA):
                # no more events, but the peer's FIN (or a repeat) is still acked
                rcv = self.receiver
                rcv.add(unwrap(pkt.seq_nr, rcv.ack_nr), b"", ptype is PacketType.FIN)
                self._send_state(now)
            return self._take()
        if ptype is PacketType.RESET:
            refused = self.state is State.SYN_SENT
            self._end("connection refused" if refused else "connection reset by peer", now=now)
            return self._take()
        if ptype is PacketType.SYN:
            if self._syn_seq is not None and pkt.seq_nr == self._syn_seq & 0xFFFF:
                self._need_ack = True  # our answer to it was lost
                self._flush(now)
            return self._take()
        res = self.sender.on_ack(pkt.ack_nr, pkt.sack, ptype is PacketType.STATE, now)
        if res is None:
            return self._take()  # it acks a packet we never sent
        self._note_timing(pkt, now)
        self.peer_window = pkt.wnd_size
        if pkt.wnd_size:
            self._zero_window_at = None
        if self.state is State.SYN_SENT:
            if self.sender.snd_una != self.sender.snd_nxt:
                return self._take()  # not an answer to our SYN
            self.receiver = Receiver(pkt.seq_nr - 1)
            self.state = State.CONNECTED
            self._events_add(Connected())
        self._on_ack(pkt, res, now)
        if self.state in (State.CLOSED, State.RESET):
            return self._take()
        if ptype is not PacketType.STATE:
            rcv = self.receiver
            seq = unwrap(pkt.seq_nr, rcv.ack_nr)
            was_eof = rcv.eof_reached
            delivered, _new = rcv.add(seq, pkt.payload, ptype is PacketType.FIN)
            for chunk in delivered:
                self._events_add(Data(chunk))
            if rcv.eof_reached and not was_eof:
                self._events_add(Eof())
            self._need_ack = True
            self._acks_owed += 1
            if defer_ack and self._acks_owed < MAX_DEFERRED_ACKS and not rcv.reordering:
                self._flush(now, ack=False)
                return self._take()
        self._flush(now)
        return self._take()

    def flush(self, now: float) -> Output:
        """Send what is due now, a deferred ack included."""
        if self.state not in (State.CLOSED, State.RESET):
            self._flush(now)
        return self._take()

    def tick(self, now: float) -> Output:
        """Let time pass: retransmission timeouts, the zero-window probe, keep-alives."""
        if self.state in (State.CLOSED, State.RESET):
            return self._take()
        if self._rto_at is not None and now >= self._rto_at:
            self._timeout(now)
        elif self._zero_window_at is not None and now >= self._zero_window_at:
            self._zero_window_at = None
            self.peer_window = PACKET_SIZE  # probe with one packet
            self._flush(now)
        elif self.state is not State.SYN_SENT and now - self._last_sent >= KEEPALIVE:
            self._send_state(now)
        return self._take()

    # -- inside -----------------------------------------------------------------------------

    def _timeout(self, now: float) -> None:
        self.retries += 1
        limit = SYN_RETRIES if self.state is State.SYN_SENT else MAX_RETRIES
        if self.retries > limit:
            self._end("timed out", now=now)
            return
        idle = not self.sender.packets
        self.ledbat.on_timeout(idle)
        self.sender.timed_out()
        self._rto_at = now + self.sender.rto if self.sender.packets else None
        self._flush(now)

    def _on_ack(self, pkt: Packet, res: AckResult, now: float) -> None:
        snd = self.sender
        if res.progressed or res.bytes_acked:
            self.retries = 0
            self._rto_at = now + snd.rto if snd.packets else None
        if res.bytes_acked:
            delay = pkt.timestamp_difference or None
            self.ledbat.on_ack(res.bytes_acked, delay, res.min_rtt, now)
        if res.lost:
            self.ledbat.on_loss(now)
            for lost in res.lost:
                self._transmit(lost, now)
        if self.state is State.FIN_SENT and not snd.packets:
            self._end(None, now=now)

    def _note_timing(self, pkt: Packet, now: float) -> None:
        if pkt.timestamp:
            self._reply_micro = (int(now * 1e6) - pkt.timestamp) & 0xFFFFFFFF

    def _window(self) -> int:
        return max(RECV_WINDOW - self.receiver.buffered_bytes - self.read_backlog, 0)

    def _flush(self, now: float, ack: bool = True) -> None:
        snd = self.sender
        window = min(self.ledbat.window, self.peer_window)
        while snd.resend:
            pkt = snd.packets.get(snd.resend[0])
            if pkt is not None and pkt.need_resend:
                if snd.in_flight and snd.in_flight + len(pkt.payload) > window:
                    break
                self._transmit(pkt, now)
            snd.resend.popleft()
        buf = self._sendbuf
        if self.state is State.CONNECTED and not snd.resend:
            full = min(
                len(buf) // PAYLOAD_SIZE,
                (window - snd.in_flight) // PAYLOAD_SIZE,
                MAX_PACKETS_IN_FLIGHT - len(snd.packets),
            )
            if full > 1:
                self._send_run(full, now)
        while buf and self.state is State.CONNECTED and not snd.resend:
            n = min(PAYLOAD_SIZE, len(buf))
            room = window - snd.in_flight
            if room < n and not snd.in_flight and window > 0:
                n = room  # a peer window under one packet: send what fits
            elif room < n or len(snd.packets) >= MAX_PACKETS_IN_FLIGHT:
                if window <= 0 and not snd.packets and self._zero_window_at is None:
                    self._zero_window_at = now + ZERO_WINDOW_PROBE
                self.ledbat.window_limited(now)
                break
            chunk = bytes(buf[:n])
            del buf[:n]
            self._transmit(snd.add(PacketType.DATA, chunk), now)
        if self._close_asked and not buf and self.state is State.CONNECTED:
            self.state = State.FIN_SENT
            self._transmit(snd.add(PacketType.FIN, b""), now)
        if self._need_ack and ack:
            self._send_state(now)

    def _header(self, ptype: PacketType, seq: int, now: float) -> bytes:
        rcv = self.receiver
        syn = ptype is PacketType.SYN
        self._advertised = 0 if ptype is PacketType.RESET else self._window()
        return header(
            ptype,
            self.recv_id if syn else self.send_id,
            int(now * 1e6),
            self._reply_micro,
            self._advertised,
            seq,
            0 if syn else rcv.ack_nr,
            None if syn or ptype is PacketType.RESET else rcv.sack(),
        )

    def _transmit(self, pkt: OutPacket, now: float) -> None:
        head = self._header(pkt.type, pkt.seq, now)
        self._out.datagrams.append(head + pkt.payload if pkt.payload else head)
        if self._rto_at is None:
            self._rto_at = now + self.sender.rto
        self.sender.sent(pkt, now)
        self._last_sent = now
        if not self.receiver.reordering:
            self._need_ack = False
            self._acks_owed = 0

    def _send_state(self, now: float) -> None:
        self._out.datagrams.append(self._header(PacketType.STATE, self.sender.snd_nxt, now))
        self._last_sent = now
        self._need_ack = False
        self._acks_owed = 0

    def _end(self, reason: str | None, *, reset: bool = False, now: float) -> None:
        if reset:
            self._out.datagrams.append(self._header(PacketType.RESET, self.sender.snd_nxt, now))
        self.state = State.RESET if reset or reason else State.CLOSED
        self._rto_at = self._zero_window_at = None
        self._sendbuf.clear()
        self._events_add(Closed(reason))

    def _events_add(self, event: Event) -> None:
        self._out.events.append(event)

    def _take(self) -> Output:
        out = self._out
        if not out.datagrams and not out.events:
            return NOTHING  # most calls in a transfer: no new Output made for them
        self._out = Output()
        return out
