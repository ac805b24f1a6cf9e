"""The uTP packet (BEP 29): the 20-byte header, the extension chain, the selective ack.

One codec for both ends. :func:`decode` turns a datagram into a :class:`Packet` or raises
:class:`UtpPacketError` (too short, a version other than 1, an unknown type, an extension
running past the datagram); extensions other than the selective ack (libtorrent's close
reason, type 3; libutp's extension bits, type 2) are skipped by their length, as BEP 29 says.
BEP 29 makes a selective ack a multiple of 4 bytes, and :func:`encode` writes only those, but
libtorrent sends ``ceil(span / 8)`` bytes: any length is read (an empty one is no mask), since
dropping the packet would drop the data it carries and stall the stream.
:func:`encode` writes a packet; :func:`header` is the connection's fast path for the same.
:func:`looks_like_utp` tells a uTP datagram from a DHT one (bencoded: ``d`` first) on a shared
port by the first byte alone.

Sequence and ack numbers are 16 bits on the wire; :func:`unwrap` maps one to the unbounded
integer nearest a known one, so the state machine compares plain ints and wraps only here.
"""

from __future__ import annotations

import enum
import struct
from typing import NamedTuple

from swarm.errors import ProtocolError

__all__ = [
    "HEADER",
    "HEADER_SIZE",
    "VERSION",
    "Packet",
    "PacketType",
    "UtpPacketError",
    "decode",
    "encode",
    "header",
    "looks_like_utp",
    "unwrap",
]

VERSION = 1
HEADER_SIZE = 20
EXT_NONE = 0
EXT_SELECTIVE_ACK = 1
SEQ_MOD = 0x10000
TS_MASK = 0xFFFFFFFF

_HEADER = struct.Struct(">BBHIIIHH")
HEADER = _HEADER  # type and version, extension, connection id, timestamps, window, seq, ack


class PacketType(enum.IntEnum):
    """The type nibble of the first byte (BEP 29 ``type``)."""

    DATA = 0
    FIN = 1
    STATE = 2
    RESET = 3
    SYN = 4


_TYPES = tuple(PacketType)


class UtpPacketError(ProtocolError):
    """A datagram that is not a well-formed uTP version 1 packet."""


class Packet(NamedTuple):
    """One uTP packet. ``timestamp`` and ``timestamp_difference`` are microseconds modulo
    2**32; ``wnd_size`` is the sender's receive window in bytes; ``sack`` is the selective
    ack bitmask (bit 0 of byte 0 is ``ack_nr + 2``), None when the packet has none. A named
    tuple, not a frozen dataclass: one is made for every datagram received, and a frozen
    dataclass's ``__init__`` (an ``object.__setattr__`` per field) cost 3x as much."""

    type: PacketType
    connection_id: int
    seq_nr: int
    ack_nr: int
    timestamp: int = 0
    timestamp_difference: int = 0
    wnd_size: int = 0
    sack: bytes | None = None
    payload: bytes = b""


def looks_like_utp(data: bytes | memoryview) -> bool:
    """Whether *data* may be a uTP packet (version 1, a known type, a whole header), judged
    by its first byte and length; a DHT message (bencoded, so ``d`` = 0x64) never is."""
    return len(data) >= HEADER_SIZE and data[0] & 0x0F == VERSION and data[0] >> 4 <= 4


def header(
    ptype: int,
    connection_id: int,
    timestamp: int,
    timestamp_difference: int,
    wnd_size: int,
    seq_nr: int,
    ack_nr: int,
    sack: bytes | None = None,
) -> bytes:
    """The header (and selective-ack extension, when *sack* is given) of a packet; the
    payload follows it. Numbers are reduced to their field's width here."""
    head = _HEADER.pack(
        ptype << 4 | VERSION,
        EXT_NONE if sack is None else EXT_SELECTIVE_ACK,
        connection_id & 0xFFFF,
        timestamp & TS_MASK,
        timestamp_difference & TS_MASK,
        min(max(wnd_size, 0), TS_MASK),
        seq_nr & 0xFFFF,
        ack_nr & 0xFFFF,
    )
    if sack is None:
        return head
    return head + bytes((EXT_NONE, len(sack))) + sack


def encode(packet: Packet) -> bytes:
    """The datagram of *packet*."""
    sack = packet.sack
    if sack is not None and (not sack or len(sack) % 4 or len(sack) > 252):
        raise ValueError("a selective ack is 4 to 252 bytes, a multiple of 4")
    return (
        header(
            packet.type,
            packet.connection_id,
            packet.timestamp,
            packet.timestamp_difference,
            packet.wnd_size,
            packet.seq_nr,
            packet.ack_nr,
            packet.sack,
        )
        + packet.payload
    )


def decode(data: bytes | memoryview) -> Packet:
    """The packet in the datagram *data*; :class:`UtpPacketError` if it is not one."""
    if len(data) < HEADER_SIZE:
        raise UtpPacketError(f"a uTP packet is at least {HEADER_SIZE} bytes, not {len(data)}")
    first, ext, conn_id, ts, ts_diff, wnd, seq_nr, ack_nr = _HEADER.unpack_from(data)
    if first & 0x0F != VERSION:
        raise UtpPacketError(f"uTP version {first & 0x0F}, not {VERSION}")
    kind = first >> 4
    if kind > 4:
        raise UtpPacketError(f"unknown uTP packet type {kind}")
    sack = None
    pos = HEADER_SIZE
    while ext != EXT_NONE:
        if pos + 2 > len(data):
            raise UtpPacketError("a uTP extension header runs past the packet")
        nxt, length = data[pos], data[pos + 1]
        pos += 2
        if pos + length > len(data):
            raise UtpPacketError("a uTP extension runs past the packet")
        if ext == EXT_SELECTIVE_ACK and length:
            sack = bytes(data[pos : pos + length])
        pos += length
        ext = nxt
    return Packet(_TYPES[kind], conn_id, seq_nr, ack_nr, ts, ts_diff, wnd, sack, bytes(data[pos:]))


def unwrap(wire: int, near: int) -> int:
    """The integer congruent to the 16-bit *wire* number modulo 2**16 that is nearest *near*
    (an unbounded sequence number the reader knows): 65535 read near 65536 is 65535, 0 read
    near 65535 is 65536."""
    d = (wire - near) & 0xFFFF
    return near + d - SEQ_MOD if d >= 0x8000 else near + d
