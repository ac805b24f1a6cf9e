"""The receive side of a uTP connection (BEP 29): in-order delivery through a bounded reorder
buffer, the selective ack of what is buffered, and the end of the stream at ``eof_pkt``.

Sequence numbers here are unbounded ints (see :func:`swarm.utp.packet.unwrap`). A packet more
than :data:`REORDER_LIMIT` ahead of the next one expected, or past the FIN, is dropped before
it is stored, so a hostile peer can make the buffer hold at most REORDER_LIMIT packets.
"""

from __future__ import annotations

__all__ = ["MAX_SACK_BYTES", "REORDER_LIMIT", "Receiver"]

REORDER_LIMIT = 1024  # packets (libutp: REORDER_BUFFER_MAX_SIZE)
MAX_SACK_BYTES = 32  # a selective ack covers ack_nr + 2 .. ack_nr + 257 at most


class Receiver:
    """What arrived of the peer's stream: ``ack_nr`` is the last packet delivered in order."""

    __slots__ = ("ack_nr", "buffered_bytes", "eof_pkt", "eof_reached", "_reorder")

    def __init__(self, ack_nr: int) -> None:
        self.ack_nr = ack_nr
        self.eof_pkt: int | None = None
        self.eof_reached = False
        self.buffered_bytes = 0
        self._reorder: dict[int, bytes] = {}

    @property
    def reordering(self) -> bool:
        """Packets wait in the buffer (so an ack should carry a selective ack)."""
        return bool(self._reorder)

    def add(self, seq: int, payload: bytes, fin: bool) -> tuple[list[bytes], bool]:
        """Take the packet *seq* (a FIN when *fin*): the payloads now deliverable in order,
        and whether the packet was new (a duplicate or a dropped one is not)."""
        ahead = seq - self.ack_nr
        if ahead <= 0 or ahead > REORDER_LIMIT or self.eof_reached:
            return [], False
        if self.eof_pkt is not None and seq > self.eof_pkt:
            return [], False
        if fin:
            if self.eof_pkt is not None and self.eof_pkt != seq:
                return [], False
            self.eof_pkt = seq
            payload = b""
        if ahead > 1:
            if seq in self._reorder:
                return [], False
            self._reorder[seq] = payload
            self.buffered_bytes += len(payload)
            return [], True
        out = [payload] if payload else []
        self.ack_nr = seq
        reorder = self._reorder
        while reorder:
            nxt = reorder.pop(self.ack_nr + 1, None)
            if nxt is None:
                break
            self.ack_nr += 1
            self.buffered_bytes -= len(nxt)
            if nxt:
                out.append(nxt)
        if self.eof_pkt is not None and self.ack_nr >= self.eof_pkt:
            self.eof_reached = True
            self._reorder.clear()
            self.buffered_bytes = 0
        return out, True

    def sack(self) -> bytes | None:
        """The selective-ack bitmask of the buffered packets (bit i of the mask is
        ``ack_nr + 2 + i``, least significant bit of each byte first), or None."""
        if not self._reorder:
            return None
        base = self.ack_nr + 2
        top = min(max(self._reorder) - base, MAX_SACK_BYTES * 8 - 1)
        mask = 0
        for seq in self._reorder:
            bit = seq - base
            if 0 <= bit <= top:
                mask |= 1 << bit
        size = (top // 32 + 1) * 4
        return mask.to_bytes(size, "little")
