"""The peer wire codec (swarm.wire): exact bytes, round trips, incremental parsing, bounds."""

from __future__ import annotations

import struct
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm import bencoding, wire
from swarm.errors import ProtocolError
from swarm.wire import (
    CHOKE,
    HAVE_ALL,
    HAVE_NONE,
    INTERESTED,
    KEEP_ALIVE,
    NOT_INTERESTED,
    UNCHOKE,
    AllowedFast,
    Bitfield,
    Cancel,
    Extended,
    ExtendedHandshake,
    Handshake,
    Have,
    Parser,
    Piece,
    Port,
    Reject,
    Request,
    Suggest,
)

NUM_PIECES = 37  # not a multiple of 8, so bitfields have spare bits
INFO_HASH = bytes(range(20))
PEER_ID = b"-SW0001-abcdefghijkl"


def feed_all(parser: Parser, chunks: list[bytes]) -> list[Any]:
    """Feed *chunks* in order, the way a connection would: after the handshake, call feed(b"")
    to parse what the parser held back."""
    out: list[Any] = []
    for chunk in chunks:
        got = parser.feed(chunk)
        out += got
        if got and isinstance(got[0], Handshake):
            out += parser.feed(b"")
    return out


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    bounds = [0, *points, len(data)]
    return [data[a:b] for a, b in zip(bounds, bounds[1:], strict=False)]


# -- strategies ----------------------------------------------------------------------------

indexes = st.integers(0, NUM_PIECES - 1)
u32 = st.integers(0, 2**32 - 1)
lengths = st.integers(1, wire.BLOCK_SIZE)
messages = st.one_of(
    st.sampled_from([KEEP_ALIVE, CHOKE, UNCHOKE, INTERESTED, NOT_INTERESTED, HAVE_ALL, HAVE_NONE]),
    st.builds(Have, indexes),
    st.builds(
        Bitfield,
        st.lists(st.booleans(), min_size=NUM_PIECES, max_size=NUM_PIECES).map(
            wire.bitfield_from_bools
        ),
    ),
    st.builds(Request, indexes, u32, lengths),
    st.builds(Piece, indexes, u32, st.binary(max_size=300)),
    st.builds(Cancel, indexes, u32, u32),
    st.builds(Port, st.integers(0, 65535)),
    st.builds(Suggest, indexes),
    st.builds(Reject, indexes, u32, u32),
    st.builds(AllowedFast, indexes),
    st.builds(Extended, st.integers(0, 255), st.binary(max_size=300)),
)


# -- exact bytes ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("msg", "data"),
    [
        (KEEP_ALIVE, b"\x00\x00\x00\x00"),
        (CHOKE, b"\x00\x00\x00\x01\x00"),
        (UNCHOKE, b"\x00\x00\x00\x01\x01"),
        (INTERESTED, b"\x00\x00\x00\x01\x02"),
        (NOT_INTERESTED, b"\x00\x00\x00\x01\x03"),
        (Have(5), b"\x00\x00\x00\x05\x04\x00\x00\x00\x05"),
        (Bitfield(b"\xa0\x80"), b"\x00\x00\x00\x03\x05\xa0\x80"),
        (
            Request(1, 16384, 16384),
            b"\x00\x00\x00\x0d\x06\x00\x00\x00\x01\x00\x00\x40\x00\x00\x00\x40\x00",
        ),
        (Piece(2, 0, b"abc"), b"\x00\x00\x00\x0c\x07\x00\x00\x00\x02\x00\x00\x00\x00abc"),
        (
            Cancel(1, 16384, 16384),
            b"\x00\x00\x00\x0d\x08\x00\x00\x00\x01\x00\x00\x40\x00\x00\x00\x40\x00",
        ),
        (Port(6881), b"\x00\x00\x00\x03\x09\x1a\xe1"),
        (Suggest(3), b"\x00\x00\x00\x05\x0d\x00\x00\x00\x03"),
        (HAVE_ALL, b"\x00\x00\x00\x01\x0e"),
        (HAVE_NONE, b"\x00\x00\x00\x01\x0f"),
        (
            Reject(1, 0, 16384),
            b"\x00\x00\x00\x0d\x10\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x40\x00",
        ),
        (AllowedFast(7), b"\x00\x00\x00\x05\x11\x00\x00\x00\x07"),
        (Extended(0, b"de"), b"\x00\x00\x00\x04\x14\x00de"),
    ],
)
def test_encode_matches_the_spec_bytes(msg: Any, data: bytes) -> None:
    assert wire.encode(msg) == data
    assert Parser(expect_handshake=False, num_pieces=9, fast=True).feed(data) == [msg]


def test_piece_header_is_the_start_of_a_piece_message() -> None:
    block = bytes(range(256)) * 64
    header = wire.encode_piece_header(9, 32768, len(block))
    assert len(header) == 13
    assert header + block == wire.encode(Piece(9, 32768, block))


def test_encode_refuses_what_does_not_fit_the_wire() -> None:
    with pytest.raises(TypeError):
        wire.encode("choke")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        wire.encode(Extended(256, b""))
    with pytest.raises(ValueError):
        wire.encode(Have(-1))


# -- handshake -----------------------------------------------------------------------------


def test_reserved_bits() -> None:
    assert wire.make_reserved() == b"\x00\x00\x00\x00\x00\x10\x00\x04"
    assert wire.make_reserved(fast=False, extended=False, dht=True) == b"\x00" * 7 + b"\x01"
    assert wire.make_reserved(fast=False, extended=False) == bytes(8)


def test_handshake_bytes_and_round_trip() -> None:
    hs = Handshake(wire.make_reserved(), INFO_HASH, PEER_ID)
    data = hs.encode()
    assert len(data) == wire.HANDSHAKE_LEN
    assert data == b"\x13BitTorrent protocol" + bytes(5) + b"\x10\x00\x04" + INFO_HASH + PEER_ID
    back = Handshake.decode(data)
    assert back == hs
    assert back.supports_fast and back.supports_extended and not back.supports_dht
    plain = Handshake.decode(Handshake(bytes(8), INFO_HASH, PEER_ID).encode())
    assert not plain.supports_fast and not plain.supports_extended


@pytest.mark.parametrize(
    "data",
    [
        b"\x13BitTorrent protocoX" + bytes(48),
        b"\x12BitTorrent protocol" + bytes(48),
        b"\x13BitTorrent protocol" + bytes(47),
        b"\x13BitTorrent protocol" + bytes(49),
    ],
)
def test_handshake_decode_rejects_a_wrong_protocol_or_length(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        Handshake.decode(data)


def test_handshake_needs_the_right_field_sizes() -> None:
    with pytest.raises(ValueError):
        Handshake(bytes(8), INFO_HASH[:19], PEER_ID)


def test_parser_rejects_a_bad_handshake_before_all_68_bytes_arrive() -> None:
    parser = Parser()
    assert parser.feed(b"\x13BitTorrent") == []
    with pytest.raises(ProtocolError):
        parser.feed(b" protocoX")
    with pytest.raises(ProtocolError):
        Parser().feed(b"GET / HTTP/1.1\r\n")


def test_parser_holds_back_what_follows_the_handshake_until_asked() -> None:
    # A peer typically sends its handshake and HAVE_ALL in one segment, before we know
    # whether the fast extension is on or how many pieces the torrent has.
    hs = Handshake(wire.make_reserved(), INFO_HASH, PEER_ID)
    stream = hs.encode() + wire.encode(HAVE_ALL) + wire.encode(Have(40))
    parser = Parser()
    assert parser.feed(stream) == [hs]
    assert parser.buffered == 14
    parser.fast = hs.supports_fast
    parser.set_num_pieces(50)
    assert parser.feed(b"") == [HAVE_ALL, Have(40)]
    assert parser.buffered == 0


# -- round trips and incremental parsing ---------------------------------------------------


@given(messages)
def test_every_message_round_trips(msg: Any) -> None:
    parser = Parser(expect_handshake=False, num_pieces=NUM_PIECES, fast=True)
    assert parser.feed(wire.encode(msg)) == [msg]
    assert parser.buffered == 0


@settings(max_examples=300)
@given(st.lists(messages, max_size=30), st.lists(st.integers(0, 10**6), max_size=40))
def test_any_split_of_a_stream_gives_the_same_messages(msgs: list[Any], cuts: list[int]) -> None:
    hs = Handshake(wire.make_reserved(), INFO_HASH, PEER_ID)
    stream = hs.encode() + b"".join(wire.encode(m) for m in msgs)
    whole = feed_all(Parser(num_pieces=NUM_PIECES, fast=True), [stream])
    assert whole == [hs, *msgs]
    parts = feed_all(Parser(num_pieces=NUM_PIECES, fast=True), split(stream, cuts))
    assert parts == whole


@given(st.lists(messages, max_size=20))
def test_byte_at_a_time(msgs: list[Any]) -> None:
    stream = b"".join(wire.encode(m) for m in msgs)
    parser = Parser(expect_handshake=False, num_pieces=NUM_PIECES, fast=True)
    got = feed_all(parser, [stream[i : i + 1] for i in range(len(stream))])
    assert got == msgs


def test_one_big_chunk_of_many_pieces() -> None:
    block = bytes(range(256)) * 64
    msgs = [Piece(i % NUM_PIECES, (i // NUM_PIECES) * len(block), block) for i in range(300)]
    stream = b"".join(wire.encode(m) for m in msgs)
    parser = Parser(expect_handshake=False, num_pieces=NUM_PIECES)
    assert parser.feed(stream + stream[:100]) == msgs
    assert parser.buffered == 100
    assert parser.feed(stream[100:]) == msgs


def test_the_parser_does_not_keep_the_callers_buffer() -> None:
    data = bytearray(wire.encode(Piece(1, 0, b"abcd")) + wire.encode(Have(2))[:3])
    parser = Parser(expect_handshake=False, num_pieces=4)
    [piece] = parser.feed(data)
    data[:] = bytes(len(data))  # the caller reuses its receive buffer
    assert piece == Piece(1, 0, b"abcd")
    assert parser.feed(wire.encode(Have(2))[3:]) == [Have(2)]


# -- hostile input -------------------------------------------------------------------------


@settings(max_examples=500)
@given(
    st.binary(max_size=400),
    st.lists(st.integers(0, 10**6), max_size=10),
    st.booleans(),
    st.booleans(),
)
def test_garbage_gives_protocol_error_and_nothing_else(
    data: bytes, cuts: list[int], expect_handshake: bool, fast: bool
) -> None:
    parser = Parser(expect_handshake=expect_handshake, num_pieces=NUM_PIECES, fast=fast)
    try:
        msgs = feed_all(parser, split(data, cuts))
    except ProtocolError:
        with pytest.raises(ProtocolError):
            parser.feed(b"")  # dead for good
    else:
        # Whatever was accepted is exactly what the bytes say; the rest is held.
        encoded = b"".join(m.encode() if isinstance(m, Handshake) else wire.encode(m) for m in msgs)
        assert data[: len(encoded)] == encoded
        assert parser.buffered == len(data) - len(encoded)


@given(st.binary(min_size=1, max_size=200))
def test_random_message_bodies_raise_only_protocol_error(body: bytes) -> None:
    data = struct.pack(">I", len(body)) + body
    parser = Parser(expect_handshake=False, num_pieces=NUM_PIECES, fast=True)
    try:
        [msg] = parser.feed(data)
    except ProtocolError:
        return
    assert wire.encode(msg) == data


@pytest.mark.parametrize("prefix", [wire.MAX_EXTENDED + 1, 2**32 - 1, 10**7])
def test_an_oversize_prefix_is_rejected_before_the_body_arrives(prefix: int) -> None:
    parser = Parser(expect_handshake=False, num_pieces=NUM_PIECES)
    with pytest.raises(ProtocolError):
        parser.feed(struct.pack(">I", prefix))
    with pytest.raises(ProtocolError):
        parser.feed(b"")  # the parser stays dead


def test_each_message_id_has_its_own_bound_checked_on_the_id_byte() -> None:
    # A PIECE may not announce more than one block, even though the general bound
    # (for bitfields and extended messages) is larger.
    parser = Parser(expect_handshake=False, num_pieces=NUM_PIECES)
    with pytest.raises(ProtocolError, match="PIECE"):
        parser.feed(struct.pack(">IB", 9 + wire.BLOCK_SIZE + 1, 7))
    parser = Parser(expect_handshake=False, num_pieces=NUM_PIECES)
    assert parser.feed(struct.pack(">IB", 9 + wire.BLOCK_SIZE, 7)) == []  # fine so far
    # Split between prefix and id byte: still checked as soon as the id arrives.
    parser = Parser(expect_handshake=False, num_pieces=NUM_PIECES)
    assert parser.feed(struct.pack(">I", 100_000)) == []
    with pytest.raises(ProtocolError):
        parser.feed(b"\x04")


@pytest.mark.parametrize(
    "data",
    [
        b"\x00\x00\x00\x06\x04\x00\x00\x00\x01\x00",  # HAVE of 6 bytes
        b"\x00\x00\x00\x04\x04\x00\x00\x00",  # HAVE of 4 bytes
        b"\x00\x00\x00\x02\x00\x00",  # CHOKE with a body
        b"\x00\x00\x00\x0c\x06" + bytes(11),  # REQUEST of 12 bytes
        b"\x00\x00\x00\x04\x09\x1a\xe1\x00",  # PORT of 4 bytes
        b"\x00\x00\x00\x08\x07\x00\x00\x00\x01\x00\x00\x00",  # PIECE without its begin
        b"\x00\x00\x00\x01\x14",  # EXTENDED without an id
    ],
)
def test_fixed_size_messages_with_the_wrong_length(data: bytes) -> None:
    with pytest.raises(ProtocolError):
        Parser(expect_handshake=False, num_pieces=NUM_PIECES, fast=True).feed(data)


def test_bitfield_of_the_wrong_length() -> None:
    for nbytes in (4, 6):  # 37 pieces need 5 bytes
        with pytest.raises(ProtocolError):
            Parser(expect_handshake=False, num_pieces=NUM_PIECES).feed(
                wire.encode(Bitfield(bytes(nbytes)))
            )


def test_bitfield_with_spare_bits_set() -> None:
    bits = bytes(4) + b"\x04"  # bit 37 (index 37, past the end) of 37 pieces
    with pytest.raises(ProtocolError, match="spare"):
        Parser(expect_handshake=False, num_pieces=NUM_PIECES).feed(wire.encode(Bitfield(bits)))
    last = bytes(4) + b"\x08"  # piece 36, the last one: fine
    assert Parser(expect_handshake=False, num_pieces=NUM_PIECES).feed(
        wire.encode(Bitfield(last))
    ) == [Bitfield(last)]


def test_bitfield_is_checked_once_the_size_is_known() -> None:
    parser = Parser(expect_handshake=False)
    assert parser.feed(wire.encode(Bitfield(b"\xff"))) == [Bitfield(b"\xff")]
    parser.set_num_pieces(3)
    with pytest.raises(ProtocolError):
        parser.feed(wire.encode(Bitfield(b"\xff")))


@pytest.mark.parametrize(
    "msg",
    [
        Have(NUM_PIECES),
        Request(NUM_PIECES, 0, 16384),
        Piece(NUM_PIECES, 0, b"x"),
        Cancel(2**32 - 1, 0, 1),
        Reject(NUM_PIECES, 0, 16384),
        Suggest(NUM_PIECES),
        AllowedFast(NUM_PIECES),
    ],
)
def test_piece_index_out_of_range(msg: Any) -> None:
    with pytest.raises(ProtocolError):
        Parser(expect_handshake=False, num_pieces=NUM_PIECES, fast=True).feed(wire.encode(msg))


@pytest.mark.parametrize("length", [0, wire.BLOCK_SIZE + 1, 2**32 - 1])
def test_request_of_a_bad_size(length: int) -> None:
    with pytest.raises(ProtocolError):
        Parser(expect_handshake=False, num_pieces=NUM_PIECES).feed(
            wire.encode(Request(0, 0, length))
        )


def test_max_block_sets_the_request_and_piece_bounds() -> None:
    parser = Parser(expect_handshake=False, num_pieces=NUM_PIECES, max_block=1024)
    assert parser.feed(wire.encode(Request(0, 0, 1024))) == [Request(0, 0, 1024)]
    with pytest.raises(ProtocolError):
        parser.feed(wire.encode(Piece(0, 0, bytes(1025))))


@pytest.mark.parametrize(
    "msg", [Suggest(1), HAVE_ALL, HAVE_NONE, Reject(1, 0, 16384), AllowedFast(1)]
)
def test_fast_messages_need_the_fast_extension(msg: Any) -> None:
    with pytest.raises(ProtocolError, match="fast"):
        Parser(expect_handshake=False, num_pieces=NUM_PIECES).feed(wire.encode(msg))
    assert Parser(expect_handshake=False, num_pieces=NUM_PIECES, fast=True).feed(
        wire.encode(msg)
    ) == [msg]


@pytest.mark.parametrize("mid", [10, 11, 12, 18, 19, 21, 255])
def test_unknown_message_id(mid: int) -> None:
    parser = Parser(expect_handshake=False, num_pieces=NUM_PIECES, fast=True)
    with pytest.raises(ProtocolError, match="unknown"):
        parser.feed(struct.pack(">IB", 5, mid))  # rejected on the id byte, body or not


def test_extended_messages_are_capped() -> None:
    parser = Parser(expect_handshake=False, num_pieces=NUM_PIECES)
    with pytest.raises(ProtocolError):
        parser.feed(struct.pack(">IBB", wire.MAX_EXTENDED + 1, 20, 0))


def test_messages_before_a_bad_one_are_lost_with_the_connection() -> None:
    parser = Parser(expect_handshake=False, num_pieces=NUM_PIECES)
    with pytest.raises(ProtocolError):
        parser.feed(wire.encode(Have(1)) + wire.encode(Have(NUM_PIECES)))
    with pytest.raises(ProtocolError):
        parser.feed(wire.encode(Have(1)))


# -- bitfield helpers ----------------------------------------------------------------------


def test_bitfield_from_bools_known_bytes() -> None:
    haves = [True, False, True, True, False, False, False, False, True]
    assert wire.bitfield_from_bools(haves) == b"\xb0\x80"
    assert wire.bools_from_bitfield(b"\xb0\x80", 9) == haves
    assert wire.bitfield_from_bools([]) == b""
    assert wire.bools_from_bitfield(b"", 0) == []
    assert wire.bitfield_from_bools([True] * 16) == b"\xff\xff"


@given(st.lists(st.booleans(), max_size=2000))
def test_bitfield_helpers_round_trip(haves: list[bool]) -> None:
    bits = wire.bitfield_from_bools(haves)
    assert len(bits) == (len(haves) + 7) // 8
    wire.check_bitfield(bits, len(haves))  # spare bits are zero
    assert wire.bools_from_bitfield(bits, len(haves)) == haves


def test_bools_from_bitfield_rejects_a_malformed_bitfield() -> None:
    with pytest.raises(ProtocolError):
        wire.bools_from_bitfield(b"\xff", 9)
    with pytest.raises(ProtocolError):
        wire.bools_from_bitfield(b"\xff", 7)


def test_bitfield_helpers_on_a_big_torrent() -> None:
    haves = [i % 3 == 0 for i in range(1_000_003)]
    bits = wire.bitfield_from_bools(haves)
    assert wire.bools_from_bitfield(bits, len(haves)) == haves


# -- BEP 6 allowed-fast set ----------------------------------------------------------------


def test_allowed_fast_set_bep6_vectors() -> None:
    info_hash = b"\xaa" * 20
    assert wire.allowed_fast_set("80.4.4.200", info_hash, 1313, 7) == [
        1059, 431, 808, 1217, 287, 376, 1188
    ]  # fmt: skip
    assert wire.allowed_fast_set("80.4.4.200", info_hash, 1313, 9) == [
        1059, 431, 808, 1217, 287, 376, 1188, 353, 508
    ]  # fmt: skip


def test_allowed_fast_set_masks_the_address_to_its_24() -> None:
    info_hash = b"\xaa" * 20
    expected = wire.allowed_fast_set("80.4.4.200", info_hash, 1313)
    assert len(expected) == 10
    assert wire.allowed_fast_set("80.4.4.1", info_hash, 1313) == expected
    assert wire.allowed_fast_set("::ffff:80.4.4.9", info_hash, 1313) == expected
    assert wire.allowed_fast_set("80.4.5.200", info_hash, 1313) != expected


def test_allowed_fast_set_small_torrents_and_ipv6() -> None:
    assert sorted(wire.allowed_fast_set("10.0.0.1", INFO_HASH, 3)) == [0, 1, 2]
    assert wire.allowed_fast_set("10.0.0.1", INFO_HASH, 0) == []
    assert wire.allowed_fast_set("2001:db8::1", INFO_HASH, 1313) == []


# -- BEP 10 extended handshake -------------------------------------------------------------


def test_extended_handshake_round_trip() -> None:
    hs = ExtendedHandshake(
        m={"ut_metadata": 3, "ut_pex": 1},
        v="swarm 0.1",
        p=6881,
        reqq=500,
        yourip=b"\x7f\x00\x00\x01",
        metadata_size=31235,
        extra={b"upload_only": 1},
    )
    payload = hs.encode()
    assert payload == bencoding.encode(
        {
            b"m": {b"ut_metadata": 3, b"ut_pex": 1},
            b"metadata_size": 31235,
            b"p": 6881,
            b"reqq": 500,
            b"upload_only": 1,
            b"v": b"swarm 0.1",
            b"yourip": b"\x7f\x00\x00\x01",
        }
    )
    assert ExtendedHandshake.decode(payload) == hs
    empty = ExtendedHandshake()
    assert empty.encode() == b"d1:mdee"
    assert ExtendedHandshake.decode(empty.encode()) == empty


def test_extended_handshake_from_libtorrent() -> None:
    # The shape libtorrent 2.0 sends (keys sorted, as bencoding requires).
    payload = (
        b"d12:complete_agoi-1e1:md11:lt_donthavei7e10:share_modei8e11:upload_onlyi3e"
        b"12:ut_holepunchi4e11:ut_metadatai2e6:ut_pexi1ee13:metadata_sizei5207e"
        b"1:pi51413e4:reqqi500e11:upload_onlyi0e1:v17:qBittorrent/4.6.26:yourip4:\x7f\x00\x00\x01e"
    )
    hs = ExtendedHandshake.decode(payload)
    assert hs.m == {
        "lt_donthave": 7,
        "share_mode": 8,
        "upload_only": 3,
        "ut_holepunch": 4,
        "ut_metadata": 2,
        "ut_pex": 1,
    }
    assert hs.v == "qBittorrent/4.6.2"
    assert hs.p == 51413
    assert hs.reqq == 500
    assert hs.yourip == b"\x7f\x00\x00\x01"
    assert hs.metadata_size == 5207
    assert hs.extra == {b"complete_ago": -1, b"upload_only": 0}
    # Carried in an extended message with id 0, through the parser.
    parser = Parser(expect_handshake=False, num_pieces=NUM_PIECES)
    [msg] = parser.feed(wire.encode(Extended(0, payload)))
    assert ExtendedHandshake.decode(msg.payload) == hs


def test_extended_handshake_ignores_keys_of_the_wrong_type() -> None:
    payload = bencoding.encode(
        {
            b"m": {b"ut_metadata": b"two", b"ut_pex": 1, b"bad": 300},
            b"v": 7,
            b"p": b"6881",
            b"reqq": -5,
            b"yourip": b"\x01\x02\x03",
            b"metadata_size": [1],
        }
    )
    assert ExtendedHandshake.decode(payload) == ExtendedHandshake(m={"ut_pex": 1})
    assert ExtendedHandshake.decode(bencoding.encode({b"m": [1, 2]})) == ExtendedHandshake()


@pytest.mark.parametrize("payload", [b"", b"li1ee", b"i5e", b"d1:m", b"de junk", b"\xff"])
def test_extended_handshake_that_is_not_a_dictionary(payload: bytes) -> None:
    with pytest.raises(ProtocolError):
        ExtendedHandshake.decode(payload)


def test_an_extended_handshake_that_is_not_bencoding_says_so() -> None:
    with pytest.raises(ProtocolError, match="handshake is malformed: not valid bencoding$"):
        ExtendedHandshake.decode(b"d1:m")


def test_a_block_parsed_in_place_is_a_view_of_bytes_but_a_copy_of_a_mutable_buffer() -> None:
    block = bytes(range(256)) * 64
    data = wire.encode(wire.Piece(3, 16384, block))
    [got] = wire.Parser(expect_handshake=False).feed(data)
    assert isinstance(got, wire.Piece) and isinstance(got.block, memoryview)
    assert got.block == block and got.block.obj is data  # no copy of immutable bytes
    # A bytearray (or memoryview) fed in may change afterwards: the block must not.
    buf = bytearray(data)
    [got] = wire.Parser(expect_handshake=False).feed(buf)
    buf[20:40] = bytes(20)
    assert isinstance(got, wire.Piece) and bytes(got.block) == block
    # A block completed from the parser's own buffer (split over two reads) is a copy too.
    p = wire.Parser(expect_handshake=False)
    assert p.feed(data[:100]) == []
    [got] = p.feed(data[100:])
    assert isinstance(got, wire.Piece) and isinstance(got.block, bytes) and got.block == block
