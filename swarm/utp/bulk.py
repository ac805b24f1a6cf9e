"""The bulk-transfer paths of a uTP connection (:class:`~swarm.utp.connection.UtpConnection`
inherits them): what the general code does for the two commonest cases of a transfer, with
less Python per packet, since every 1400-byte packet costs a pass through it.

- :meth:`BulkPaths.receive_in_order`: an ST_DATA without extensions, the next in order,
  acking nothing new (the receiver's usual packet), taken without decoding a ``Packet``.
- :meth:`BulkPaths._send_run`: full DATA packets in a row, the header fields they share (all
  but ``seq_nr``) worked out once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from swarm.utp.events import Data, Output, State
from swarm.utp.packet import HEADER, HEADER_SIZE
from swarm.utp.receiver import Receiver
from swarm.utp.sender import Sender

__all__ = ["MAX_DEFERRED_ACKS", "PAYLOAD_SIZE", "BulkPaths"]

PAYLOAD_SIZE = 1380  # bytes of payload in a full packet (1400 with the 20-byte header)
MAX_DEFERRED_ACKS = 32  # in-order packets one deferred ack may cover


class BulkPaths:
    """The fast paths; the state they use is the connection's."""

    state: State
    receiver: Receiver
    sender: Sender
    send_id: int
    recv_id: int
    peer_window: int
    _sendbuf: bytearray
    _close_asked: bool
    _out: Output
    _reply_micro: int
    _advertised: int
    _zero_window_at: float | None
    _rto_at: float | None
    _last_sent: float
    _need_ack: bool
    _acks_owed: int

    if TYPE_CHECKING:  # the connection's own methods, which these paths call

        def _flush(self, now: float, ack: bool = True) -> None: ...
        def _send_state(self, now: float) -> None: ...
        def _window(self) -> int: ...
        def _take(self) -> Output: ...

    def receive_run(self, datagrams: list[memoryview], now: float) -> tuple[int, Output]:
        """:meth:`receive_in_order` (acks deferred) for datagrams from the peer in a row (a
        read that GRO joined), while each takes that path: how many did, and their output."""
        rid, n = self.recv_id, 0
        for d in datagrams:
            if len(d) < HEADER_SIZE or d[0] != 1 or d[1] or (d[2] << 8 | d[3]) != rid:
                break
            if not self._in_order(d, now, True):
                break
            n += 1
        return n, self._take()

    def receive_in_order(
        self, data: bytes | memoryview, now: float, defer_ack: bool
    ) -> Output | None:
        """:meth:`receive`'s fast path for a bulk transfer's usual datagram: ST_DATA without
        extensions (the caller checked the first two bytes), the next packet in order, with
        nothing waiting to be reordered, acking nothing new. It does what :meth:`receive`
        does for such a packet without decoding a :class:`Packet` or making an ack result;
        None (nothing done) for any other packet, which then takes the full path."""
        return self._take() if self._in_order(data, now, defer_ack) else None

    def _in_order(self, data: bytes | memoryview, now: float, defer_ack: bool) -> bool:
        if self.state is not State.CONNECTED:
            return False
        _t, _e, _c, ts, _d, wnd, seq_nr, ack_nr = HEADER.unpack_from(data)
        rcv, snd = self.receiver, self.sender
        if (
            seq_nr != (rcv.ack_nr + 1) & 0xFFFF
            or ack_nr != (snd.snd_una - 1) & 0xFFFF
            or rcv.reordering
            or rcv.eof_pkt is not None
        ):
            return False
        snd.on_old_ack(snd.snd_una - 1)
        if ts:
            self._reply_micro = (int(now * 1e6) - ts) & 0xFFFFFFFF
        self.peer_window = wnd
        if wnd:
            self._zero_window_at = None
        rcv.ack_nr += 1
        if len(data) > HEADER_SIZE:
            self._out.events.append(Data(data[HEADER_SIZE:]))
        self._need_ack = True
        self._acks_owed += 1
        ack = not defer_ack or self._acks_owed >= MAX_DEFERRED_ACKS
        if self._sendbuf or snd.resend or self._close_asked:
            self._flush(now, ack=ack)
        elif ack:  # nothing of ours to send: all _flush would do
            self._send_state(now)
        return True

    def _send_run(self, count: int, now: float) -> None:
        """Send *count* full DATA packets from the send buffer: what :meth:`_transmit` does
        for each, with the header fields they share (all but seq_nr) worked out once."""
        rcv, snd = self.receiver, self.sender
        size = count * PAYLOAD_SIZE
        data = bytes(self._sendbuf[:size])
        del self._sendbuf[:size]
        payloads = [data[at : at + PAYLOAD_SIZE] for at in range(0, size, PAYLOAD_SIZE)]
        seq = snd.add_sent(payloads, now)
        sack = rcv.sack()
        self._advertised = wnd = self._window()
        tail = b"" if sack is None else bytes((0, len(sack))) + sack
        fields = (0x01, 0 if sack is None else 1, self.send_id, int(now * 1e6) & 0xFFFFFFFF)
        rest = (self._reply_micro, min(wnd, 0xFFFFFFFF))
        ack, pack, out = rcv.ack_nr & 0xFFFF, HEADER.pack, self._out.datagrams
        for payload in payloads:
            out.append(pack(*fields, *rest, seq & 0xFFFF, ack) + tail + payload)
            seq += 1
        if self._rto_at is None:
            self._rto_at = now + snd.rto
        self._last_sent = now
        if not rcv.reordering:
            self._need_ack = False
            self._acks_owed = 0
