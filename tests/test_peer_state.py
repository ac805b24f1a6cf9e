"""The sans-I/O peer state (BEP 3, 6, 10): bytes in, messages and bytes out, a fake clock."""

from __future__ import annotations

import pytest

from swarm import wire
from swarm.errors import ProtocolError
from swarm.peer_state import (
    MAX_QUEUED_REQUESTS,
    OUR_REQQ,
    PeerBitfield,
    PeerState,
    Timer,
    Torrent,
)

INFO_HASH = bytes(range(20))
OURS = b"-SW0100-ourselves000"
THEIRS = b"-XX0001-theirs000000"
PIECE = 4 * wire.BLOCK_SIZE
NUM_PIECES = 5
TOTAL = 4 * PIECE + 1000  # the last piece is short


def handshake(peer_id: bytes = THEIRS, info_hash: bytes = INFO_HASH, fast: bool = True) -> bytes:
    reserved = wire.make_reserved(fast=fast, extended=True)
    return wire.Handshake(reserved, info_hash, peer_id).encode()


def enc(*msgs: wire.Message) -> bytes:
    return b"".join(wire.encode(m) for m in msgs)


def parse(data: bytes) -> list[object]:
    return list(wire.Parser(expect_handshake=False, num_pieces=NUM_PIECES, fast=True).feed(data))


def attached(
    *,
    have: list[bool] | None = None,
    fast: bool = True,
    defer: object = None,
    outgoing: bool = True,
) -> PeerState:
    """A state past the handshake, attached to a 5-piece torrent we have all of."""
    s = PeerState(OURS, info_hash=INFO_HASH if outgoing else None, now=0.0)
    got = s.receive(handshake(fast=fast), 1.0)
    assert len(got) == 1 and isinstance(got[0], wire.Handshake)
    have = [True] * NUM_PIECES if have is None else have
    s.attach(Torrent(INFO_HASH, NUM_PIECES, PIECE, TOTAL, have, defer))  # type: ignore[arg-type]
    return s


# -- handshake -------------------------------------------------------------------------------


def test_handshake_in_pieces_then_held_messages_after_attach() -> None:
    s = PeerState(OURS, now=0.0)  # incoming: the torrent is not known yet
    data = handshake() + enc(wire.HAVE_ALL, wire.UNCHOKE)
    assert s.receive(data[:30], 1.0) == []
    got = s.receive(data[30:], 2.0)
    assert got == [wire.Handshake(wire.make_reserved(), INFO_HASH, THEIRS)]
    assert (s.peer_id, s.fast, s.extended) == (THEIRS, True, True)
    s.attach(Torrent(INFO_HASH, NUM_PIECES, PIECE, TOTAL, [False] * NUM_PIECES))
    assert s.receive(b"", 3.0) == [PeerBitfield([True] * NUM_PIECES), wire.UNCHOKE]
    assert s.peer_is_seed and not s.peer_choking
    assert s.last_received == 3.0


def test_our_handshake_names_the_torrent_and_both_extensions() -> None:
    s = PeerState(OURS, info_hash=INFO_HASH)
    hs = wire.Handshake.decode(s.handshake())
    assert (hs.info_hash, hs.peer_id, hs.supports_fast, hs.supports_extended) == (
        INFO_HASH,
        OURS,
        True,
        True,
    )


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (handshake(info_hash=b"\x01" * 20), "another torrent"),
        (handshake(peer_id=OURS), "ourselves"),
        (b"\x13BitTorrent protocoX" + bytes(48), "handshake"),
        (b"GET / HTTP/1.1\r\n", "handshake"),
    ],
)
def test_bad_handshakes_are_protocol_errors(data: bytes, reason: str) -> None:
    s = PeerState(OURS, info_hash=INFO_HASH)
    with pytest.raises(ProtocolError, match=reason):
        s.receive(data, 0.0)


def test_fast_messages_without_the_fast_bit_are_refused() -> None:
    s = attached(fast=False)
    with pytest.raises(ProtocolError):
        s.receive(enc(wire.HAVE_ALL), 1.0)


# -- what the peer has -------------------------------------------------------------------------


def test_have_and_bitfield_update_what_the_peer_has() -> None:
    s = attached()
    bits = wire.bitfield_from_bools([True, False, True, False, False])
    assert s.receive(enc(wire.Bitfield(bits)), 1.0) == [
        PeerBitfield([True, False, True, False, False])
    ]
    assert s.peer_count == 2 and not s.peer_is_seed
    # A have for a piece it had already is nothing new.
    assert s.receive(enc(wire.Have(0), wire.Have(1)), 1.0) == [wire.Have(1)]
    assert s.receive(enc(wire.Have(3), wire.Have(4)), 1.0) == [wire.Have(3), wire.Have(4)]
    assert s.peer_is_seed
    # 'have none' after all that: the newest word counts.
    assert s.receive(enc(wire.HAVE_NONE), 1.0) == [PeerBitfield([False] * NUM_PIECES)]
    assert s.peer_count == 0


def test_have_out_of_range_is_a_protocol_error() -> None:
    s = attached()
    with pytest.raises(ProtocolError):
        s.receive(enc(wire.Have(NUM_PIECES)), 1.0)


# -- choke and interest, both ways -------------------------------------------------------------


def test_choke_and_interest_flags_both_ways() -> None:
    s = attached()
    got = s.receive(enc(wire.INTERESTED, wire.UNCHOKE, wire.CHOKE, wire.NOT_INTERESTED), 1.0)
    assert got == [wire.INTERESTED, wire.UNCHOKE, wire.CHOKE, wire.NOT_INTERESTED]
    assert s.peer_choking and not s.peer_interested
    assert parse(s.interested(True)) == [wire.INTERESTED]
    assert s.interested(True) == b""  # no change, nothing to send
    assert parse(s.unchoke()) == [wire.UNCHOKE]
    assert s.unchoke() == b""
    assert not s.am_choking and s.am_interested


# -- the peer's requests to us -----------------------------------------------------------------


def test_requests_queue_in_order_and_a_cancel_takes_one_out() -> None:
    s = attached()
    s.unchoke()
    reqs = [wire.Request(i, 0, wire.BLOCK_SIZE) for i in range(3)]
    assert s.receive(enc(*reqs), 1.0) == reqs
    assert s.receive(enc(wire.Cancel(1, 0, wire.BLOCK_SIZE)), 1.0) == []
    assert s.receive(enc(wire.Cancel(4, 0, wire.BLOCK_SIZE)), 1.0) == []  # never asked: ignored
    assert [s.next_request(), s.next_request(), s.next_request()] == [
        (0, 0, wire.BLOCK_SIZE),
        (2, 0, wire.BLOCK_SIZE),
        None,
    ]


def test_requests_while_choked_are_rejected_with_fast_and_dropped_without() -> None:
    s = attached()
    assert s.receive(enc(wire.Request(0, 0, 100)), 1.0) == []
    assert parse(s.take_output()) == [wire.Reject(0, 0, 100)]
    s2 = attached(fast=False)
    assert s2.receive(enc(wire.Request(0, 0, 100)), 1.0) == []
    assert s2.take_output() == b""


def test_request_for_a_piece_we_lack_is_rejected_or_an_error() -> None:
    have = [True, False, True, True, True]
    s = attached(have=have)
    s.unchoke()
    assert s.receive(enc(wire.Request(1, 0, 100)), 1.0) == []
    assert parse(s.take_output()) == [wire.Reject(1, 0, 100)]
    s2 = attached(have=have, fast=False)
    s2.unchoke()
    with pytest.raises(ProtocolError, match="do not have"):
        s2.receive(enc(wire.Request(1, 0, 100)), 1.0)


def test_request_past_the_end_of_the_short_last_piece_is_an_error() -> None:
    s = attached()
    s.unchoke()
    assert s.receive(enc(wire.Request(4, 0, 1000)), 1.0)  # the whole last piece: fine
    with pytest.raises(ProtocolError, match="past the end"):
        s.receive(enc(wire.Request(4, 0, 1001)), 1.0)


def test_choking_rejects_every_queued_request() -> None:
    s = attached()
    s.unchoke()
    s.receive(enc(wire.Request(0, 0, 10), wire.Request(1, 0, 10)), 1.0)
    assert parse(s.choke()) == [wire.CHOKE, wire.Reject(0, 0, 10), wire.Reject(1, 0, 10)]
    assert s.next_request() is None
    assert s.choke() == b""


def test_a_request_flood_is_a_protocol_error() -> None:
    s = attached()
    s.unchoke()
    s.receive(enc(*[wire.Request(0, 0, 10)] * MAX_QUEUED_REQUESTS), 1.0)
    with pytest.raises(ProtocolError, match="flood"):
        s.receive(enc(wire.Request(0, 0, 10)), 1.0)


def test_rejects_to_a_peer_that_does_not_read_close_it() -> None:
    s = attached()
    s.write_blocked = True
    with pytest.raises(ProtocolError, match="does not read"):
        s.receive(enc(wire.Request(0, 0, 10)), 1.0)


def test_initial_seeding_defers_a_request_once_through_the_hook() -> None:
    asked: list[int] = []

    def defer(index: int) -> bool:
        asked.append(index)
        return len(asked) == 1

    s = attached(defer=defer)
    s.unchoke()
    assert s.receive(enc(wire.Request(2, 0, 10)), 1.0) == []
    assert parse(s.take_output()) == [wire.Reject(2, 0, 10)]
    assert s.receive(enc(wire.Request(2, 0, 10)), 1.0) == [wire.Request(2, 0, 10)]


def test_withdrawn_blocks_are_rejected_only_with_fast() -> None:
    s = attached()
    assert parse(s.withdrawn([(0, 0, 10)])) == [wire.Reject(0, 0, 10)]
    assert attached(fast=False).withdrawn([(0, 0, 10)]) == b""


# -- our requests to the peer ------------------------------------------------------------------


def test_blocks_we_asked_for_come_through_and_others_are_errors() -> None:
    s = attached()
    assert parse(s.request([(0, 0, 5), (0, wire.BLOCK_SIZE, 5)])) == [
        wire.Request(0, 0, 5),
        wire.Request(0, wire.BLOCK_SIZE, 5),
    ]
    got = s.receive(enc(wire.Piece(0, 0, b"abcde")), 7.0)
    assert got == [wire.Piece(0, 0, b"abcde")]
    assert s.last_block == 7.0 and list(s.requests_out) == [(0, wire.BLOCK_SIZE)]
    with pytest.raises(ProtocolError, match="never asked"):
        s.receive(enc(wire.Piece(0, 0, b"abcde")), 8.0)  # the same block twice


def test_a_block_of_the_wrong_length_is_an_error() -> None:
    s = attached()
    s.request([(1, 0, 5)])
    with pytest.raises(ProtocolError, match="wrong length"):
        s.receive(enc(wire.Piece(1, 0, b"abcd")), 1.0)


def test_a_cancelled_or_withdrawn_block_may_still_arrive_once() -> None:
    s = attached()
    s.request([(0, 0, 5), (1, 0, 5), (2, 0, 5)])
    assert parse(s.cancel(0, 0, 5)) == [wire.Cancel(0, 0, 5)]
    assert s.cancel(0, 0, 5) == b""  # not out any more
    assert sorted(s.withdraw()) == [(1, 0, 5), (2, 0, 5)]
    assert s.requests_out == {}
    data = enc(wire.Piece(0, 0, b"abcde"), wire.Piece(1, 0, b"fghij"))
    assert len(s.receive(data, 1.0)) == 2
    with pytest.raises(ProtocolError):
        s.receive(enc(wire.Piece(1, 0, b"fghij")), 1.0)


def test_a_reject_of_our_request_is_reported_once() -> None:
    s = attached()
    s.request([(3, 0, 5)])
    assert s.receive(enc(wire.Reject(3, 0, 5)), 1.0) == [wire.Reject(3, 0, 5)]
    assert s.receive(enc(wire.Reject(3, 0, 5)), 1.0) == []  # not ours any more: ignored
    assert s.requests_out == {}


def test_a_reject_of_a_request_withdrawn_at_a_choke_leaves_the_new_request_out() -> None:
    # Choked, our request withdrawn; unchoked, asked again; then the peer's reject of the
    # first request comes (it had the block in hand when it choked). The second is still out
    # and its block is ours: before, the reject took the second and its block was wasted.
    s = attached()
    s.request([(3, 0, 5)])
    assert s.receive(enc(wire.CHOKE), 1.0) == [wire.CHOKE]
    assert s.withdraw() == [(3, 0, 5)]
    assert s.receive(enc(wire.UNCHOKE), 1.0) == [wire.UNCHOKE]
    s.request([(3, 0, 5)])
    assert s.receive(enc(wire.Reject(3, 0, 5)), 1.0) == []
    assert s.requests_out == {(3, 0): 5}
    assert s.receive(enc(wire.Reject(3, 0, 5)), 1.0) == [wire.Reject(3, 0, 5)]  # the second
    assert s.requests_out == {}


# -- BEP 10 ------------------------------------------------------------------------------------


def test_extended_handshake_both_ways() -> None:
    s = attached()
    ext = wire.ExtendedHandshake(m={}, v="Test 1.0", p=6881, reqq=9999)
    assert s.receive(enc(wire.Extended(0, ext.encode())), 1.0) == []
    assert (s.client_name, s.listen_port, s.remote_reqq) == ("Test 1.0", 6881, 2000)
    sent = parse(s.initial("swarm 0.1.0", 7000))
    assert sent[0] == wire.HAVE_ALL
    ours = wire.ExtendedHandshake.decode(sent[1].payload)  # type: ignore[attr-defined]
    assert (ours.v, ours.p, ours.reqq) == ("swarm 0.1.0", 7000, OUR_REQQ)
    assert ours.yourip is None  # not said when we do not know it


def test_extended_handshake_tells_the_peer_its_address() -> None:
    sent = parse(attached().initial("v", 7000, wire.yourip("127.0.0.7")))
    ours = wire.ExtendedHandshake.decode(sent[1].payload)  # type: ignore[attr-defined]
    assert ours.yourip == bytes([127, 0, 0, 7])  # BEP 10: 4 bytes for IPv4, 16 for IPv6
    assert wire.yourip("::1") == bytes(15) + b"\x01"
    assert wire.yourip("not an address") is None and wire.yourip(None) is None


def test_initial_messages_say_what_we_have() -> None:
    assert parse(attached(have=[False] * 5).initial("v", None))[0] == wire.HAVE_NONE
    some = [True, False, False, False, True]
    assert parse(attached(have=some).initial("v", None))[0] == wire.Bitfield(
        wire.bitfield_from_bools(some)
    )
    nothing = attached(have=[False] * 5, fast=False).initial("v", None)
    assert [type(m) for m in parse(nothing)] == [wire.Extended]


# -- time ------------------------------------------------------------------------------------


def test_timers_with_a_fake_clock() -> None:
    s = attached()  # last heard at 1.0
    s.last_sent = 1.0
    kw = {"idle": 120.0, "keepalive": 90.0, "snub": 60.0}
    assert s.timers(50.0, **kw) == []
    assert s.timers(92.0, **kw) == [Timer.KEEPALIVE]
    s.request([(0, 0, 5)])
    s.receive(enc(wire.KEEP_ALIVE), 100.0)
    s.last_sent = 100.0
    assert s.timers(110.0, **kw) == [Timer.SNUBBED]  # no block since 1.0
    assert s.snubbed and s.timers(111.0, **kw) == []  # once
    s.receive(enc(wire.Piece(0, 0, b"abcde")), 112.0)
    assert not s.snubbed
    assert s.timers(240.0, **kw) == [Timer.IDLE]
