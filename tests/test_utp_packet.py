"""The uTP packet codec (BEP 29): the header layout byte by byte, the selective ack, round
trips, garbage, and telling uTP from DHT datagrams by the first byte."""

from __future__ import annotations

import random
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarm.errors import ProtocolError
from swarm.utp.packet import (
    Packet,
    PacketType,
    UtpPacketError,
    decode,
    encode,
    header,
    looks_like_utp,
    unwrap,
)


def test_header_layout_is_bep29s() -> None:
    # type ST_SYN (4) in the high nibble, version 1 in the low; then extension, conn id,
    # timestamp, timestamp difference, wnd_size, seq_nr, ack_nr, all big-endian.
    data = header(PacketType.SYN, 0x1234, 0x01020304, 0x05060708, 0x0A0B0C0D, 0xBEEF, 0xCAFE)
    assert data == bytes.fromhex("41 00 1234 01020304 05060708 0a0b0c0d beef cafe")
    pkt = decode(data)
    assert pkt == Packet(PacketType.SYN, 0x1234, 0xBEEF, 0xCAFE, 0x01020304, 0x05060708, 0x0A0B0C0D)


def test_selective_ack_extension_layout() -> None:
    # ack_nr 100; bit 0 of byte 0 is packet 102, bit 7 of byte 0 is 109, bit 0 of byte 1 110
    sack = bytes([0b1000_0001, 0b0000_0001, 0, 0])
    data = encode(Packet(PacketType.STATE, 7, 1, 100, sack=sack))
    assert data[1] == 1  # the first extension: selective ack
    assert data[20:22] == bytes([0, 4])  # no next extension, 4 bytes
    assert data[22:] == sack
    assert decode(data).sack == sack


def test_selective_acks_of_any_length_are_read_as_libtorrent_sends_them() -> None:
    # libtorrent: ceil(span / 8) bytes, not a multiple of 4; and its close reason (type 3)
    head = bytearray(header(PacketType.DATA, 1, 2, 3, 4, 5, 6))
    head[1] = 1
    data = bytes(head) + bytes([3, 3]) + b"\x05\x00\x01" + bytes([0, 6]) + bytes(6) + b"x"
    pkt = decode(data)
    assert pkt.sack == b"\x05\x00\x01" and pkt.payload == b"x"
    empty = bytes(head) + bytes([0, 0]) + b"y"
    assert decode(empty).sack is None and decode(empty).payload == b"y"


def test_unknown_extension_is_skipped_by_its_length() -> None:
    head = bytearray(header(PacketType.DATA, 1, 2, 3, 4, 5, 6))
    head[1] = 2  # extension bits (libutp), 8 bytes, then a selective ack, then payload
    data = bytes(head) + bytes([1, 8]) + bytes(8) + bytes([0, 4]) + b"\xff" * 4 + b"payload"
    pkt = decode(data)
    assert pkt.sack == b"\xff" * 4
    assert pkt.payload == b"payload"


@pytest.mark.parametrize(
    "data, says",
    [
        (b"", "at least 20"),
        (bytes(19), "at least 20"),
        (b"\x02" + bytes(19), "version 2"),
        (b"\x51" + bytes(19), "type 5"),
        (b"\x21\x01" + bytes(18), "runs past"),  # an extension with no header
        (b"\x21\x01" + bytes(18) + b"\x00\x08" + bytes(4), "runs past"),
        (b"d1:ad2:id20:" + bytes(20), "version"),  # a DHT query
    ],
)
def test_bad_packets_are_one_error_type(data: bytes, says: str) -> None:
    with pytest.raises(UtpPacketError, match=says):
        decode(data)
    assert issubclass(UtpPacketError, ProtocolError)


@given(
    st.sampled_from(list(PacketType)),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.integers(0, 0xFFFFFFFF),
    st.none() | st.integers(1, 63).map(lambda n: bytes(range(n * 4 % 256))[: n * 4] or b"\0" * 4),
    st.binary(max_size=64),
)
def test_round_trip(
    ptype: PacketType,
    cid: int,
    seq: int,
    ack: int,
    ts: int,
    diff: int,
    wnd: int,
    sack: bytes | None,
    payload: bytes,
) -> None:
    if sack is not None and len(sack) % 4:
        sack = sack + bytes(-len(sack) % 4)
    pkt = Packet(ptype, cid, seq, ack, ts, diff, wnd, sack, payload)
    assert decode(encode(pkt)) == pkt


@given(st.binary(max_size=200))
def test_garbage_never_crashes(data: bytes) -> None:
    try:
        decode(data)
    except UtpPacketError:
        pass


def test_random_bytes_decode_or_fail_cleanly() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        data = bytes(rng.getrandbits(8) for _ in range(rng.randrange(0, 60)))
        if data:
            data = bytes([rng.choice([0x01, 0x11, 0x21, 0x31, 0x41])]) + data[1:]
        try:
            decode(data)
        except UtpPacketError:
            pass


def test_first_byte_tells_utp_from_dht() -> None:
    for ptype in PacketType:
        assert looks_like_utp(header(ptype, 1, 2, 3, 4, 5, 6))
    assert not looks_like_utp(b"d1:ad2:id20:" + bytes(40))  # bencoded KRPC
    assert not looks_like_utp(b"\x41" + bytes(5))  # too short for a header
    assert not looks_like_utp(struct.pack(">B", 0x51) + bytes(19))  # no type 5


def test_unwrap_crosses_the_16_bit_boundary() -> None:
    assert unwrap(65535, 65536) == 65535
    assert unwrap(0, 65535) == 65536
    assert unwrap(5, 65530) == 65541
    assert unwrap(65530, 65541) == 65530
    assert unwrap(100, 100) == 100
