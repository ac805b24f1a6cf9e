"""The uTP connections of one UDP socket (BEP 29), sans I/O: datagrams routed by source
address and connection id, SYNs accepted, strays answered with ST_RESET, time handed on.

A connection is keyed by ``(address, recv_id)``. A SYN with id *i* belongs to the connection
``(address, i + 1)``: a new one when there is none (and the mux accepts, under
``max_connections``), else that connection (a repeated SYN, whose answer was lost). An
ST_RESET names either our ``recv_id`` or, answering a packet of ours it did not know, our
``send_id`` (so ``recv_id`` +- 1), as libutp reads it. A packet for no connection is answered
with ST_RESET, at most :data:`RESETS_PER_SECOND`, so a flood cannot make us a reflector.

A connection that closed cleanly stays :data:`TIME_WAIT` seconds (it re-acks the peer's
repeated FIN); one reset or timed out is forgotten at the next :meth:`UtpMux.tick`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from swarm.utp.connection import UtpConnection
from swarm.utp.events import Output, State
from swarm.utp.packet import HEADER_SIZE, Packet, PacketType, UtpPacketError, decode, header

__all__ = ["RESETS_PER_SECOND", "TIME_WAIT", "Routed", "UtpMux"]

Address = tuple[str, int]

TIME_WAIT = 2.0
RESETS_PER_SECOND = 100
MAX_CONNECTIONS = 2000


@dataclass(slots=True)
class Routed:
    """Where one datagram went: its connection (None: to none; the output's datagrams then
    go back to the sender's address), what the connection said, and whether the datagram
    made the connection (an accepted SYN)."""

    connection: UtpConnection | None
    output: Output = field(default_factory=Output)
    accepted: bool = False


class UtpMux:
    """All uTP connections on one socket; *accept*: whether incoming SYNs make connections."""

    def __init__(
        self, rng: random.Random, *, accept: bool = True, max_connections: int = MAX_CONNECTIONS
    ) -> None:
        self.rng = rng
        self.accept = accept
        self.max_connections = max_connections
        self._conns: dict[tuple[Address, int], UtpConnection] = {}
        self._ended_at: dict[tuple[Address, int], float] = {}
        self._resets = RESETS_PER_SECOND
        self._resets_at = 0.0

    def __len__(self) -> int:
        return len(self._conns)

    @property
    def connections(self) -> list[UtpConnection]:
        return list(self._conns.values())

    def connect(self, addr: Address, now: float) -> tuple[UtpConnection, Output]:
        """A new connection to *addr* and its SYN."""
        while True:
            recv_id = self.rng.getrandbits(16)
            if (addr, recv_id) not in self._conns:
                break
        conn, out = UtpConnection.connect(addr, recv_id, self.rng, now)
        self._conns[(addr, conn.recv_id)] = conn
        return conn, out

    def receive(
        self, data: bytes | memoryview, addr: Address, now: float, *, defer_ack: bool = False
    ) -> Routed:
        """Route the datagram *data* from *addr*; a malformed one is dropped. *defer_ack*: see
        :meth:`UtpConnection.receive <swarm.utp.connection.UtpConnection.receive>`."""
        if len(data) >= HEADER_SIZE and data[0] == 0x01 and data[1] == 0:  # ST_DATA, no ext
            conn = self._conns.get((addr, data[2] << 8 | data[3]))
            if conn is not None:
                out = conn.receive_in_order(data, now, defer_ack)
                if out is not None:
                    return Routed(conn, out)
        try:
            pkt = decode(data)
        except UtpPacketError:
            return Routed(None)
        conn_id = pkt.connection_id
        if pkt.type is PacketType.SYN:
            conn = self._conns.get((addr, (conn_id + 1) & 0xFFFF))
            if conn is not None:
                return Routed(conn, conn.receive(pkt, now))
            if not self.accept or len(self._conns) >= self.max_connections:
                return Routed(None, self._reset(pkt, now))
            conn, out = UtpConnection.accept(pkt, addr, self.rng, now)
            self._conns[(addr, conn.recv_id)] = conn
            return Routed(conn, out, accepted=True)
        conn = self._conns.get((addr, conn_id))
        if conn is None and pkt.type is PacketType.RESET:
            for other in ((conn_id + 1) & 0xFFFF, (conn_id - 1) & 0xFFFF):
                cand = self._conns.get((addr, other))
                if cand is not None and cand.send_id == conn_id:
                    conn = cand
                    break
        if conn is None:
            return Routed(None, Output() if pkt.type is PacketType.RESET else self._reset(pkt, now))
        return Routed(conn, conn.receive(pkt, now, defer_ack=defer_ack))

    def unreachable(
        self, addr: Address, datagram: bytes, now: float
    ) -> tuple[UtpConnection, Output] | None:
        """The kernel says *datagram*, sent to *addr*, met an ICMP error (port or host
        unreachable): the connection whose SYN it was, refused, if there is one."""
        try:
            pkt = decode(datagram)
        except UtpPacketError:
            return None
        conn = self._conns.get((addr, pkt.connection_id))
        if pkt.type is not PacketType.SYN or conn is None:
            return None
        return conn, conn.unreachable(now)

    def tick(self, now: float) -> list[tuple[UtpConnection, Output]]:
        """Time for every connection; forgets the ended ones (after TIME_WAIT if clean)."""
        out = []
        for key, conn in list(self._conns.items()):
            o = conn.tick(now)
            if o.datagrams or o.events:
                out.append((conn, o))
            if conn.state is State.RESET:
                self._drop(key)
            elif conn.state is State.CLOSED:
                ended = self._ended_at.setdefault(key, now)
                if now - ended >= TIME_WAIT:
                    self._drop(key)
        return out

    def forget(self, conn: UtpConnection) -> None:
        """Drop *conn* now (its owner is done with it)."""
        self._drop((conn.addr, conn.recv_id))

    def _drop(self, key: tuple[Address, int]) -> None:
        self._conns.pop(key, None)
        self._ended_at.pop(key, None)

    def _reset(self, pkt: Packet, now: float) -> Output:
        if now - self._resets_at >= 1.0:
            self._resets_at = now
            self._resets = RESETS_PER_SECOND
        if self._resets <= 0:
            return Output()
        self._resets -= 1
        seq = self.rng.getrandbits(16)
        reset = header(PacketType.RESET, pkt.connection_id, int(now * 1e6), 0, 0, seq, pkt.seq_nr)
        return Output([reset])
