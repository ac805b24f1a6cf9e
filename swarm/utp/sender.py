"""The send side of a uTP connection (BEP 29): the packets in flight, what an ack (cumulative
and selective) acknowledges, which packets it shows lost, and the RTT and timeout.

Sequence numbers here are unbounded ints; the wire's 16-bit ``ack_nr`` is unwrapped near the
last packet sent, and an ack of a packet never sent makes :meth:`Sender.on_ack` return None
(the whole packet is then ignored: a spoofed or broken peer). A packet is lost when three
duplicate acks name the one before it, or when three packets after it are selectively acked
(BEP 29 "packet loss"); each is resent once by that rule (``fast_resend_seq``), at most
:data:`MAX_FAST_RESENDS` per ack. RTT and its variance follow BEP 29, from packets sent once;
the timeout is ``max(rtt + 4 * rtt_var, MIN_RTO)``, doubled by each consecutive expiry.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from swarm.utp.packet import PacketType, unwrap

__all__ = ["MIN_RTO", "AckResult", "OutPacket", "Sender"]

MIN_RTO = 0.5  # seconds (BEP 29)
INITIAL_RTO = 1.0
MAX_RTO = 60.0
DUPLICATE_ACKS = 3
MAX_FAST_RESENDS = 4
INF = float("inf")


@dataclass(slots=True)
class OutPacket:
    """A packet sent and not yet acked; ``need_resend`` once a timeout gave it up."""

    seq: int
    type: PacketType
    payload: bytes
    sent_at: float = 0.0
    transmissions: int = 0
    need_resend: bool = False


class AckResult:
    """What one incoming packet's ack did: payload bytes newly acked, whether the cumulative
    ack moved, the least RTT of the packets it acked (seconds; inf with none) and packets
    now known lost (to resend at once). (A plain class: one is made per packet received.)"""

    __slots__ = ("bytes_acked", "lost", "min_rtt", "progressed")

    def __init__(self) -> None:
        self.bytes_acked = 0
        self.progressed = False
        self.min_rtt = INF
        self.lost: list[OutPacket] = []


class Sender:
    """The packets in flight from ``snd_una`` (oldest unacked) to ``snd_nxt`` (next to use)."""

    __slots__ = (
        "_dup_acks",
        "_last_ack",
        "fast_resend_seq",
        "in_flight",
        "packets",
        "resend",
        "rto",
        "rtt",
        "rtt_var",
        "snd_nxt",
        "snd_una",
        "unacked_bytes",
    )

    def __init__(self, seq_nr: int) -> None:
        self.snd_nxt = seq_nr
        self.snd_una = seq_nr
        self.packets: dict[int, OutPacket] = {}
        self.unacked_bytes = 0  # payload bytes of the packets not acked
        self.in_flight = 0  # payload bytes sent, not acked, not given up by a timeout
        self.resend: deque[int] = deque()  # given up by a timeout, to send again in order
        self.rtt = 0.0
        self.rtt_var = 0.0
        self.rto = INITIAL_RTO
        self.fast_resend_seq = seq_nr
        self._dup_acks = 0
        self._last_ack = seq_nr - 1

    def add(self, ptype: PacketType, payload: bytes) -> OutPacket:
        """A new packet with the next sequence number (sent by the caller)."""
        pkt = OutPacket(self.snd_nxt, ptype, payload)
        self.packets[self.snd_nxt] = pkt
        self.unacked_bytes += len(payload)
        self.snd_nxt += 1
        return pkt

    def add_sent(self, payloads: list[bytes], now: float) -> int:
        """New DATA packets of *payloads*, sent now by the caller (as :meth:`add` then
        :meth:`sent` each); the sequence number of the first."""
        first = seq = self.snd_nxt
        packets = self.packets
        data = PacketType.DATA
        total = 0
        for payload in payloads:
            packets[seq] = OutPacket(seq, data, payload, now, 1)
            total += len(payload)
            seq += 1
        self.snd_nxt = seq
        self.unacked_bytes += total
        self.in_flight += total
        return first

    def sent(self, pkt: OutPacket, now: float) -> None:
        if pkt.transmissions == 0 or pkt.need_resend:
            self.in_flight += len(pkt.payload)
        pkt.need_resend = False
        pkt.transmissions += 1
        pkt.sent_at = now

    def timed_out(self) -> None:
        """Every packet in flight counts as lost: out of the window, resent in order."""
        for pkt in self.packets.values():
            if pkt.transmissions and not pkt.need_resend:
                pkt.need_resend = True
                self.in_flight -= len(pkt.payload)
        self.resend = deque(self.packets)
        self._dup_acks = 0
        self.rto = min(self.rto * 2, MAX_RTO)

    def _acked(self, pkt: OutPacket, res: AckResult, now: float) -> None:
        """*pkt* is acked (the caller took it out of ``packets`` and sets ``rto`` after)."""
        size = len(pkt.payload)
        if not pkt.need_resend:
            self.in_flight -= size
        res.bytes_acked += size
        self.unacked_bytes -= size
        if pkt.transmissions == 1:
            sample = now - pkt.sent_at
            if sample < 0.0:
                sample = 0.0
            if sample < res.min_rtt:
                res.min_rtt = sample
            if self.rtt == 0.0:
                self.rtt, self.rtt_var = sample, sample / 2
            else:
                self.rtt_var += (abs(self.rtt - sample) - self.rtt_var) / 4
                self.rtt += (sample - self.rtt) / 8

    def on_ack(
        self, ack_wire: int, sack: bytes | None, is_state: bool, now: float
    ) -> AckResult | None:
        """Apply the ack fields of one incoming packet; None if it acks what was never sent."""
        last = self.snd_nxt - 1
        ack = unwrap(ack_wire, last)
        if ack > last:
            return None
        res = AckResult()
        if ack < self.snd_una - 1:
            return res  # an old ack, overtaken by a later one
        packets = self.packets
        before = len(packets)
        for seq in range(self.snd_una, ack + 1):
            pkt = packets.pop(seq, None)
            if pkt is not None:
                self._acked(pkt, res, now)
        if ack >= self.snd_una:
            self.snd_una = ack + 1
            res.progressed = True
        if sack is not None and packets:
            self._selective(ack, sack, res, now)
        while self.snd_una < self.snd_nxt and self.snd_una not in packets:
            self.snd_una += 1
            res.progressed = True
        if res.progressed or not is_state or not packets or res.bytes_acked:
            self._dup_acks = 0
        elif ack == self._last_ack:
            self._dup_acks += 1
            if self._dup_acks == DUPLICATE_ACKS and self.snd_una >= self.fast_resend_seq:
                pkt = packets.get(self.snd_una)
                if pkt is not None and pkt.transmissions:
                    res.lost.append(pkt)
                    self.fast_resend_seq = self.snd_una + 1
        if len(packets) != before:
            self.rto = min(max(self.rtt + 4 * self.rtt_var, MIN_RTO), MAX_RTO)
        self._last_ack = max(self._last_ack, ack)
        if self.fast_resend_seq < self.snd_una:
            self.fast_resend_seq = self.snd_una
        return res

    def on_old_ack(self, ack: int) -> None:
        """What :meth:`on_ack` does for a data packet acking ``snd_una - 1`` (nothing new)."""
        self._dup_acks = 0
        if ack > self._last_ack:
            self._last_ack = ack

    def _selective(self, ack: int, sack: bytes, res: AckResult, now: float) -> None:
        base = ack + 2
        mask = int.from_bytes(sack, "little")
        bits = min(len(sack) * 8, self.snd_nxt - base)  # bits past what we sent are ignored
        if bits <= 0:
            return
        mask &= (1 << bits) - 1
        packets = self.packets
        acked_above = 0
        lost: list[OutPacket] = []
        for i in range(bits - 1, -2, -1):  # from the newest down to ack + 1 (i = -1)
            seq = base + i
            if i >= 0 and mask >> i & 1:
                acked_above += 1
                pkt = packets.pop(seq, None)
                if pkt is not None:
                    self._acked(pkt, res, now)
                continue
            if acked_above >= DUPLICATE_ACKS and seq >= self.fast_resend_seq:
                pkt = packets.get(seq)
                if pkt is not None and pkt.transmissions:
                    lost.append(pkt)
        lost.reverse()  # oldest first
        lost = lost[:MAX_FAST_RESENDS]
        if lost:
            self.fast_resend_seq = lost[-1].seq + 1
            res.lost.extend(lost)
