"""BEP 9 (ut_metadata): the codec with the BEP's own bytes, the assembler, the server."""

from __future__ import annotations

import hashlib
import random
import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm import bencoding
from swarm.errors import ProtocolError
from swarm.wire.ut_metadata import (
    MAX_METADATA_SIZE,
    METADATA_PIECE,
    MetadataAssembler,
    MetadataComplete,
    MetadataData,
    MetadataHashFailed,
    MetadataReject,
    MetadataRequest,
    MetadataServer,
    decode,
    encode,
)

# --- the codec, with the bytes BEP 9 shows ---


def test_the_beps_request_example() -> None:
    raw = b"d8:msg_typei0e5:piecei0ee"
    assert decode(raw) == MetadataRequest(0)
    assert encode(MetadataRequest(0)) == raw


def test_the_beps_data_example_with_trailing_piece_bytes() -> None:
    piece = b"x" * 3425
    raw = b"d8:msg_typei1e5:piecei0e10:total_sizei3425ee" + piece
    assert decode(raw) == MetadataData(0, 3425, piece)
    assert encode(MetadataData(0, 3425, piece)) == raw


def test_the_beps_reject_example() -> None:
    raw = b"d8:msg_typei2e5:piecei0ee"
    assert decode(raw) == MetadataReject(0)
    assert encode(MetadataReject(0)) == raw


def test_a_header_with_extra_keys_is_read() -> None:
    raw = b"d1:ai1e1:bi2e8:msg_typei0e5:piecei3e1:zli1ei2eee"
    assert decode(raw) == MetadataRequest(3)


def test_piece_bytes_that_look_like_bencoding_are_data() -> None:
    # the piece bytes are an info dict themselves: the header must end at its own "e"
    piece = bencoding.encode({b"name": b"e" * 30, b"length": 5})
    raw = encode(MetadataData(0, len(piece), piece))
    assert decode(raw) == MetadataData(0, len(piece), piece)


def test_a_full_piece_and_a_short_last_one() -> None:
    total = METADATA_PIECE + 10
    first = MetadataData(0, total, b"a" * METADATA_PIECE)
    last = MetadataData(1, total, b"b" * 10)
    assert decode(encode(first)) == first
    assert decode(encode(last)) == last


def test_an_unknown_msg_type_is_ignored() -> None:
    assert decode(b"d8:msg_typei7e5:piecei0ee") is None


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"le",
        b"i0e",
        b"d8:msg_typei0ee",  # no piece
        b"d5:piecei0ee",  # no msg_type
        b"d8:msg_type1:05:piecei0ee",  # msg_type not an integer
        b"d8:msg_typei0e5:piecei-1ee",  # negative piece
        b"d8:msg_typei0e5:piecei0ee" + b"extra",  # bytes after a request
        b"d8:msg_typei2e5:piecei0ee" + b"x",  # bytes after a reject
        b"d8:msg_typei1e5:piecei0ee" + b"x",  # data without total_size
        b"d8:msg_typei1e5:piecei0e10:total_sizei0ee",  # empty metadata
        b"d8:msg_typei1e5:piecei0e10:total_sizei8388609ee" + b"x" * 16384,  # over 8 MiB
        b"d8:msg_typei1e5:piecei1e10:total_sizei100ee" + b"x" * 100,  # piece past the end
        b"d8:msg_typei1e5:piecei0e10:total_sizei100ee" + b"x" * 99,  # last piece short
        b"d8:msg_typei1e5:piecei0e10:total_sizei16385ee" + b"x" * 100,  # a middle piece short
        b"d8:msg_typei1e5:piecei0e10:total_sizei100ee" + b"x" * 101,  # too long
        b"d8:msg_typei01e5:piecei0ee",  # not canonical bencoding
        b"d8:msg_typei0e5:piecei0e",  # unterminated
        b"d" + b"1:a" * 300 + b"e",  # no dictionary in the first 256 bytes
        b"d" + b"1:e" * 40 + b"e",  # nor by its 32nd "e"
    ],
)
def test_malformed_messages_are_protocol_errors(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode(raw)


@settings(max_examples=500)
@given(st.binary(max_size=1000))
def test_random_bytes_never_raise_anything_but_protocol_error(raw: bytes) -> None:
    try:
        decode(raw)
    except ProtocolError:
        pass


@given(st.binary(max_size=400))
def test_random_bytes_after_a_valid_header_are_read_or_refused(tail: bytes) -> None:
    raw = b"d8:msg_typei1e5:piecei0e10:total_sizei100ee" + tail
    try:
        assert decode(raw) == MetadataData(0, 100, tail)
    except ProtocolError:
        assert len(tail) != 100


def test_decoding_a_hostile_header_is_cheap_in_memory() -> None:
    hostile = b"d" + b"1:e" * 85 + b"x" * (1 << 20)
    tracemalloc.start()
    with pytest.raises(ProtocolError):
        decode(hostile)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 3 << 20  # the payload's copy, not a copy per try


# --- the assembler: several peers, rejects, timeouts, a bad hash ---

INFO = bencoding.encode({b"name": b"f", b"piece length": 16384, b"pieces": b"p" * 20 * 2000})
INFO_HASH = hashlib.sha1(INFO).digest()


def _data(piece: int, info: bytes = INFO) -> MetadataData:
    reply = MetadataServer(info).answer(MetadataRequest(piece))
    assert isinstance(reply, MetadataData)
    return reply


def test_the_assembler_fetches_from_several_peers_with_a_reject_and_a_timeout() -> None:
    assert len(INFO) > 2 * METADATA_PIECE  # three pieces, the last short
    asm = MetadataAssembler(INFO_HASH, len(INFO), timeout=10.0)
    assert asm.num_pieces == 3
    # each piece to one peer at a time
    assert asm.next_request("a", now=0.0) == MetadataRequest(0)
    assert asm.next_request("b", now=0.0) == MetadataRequest(1)
    assert asm.next_request("c", now=0.0) == MetadataRequest(2)
    assert asm.next_request("d", now=1.0) is None
    # b rejects piece 1: d gets it, b is not asked for it again
    asm.on_reject("b", MetadataReject(1))
    assert asm.next_request("b", now=2.0) is None
    assert asm.next_request("d", now=2.0) == MetadataRequest(1)
    assert asm.on_data("a", _data(0)) is None
    assert asm.on_data("d", _data(1)) is None
    # c never answers: after the timeout piece 2 goes to b
    assert asm.next_request("b", now=9.0) is None
    assert asm.next_request("b", now=10.0) == MetadataRequest(2)
    assert asm.on_data("c", _data(2)) is None  # late, from the peer it was taken from: ignored
    assert asm.have == 2
    assert asm.on_data("b", _data(2)) == MetadataComplete(INFO)


def test_a_peer_that_goes_away_frees_its_pieces() -> None:
    asm = MetadataAssembler(INFO_HASH, len(INFO))
    assert asm.next_request("a", 0.0) == MetadataRequest(0)
    asm.peer_gone("a")
    assert asm.next_request("b", 0.0) == MetadataRequest(0)


def test_rejects_for_pieces_out_of_range_are_not_remembered() -> None:
    asm = MetadataAssembler(INFO_HASH, len(INFO))
    rejects = [MetadataReject(piece) for piece in range(3, 20_000)]
    tracemalloc.start()
    for reject in rejects:
        asm.on_reject("a", reject)
    retained, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert retained < 16 << 10  # a set of 20,000 (peer, piece) pairs would take a megabyte
    assert asm.next_request("a", 0.0) == MetadataRequest(0)


def test_expire_names_the_late_peers() -> None:
    asm = MetadataAssembler(INFO_HASH, len(INFO), timeout=5.0)
    asm.next_request("a", 0.0)
    asm.next_request("b", 3.0)
    assert asm.expire(6.0) == [("a", 0)]


def test_a_bad_hash_names_the_contributors_and_starts_over() -> None:
    bad = bytearray(INFO)
    bad[-2] ^= 1
    asm = MetadataAssembler(INFO_HASH, len(INFO))
    for peer in ("a", "b", "c"):
        asm.next_request(peer, 0.0)
    asm.on_data("a", _data(0))
    asm.on_data("b", _data(1))
    result = asm.on_data("c", _data(2, bytes(bad)))
    assert result == MetadataHashFailed(frozenset({"a", "b", "c"}))
    assert asm.have == 0
    # the contributors get nothing more; a fresh peer starts from piece 0
    assert asm.next_request("a", 1.0) is None
    assert asm.next_request("d", 1.0) == MetadataRequest(0)


def test_data_inconsistent_with_the_handshake_is_a_protocol_error() -> None:
    asm = MetadataAssembler(INFO_HASH, len(INFO))
    asm.next_request("a", 0.0)
    with pytest.raises(ProtocolError):
        asm.on_data("a", MetadataData(0, len(INFO) + 1, INFO[:METADATA_PIECE]))
    with pytest.raises(ProtocolError):
        asm.on_data("a", MetadataData(5, len(INFO), INFO[:10]))  # out of range
    with pytest.raises(ProtocolError):
        asm.on_data("a", MetadataData(0, len(INFO), INFO[:10]))  # short middle piece


def test_unsolicited_data_is_ignored() -> None:
    asm = MetadataAssembler(INFO_HASH, len(INFO))
    assert asm.on_data("a", _data(0)) is None
    assert asm.have == 0


@pytest.mark.parametrize("size", [0, -1, MAX_METADATA_SIZE + 1, 1 << 40])
def test_an_unacceptable_metadata_size_is_refused_without_allocating(size: int) -> None:
    tracemalloc.start()
    with pytest.raises(ProtocolError):
        MetadataAssembler(INFO_HASH, size)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert peak < 64 << 10


def test_the_largest_metadata_is_accepted() -> None:
    asm = MetadataAssembler(INFO_HASH, MAX_METADATA_SIZE)
    assert asm.num_pieces == 512


def test_a_round_trip_through_server_codec_and_assembler_in_random_order() -> None:
    rng = random.Random(7)
    info = bencoding.encode({b"pieces": rng.randbytes(100_000)})
    server = MetadataServer(info)
    asm = MetadataAssembler(hashlib.sha1(info).digest(), server.metadata_size)
    peers = ["p0", "p1", "p2"]
    asked = [(p, asm.next_request(p, 0.0)) for p in peers * 3]
    result = None
    while asked:
        peer, request = asked.pop(rng.randrange(len(asked)))
        if request is None:
            continue
        reply = decode(encode(server.answer(request)))
        assert isinstance(reply, MetadataData)
        result = asm.on_data(peer, reply) or result
        asked.append((peer, asm.next_request(peer, 1.0)))
    assert result == MetadataComplete(info)


# --- the server ---


def test_the_server_answers_in_16_kib_pieces_and_rejects_out_of_range() -> None:
    server = MetadataServer(INFO)
    assert server.metadata_size == len(INFO)
    assert server.num_pieces == 3
    assert server.answer(MetadataRequest(0)) == MetadataData(0, len(INFO), INFO[:METADATA_PIECE])
    last = server.answer(MetadataRequest(2))
    assert isinstance(last, MetadataData)
    assert last.data == INFO[2 * METADATA_PIECE :]
    assert server.answer(MetadataRequest(3)) == MetadataReject(3)
    assert server.answer(MetadataRequest(1 << 30)) == MetadataReject(1 << 30)
