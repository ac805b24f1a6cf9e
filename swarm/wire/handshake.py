"""The BEP 3 handshake (68 bytes) and its reserved bits (BEP 4 numbering: BEP 5, 6, 10)."""

from __future__ import annotations

from dataclasses import dataclass

from swarm.errors import ProtocolError

__all__ = ["HANDSHAKE_LEN", "PROTOCOL", "Handshake", "make_reserved"]

PROTOCOL = b"\x13BitTorrent protocol"
HANDSHAKE_LEN = 68


def make_reserved(*, fast: bool = True, extended: bool = True, dht: bool = False) -> bytes:
    """The 8 reserved handshake bytes advertising the given extensions (BEP 4 bit numbers)."""
    r = bytearray(8)
    if extended:
        r[5] |= 0x10
    if fast:
        r[7] |= 0x04
    if dht:
        r[7] |= 0x01
    return bytes(r)


@dataclass(frozen=True, slots=True)
class Handshake:
    """The 68-byte BEP 3 handshake: protocol string, reserved bits, info_hash, peer_id."""

    reserved: bytes
    info_hash: bytes
    peer_id: bytes

    def __post_init__(self) -> None:
        if len(self.reserved) != 8 or len(self.info_hash) != 20 or len(self.peer_id) != 20:
            raise ValueError("a handshake needs 8 reserved bytes, a 20-byte info_hash and peer_id")

    @property
    def supports_fast(self) -> bool:
        return bool(self.reserved[7] & 0x04)

    @property
    def supports_extended(self) -> bool:
        return bool(self.reserved[5] & 0x10)

    @property
    def supports_dht(self) -> bool:
        return bool(self.reserved[7] & 0x01)

    def encode(self) -> bytes:
        return PROTOCOL + self.reserved + self.info_hash + self.peer_id

    @classmethod
    def decode(cls, data: bytes) -> Handshake:
        """Read exactly 68 handshake bytes; :class:`ProtocolError` if they are not one."""
        if len(data) != HANDSHAKE_LEN or data[:20] != PROTOCOL:
            raise ProtocolError("the peer did not send a BitTorrent handshake")
        return cls(bytes(data[20:28]), bytes(data[28:48]), bytes(data[48:68]))
