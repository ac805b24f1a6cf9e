"""The codec both ends of a tracker speak (BEP 15 packets, BEP 23/7 compact peers), as bytes."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker import codec
from tracker.errors import PacketError

IH = bytes(range(20))
PID = b"-SW0001-" + b"x" * 12

ipv4 = st.ip_addresses(v=4).map(str)
ipv6 = st.ip_addresses(v=6).map(str)
ports = st.integers(1, 65535)
u32 = st.integers(0, 2**32 - 1)
u64 = st.integers(0, 2**64 - 1)


def test_the_numbers_bep_15_gives() -> None:
    assert codec.PROTOCOL_ID == 0x41727101980
    assert [int(a) for a in codec.Action] == [0, 1, 2, 3]
    assert codec.EVENT_NUMBERS == {"": 0, "completed": 1, "started": 2, "stopped": 3}
    assert all(codec.EVENT_NAMES[n] == name for name, n in codec.EVENT_NUMBERS.items())


def test_connect_request_and_reply_bytes() -> None:
    assert codec.connect_request(7) == bytes.fromhex("00000417271019800000000000000007")
    reply = codec.connect_reply(7, 0x1122334455667788)
    assert reply == bytes.fromhex("00000000000000071122334455667788")
    assert codec.reply_header(reply) == (codec.Action.CONNECT, 7)
    assert codec.parse_connect_reply(reply) == 0x1122334455667788


@settings(max_examples=200, deadline=None)
@given(
    st.tuples(u64, u32),
    st.tuples(u64, u64, u64),
    st.sampled_from(list(codec.EVENT_NUMBERS)),
    st.tuples(st.integers(-(2**31), 2**32 - 1), st.integers(-1, 2**31 - 1), ports),
)
def test_announce_request_fields_at_their_bep_15_offsets(
    ids: tuple[int, int],
    figures: tuple[int, int, int],
    event: str,
    rest: tuple[int, int, int],
) -> None:
    (conn, tid), (down, left, up), (key, numwant, port) = ids, figures, rest
    packet = codec.announce_request(
        conn, tid, info_hash=IH, peer_id=PID, port=port, downloaded=down, left=left,
        uploaded=up, event=event, key=key, numwant=numwant,
    )  # fmt: skip

    def at(start: int, end: int) -> int:
        return int.from_bytes(packet[start:end], "big")

    assert len(packet) == 98 and packet[16:36] == IH and packet[36:56] == PID
    assert (at(0, 8), at(8, 12), at(12, 16)) == (conn, codec.Action.ANNOUNCE, tid)
    assert (at(56, 64), at(64, 72), at(72, 80)) == (down, left, up)
    assert (at(80, 84), at(84, 88), at(88, 92)) == (codec.EVENT_NUMBERS[event], 0, key % 2**32)
    assert int.from_bytes(packet[92:96], "big", signed=True) == numwant and at(96, 98) == port
    assert codec.REQUEST_HEADER.unpack_from(packet) == (conn, 1, tid)


def test_unknown_event_is_a_regular_announce() -> None:
    packet = codec.announce_request(1, 2, info_hash=IH, peer_id=PID, port=1, event="paused")
    assert codec.ANNOUNCE_REQUEST.unpack_from(packet)[8] == 0


@settings(max_examples=200, deadline=None)
@given(st.tuples(u32, u32, u32, u32), st.lists(st.tuples(ipv4, ports), max_size=30))
def test_announce_reply_round_trip_ipv4(
    head: tuple[int, int, int, int], peers: list[tuple[str, int]]
) -> None:
    tid, interval, leechers, seeders = head
    compact = b"".join(codec.pack_peer(ip, port) for ip, port in peers)
    reply = codec.announce_reply(tid, interval, leechers, seeders, compact)
    assert codec.reply_header(reply) == (codec.Action.ANNOUNCE, tid)
    parsed = codec.parse_announce_reply(reply)
    assert (parsed.interval, parsed.leechers, parsed.seeders) == (interval, leechers, seeders)
    assert parsed.peers == peers


@settings(max_examples=200, deadline=None)
@given(peers=st.lists(st.tuples(ipv6, ports), max_size=20))
def test_compact_ipv6_peers_round_trip(peers: list[tuple[str, int]]) -> None:
    compact = b"".join(codec.pack_peer(ip, port) for ip, port in peers)
    assert len(compact) == 18 * len(peers)
    assert codec.parse_peers(compact, ipv6=True) == peers
    reply = codec.announce_reply(1, 60, 0, 0, compact)
    assert codec.parse_announce_reply(reply, ipv6=True).peers == peers


def test_compact_peers_bytes_ragged_tail_and_port_zero() -> None:
    assert codec.pack_peer("10.0.0.1", 6881) == bytes([10, 0, 0, 1, 0x1A, 0xE1])
    assert codec.pack_peer("::1", 1) == bytes(15) + b"\x01\x00\x01"
    assert codec.pack_peer("not an address", 1) == b""
    data = codec.pack_peer("1.2.3.4", 5) + codec.pack_peer("5.6.7.8", 0) + b"\x01\x02\x03"
    assert codec.parse_peers(data) == [("1.2.3.4", 5)]


def test_scrape_request_and_reply() -> None:
    other = b"\x02" * 20
    packet = codec.scrape_request(9, 4, [IH, other])
    assert codec.REQUEST_HEADER.unpack_from(packet) == (9, codec.Action.SCRAPE, 4)
    assert packet[16:] == IH + other
    reply = codec.scrape_reply(4, [(3, 7, 2), (0, 0, 1)])
    assert codec.reply_header(reply) == (codec.Action.SCRAPE, 4)
    assert codec.parse_scrape_reply(reply) == [(3, 7, 2), (0, 0, 1)]


def test_error_reply() -> None:
    reply = codec.error_reply(5, "torrent not allowed")
    assert reply == struct.pack(">II", 3, 5) + b"torrent not allowed"
    assert codec.reply_header(reply) == (codec.Action.ERROR, 5)
    assert codec.parse_error_reply(reply) == "torrent not allowed"
    assert codec.parse_error_reply(reply[:8] + b"\xff") == "\ufffd"


@pytest.mark.parametrize(
    ("reader", "data"),
    [
        (codec.reply_header, b"\x00" * 7),
        (codec.parse_connect_reply, b"\x00" * 15),
        (codec.parse_announce_reply, b"\x00\x00\x00\x01" + b"\x00" * 15),
        (codec.parse_scrape_reply, b"\x00" * 7),
    ],
)
def test_short_replies_are_packet_errors(reader: object, data: bytes) -> None:
    with pytest.raises(PacketError, match="too short"):
        reader(data)  # type: ignore[operator]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120), st.booleans())
def test_random_replies_read_or_raise_packet_error(data: bytes, ipv6: bool) -> None:
    for reader in (codec.reply_header, codec.parse_connect_reply, codec.parse_scrape_reply):
        try:
            reader(data)
        except PacketError:
            pass
    try:
        codec.parse_announce_reply(data, ipv6=ipv6)
    except PacketError:
        pass
    codec.parse_error_reply(data)
