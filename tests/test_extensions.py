"""BEP 10 extensions of a connection, without sockets: our ut_metadata serving (BEP 9) and
peer exchange both ways (BEP 11), through the peer state as the engine uses it."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from swarm import bencoding, wire
from swarm.errors import ProtocolError
from swarm.extensions import (
    FLAG_ENCRYPTION,
    FLAG_REACHABLE,
    FLAG_SEED,
    PeerExtensions,
    PexPeers,
    pex_addresses,
    pex_round,
)
from swarm.peer_state import PeerState, Torrent
from swarm.wire import ut_metadata
from swarm.wire.pex import PexMessage

INFO_HASH = bytes(range(20))
OURS = b"-SW0100-ourselves000"
THEIRS = b"-XX0001-theirs000000"
PIECE = 4 * wire.BLOCK_SIZE
INFO = bencoding.encode({b"name": b"x", b"pad": b"p" * 40000})  # 3 metadata pieces
THEIR_METADATA_ID = 7
THEIR_PEX_ID = 9


def enc(*msgs: wire.Message) -> bytes:
    return b"".join(wire.encode(m) for m in msgs)


def extended(payload: dict[bytes, object], ext_id: int = 0) -> bytes:
    return enc(wire.Extended(ext_id, bencoding.encode(payload)))


def their_handshake(m: dict[bytes, int] | None = None, p: int = 7000) -> bytes:
    m = {b"ut_metadata": THEIR_METADATA_ID, b"ut_pex": THEIR_PEX_ID} if m is None else m
    return extended({b"m": m, b"p": p, b"v": b"Test 1.0"})


def state(*, private: bool = False, extended_bit: bool = True) -> PeerState:
    """A connection past the handshake for a 2-piece torrent we seed, whose info dictionary is
    :data:`INFO` (served unless *private*)."""
    s = PeerState(OURS, info_hash=INFO_HASH, now=0.0)
    reserved = wire.make_reserved(fast=True, extended=extended_bit)
    s.receive(wire.Handshake(reserved, INFO_HASH, THEIRS).encode(), 1.0)
    server = None if private else ut_metadata.MetadataServer(INFO)
    s.attach(Torrent(INFO_HASH, 2, PIECE, 2 * PIECE, [True, True], None, server, not private))
    return s


def replies(s: PeerState) -> list[wire.Message]:
    return list(wire.Parser(expect_handshake=False, fast=True).feed(s.take_output()))


def our_handshake(s: PeerState) -> wire.ExtendedHandshake:
    sent = list(wire.Parser(expect_handshake=False, fast=True).feed(s.initial("swarm", 6881)))
    ext = [m for m in sent if isinstance(m, wire.Extended)]
    assert len(ext) == 1 and ext[0].ext_id == 0
    return wire.ExtendedHandshake.decode(ext[0].payload)


# -- our extended handshake ------------------------------------------------------------------


def test_a_public_torrent_offers_both_extensions_and_its_metadata_size() -> None:
    hs = our_handshake(state())
    assert hs.m == {"ut_metadata": wire.UT_METADATA_ID, "ut_pex": wire.UT_PEX_ID}
    assert hs.metadata_size == len(INFO)
    assert (hs.v, hs.p, hs.reqq) == ("swarm", 6881, 500)


def test_a_private_torrent_offers_neither_bep27() -> None:
    hs = our_handshake(state(private=True))
    assert hs.m == {} and hs.metadata_size is None


def test_no_extension_state_for_a_peer_without_the_extension_bit() -> None:
    s = state(extended_bit=False)
    assert s.extensions is None
    # An extended message from it is ignored rather than answered.
    request = ut_metadata.encode(ut_metadata.MetadataRequest(0))
    assert s.receive(enc(wire.Extended(wire.UT_METADATA_ID, request)), 2.0) == []
    assert s.take_output() == b""


# -- serving metadata (BEP 9) ----------------------------------------------------------------


def ask(s: PeerState, piece: int) -> bytes:
    return enc(
        wire.Extended(wire.UT_METADATA_ID, ut_metadata.encode(ut_metadata.MetadataRequest(piece)))
    )


def test_metadata_pieces_are_served_under_the_peers_id_and_join_to_the_info() -> None:
    s = state()
    s.receive(their_handshake(), 2.0)
    got = b""
    for piece in range(3):
        assert s.receive(ask(s, piece), 3.0) == []
        (msg,) = replies(s)
        assert isinstance(msg, wire.Extended) and msg.ext_id == THEIR_METADATA_ID
        data = ut_metadata.decode(msg.payload)
        assert isinstance(data, ut_metadata.MetadataData)
        assert (data.piece, data.total_size) == (piece, len(INFO))
        got += data.data
    assert hashlib.sha1(got).digest() == hashlib.sha1(INFO).digest()


def test_the_bep9_bytes_of_a_request_and_of_a_reject_for_an_out_of_range_piece() -> None:
    s = state()
    s.receive(their_handshake(), 2.0)
    # BEP 9's own example of a request: d8:msg_typei0e5:piecei0ee, here for piece 3.
    s.receive(enc(wire.Extended(wire.UT_METADATA_ID, b"d8:msg_typei0e5:piecei3ee")), 3.0)
    (msg,) = replies(s)
    assert isinstance(msg, wire.Extended)
    assert msg.payload == b"d8:msg_typei2e5:piecei3ee"  # reject


def test_a_peer_asking_over_and_over_gets_rejects_not_endless_data() -> None:
    s = state()
    s.receive(their_handshake(), 2.0)
    kinds = []
    for _ in range(40):
        s.receive(ask(s, 0), 3.0)
        (msg,) = replies(s)
        assert isinstance(msg, wire.Extended)
        kinds.append(type(ut_metadata.decode(msg.payload)))
    assert kinds[0] is ut_metadata.MetadataData and kinds[-1] is ut_metadata.MetadataReject
    assert kinds.count(ut_metadata.MetadataData) < 40


def test_a_metadata_request_from_a_peer_that_did_not_offer_ut_metadata_closes_it() -> None:
    s = state()
    s.receive(their_handshake(m={b"ut_pex": 2}), 2.0)
    with pytest.raises(ProtocolError):
        s.receive(ask(s, 0), 3.0)


def test_a_peer_that_asks_for_metadata_but_does_not_read_is_closed() -> None:
    s = state()
    s.receive(their_handshake(), 2.0)
    s.write_blocked = True
    with pytest.raises(ProtocolError):
        s.receive(ask(s, 0), 3.0)


def test_private_torrent_metadata_requests_are_ignored() -> None:
    s = state(private=True)
    s.receive(their_handshake(), 2.0)
    assert s.receive(ask(s, 0), 3.0) == []
    assert s.take_output() == b""


def test_unknown_extension_ids_and_unknown_metadata_types_are_ignored() -> None:
    s = state()
    s.receive(their_handshake(), 2.0)
    assert s.receive(enc(wire.Extended(42, b"whatever")), 3.0) == []
    odd = bencoding.encode({b"msg_type": 9, b"piece": 0})
    assert s.receive(enc(wire.Extended(wire.UT_METADATA_ID, odd)), 3.0) == []
    assert s.take_output() == b""


def test_a_malformed_metadata_message_closes_only_that_peer() -> None:
    s = state()
    s.receive(their_handshake(), 2.0)
    with pytest.raises(ProtocolError):
        s.receive(enc(wire.Extended(wire.UT_METADATA_ID, b"d8:msg_type")), 3.0)


# -- receiving PEX ---------------------------------------------------------------------------


def pex(added: bytes = b"", added6: bytes = b"") -> bytes:
    return extended({b"added": added, b"added.f": b"", b"added6": added6}, wire.UT_PEX_ID)


def test_pex_added_peers_come_out_as_an_event() -> None:
    s = state()
    s.receive(their_handshake(), 2.0)
    added = bytes([127, 0, 0, 2]) + (6881).to_bytes(2, "big")
    added += bytes([10, 0, 0, 1]) + (0).to_bytes(2, "big")  # port 0: not a peer
    added6 = bytes(15) + b"\x01" + (7000).to_bytes(2, "big")
    assert s.receive(pex(added, added6), 3.0) == [PexPeers([("127.0.0.2", 6881), ("::1", 7000)])]


def test_pex_peers_flagged_as_preferring_encryption_are_kept_for_the_event() -> None:
    s = state()
    s.receive(their_handshake(), 2.0)
    a, b = ("127.0.0.2", 6881), ("127.0.0.3", 6882)
    added = b"".join(bytes(map(int, h.split("."))) + p.to_bytes(2, "big") for h, p in (a, b))
    payload = {b"added": added, b"added.f": bytes([0x02, FLAG_ENCRYPTION | 0x10])}
    assert s.receive(extended(payload, wire.UT_PEX_ID), 3.0) == [PexPeers([a, b], frozenset({b}))]
    ext = s.extensions
    assert ext is not None and ext.pex_encrypted == {b}
    assert ext.pex_event([a, b]) == PexPeers([a, b], frozenset({b}))
    # the next message's flags replace the last one's
    s.receive(extended({b"added": added[:6], b"added.f": b"\x00"}, wire.UT_PEX_ID), 70.0)
    assert ext.pex_encrypted == frozenset()


def test_pex_with_garbage_added_closes_the_peer() -> None:
    s = state()
    s.receive(their_handshake(), 2.0)
    with pytest.raises(ProtocolError):
        s.receive(pex(b"\x01\x02\x03"), 3.0)


def test_a_pex_flood_closes_the_peer_but_one_a_minute_is_fine() -> None:
    s = state()
    s.receive(their_handshake(), 2.0)
    addr = bytes([127, 0, 0, 2]) + (6881).to_bytes(2, "big")
    for minute in range(10):
        s.receive(pex(addr), 60.0 * minute)
    with pytest.raises(ProtocolError, match="too often"):
        for i in range(10):
            s.receive(pex(addr), 1000.0 + i)


def test_pex_on_a_private_torrent_is_ignored() -> None:
    s = state(private=True)
    s.receive(their_handshake(), 2.0)
    addr = bytes([127, 0, 0, 2]) + (6881).to_bytes(2, "big")
    assert s.receive(pex(addr), 3.0) == []


@given(st.binary(max_size=2000), st.sampled_from([wire.UT_METADATA_ID, wire.UT_PEX_ID, 0, 5]))
def test_any_extended_payload_is_handled_or_refused_never_a_crash(
    payload: bytes, ext_id: int
) -> None:
    s = state()
    s.receive(their_handshake(), 2.0)
    try:
        s.receive(enc(wire.Extended(ext_id, payload)), 3.0)
    except ProtocolError:
        return
    assert len(s.take_output()) < 20000  # at most one metadata piece and its header


# -- sending PEX -----------------------------------------------------------------------------


class FakeState:
    def __init__(self, listen_port: int | None, seed: bool, pex_id: int) -> None:
        self.listen_port = listen_port
        self.peer_is_seed = seed
        self.extensions = PeerExtensions(None, True)
        self.extensions.peer_pex_id = pex_id


class FakePeer:
    def __init__(
        self,
        address: tuple[str, int],
        outgoing: bool,
        *,
        port: int | None = None,
        seed: bool = False,
        pex_id: int = 4,
    ) -> None:
        self.address = address
        self.outgoing = outgoing
        self.state = FakeState(port, seed, pex_id)
        self.sent: list[wire.Message] = []

    def send(self, msg: wire.Message) -> None:
        self.sent.append(msg)

    def told(self) -> list[PexMessage]:
        out = []
        for m in self.sent:
            assert isinstance(m, wire.Extended) and m.ext_id == self.state.extensions.peer_pex_id
            out.append(PexMessage.decode(m.payload))
        return out


def test_pex_addresses_are_the_dialable_ones_with_their_flags() -> None:
    a = FakePeer(("127.0.0.2", 6881), True, seed=True)
    b = FakePeer(("127.0.0.3", 50000), False, port=7000)  # dialled us; listens on 7000
    c = FakePeer(("127.0.0.4", 50001), False)  # dialled us; listen port unknown
    assert pex_addresses([a, b, c]) == {
        ("127.0.0.2", 6881): FLAG_REACHABLE | FLAG_SEED,
        ("127.0.0.3", 7000): 0,
    }


class FakeMsePeer(FakePeer):
    """A connection that knows whether it went through the MSE/PE handshake."""

    def __init__(self, address: tuple[str, int], mse: bool) -> None:
        super().__init__(address, True)
        self.mse = mse


def test_a_peer_whose_connection_went_through_mse_is_flagged_as_preferring_encryption() -> None:
    a = FakeMsePeer(("127.0.0.2", 6881), mse=True)
    b = FakeMsePeer(("127.0.0.3", 6882), mse=False)
    c = FakePeer(("127.0.0.4", 6883), True)  # cannot tell: not flagged
    assert pex_addresses([a, b, c]) == {
        ("127.0.0.2", 6881): FLAG_REACHABLE | FLAG_ENCRYPTION,
        ("127.0.0.3", 6882): FLAG_REACHABLE,
        ("127.0.0.4", 6883): FLAG_REACHABLE,
    }
    assert pex_round([a, b, c], 100.0) == 3
    told = c.told()[0]
    assert told.added == [("127.0.0.2", 6881), ("127.0.0.3", 6882)]
    assert told.prefers_encryption() == [("127.0.0.2", 6881)]


def test_pex_round_tells_each_peer_of_the_others_once_a_minute_then_the_changes() -> None:
    a = FakePeer(("127.0.0.2", 6881), True)
    b = FakePeer(("127.0.0.3", 50000), False, port=7000)
    c = FakePeer(("127.0.0.4", 6882), True, pex_id=0)  # does not take PEX
    assert pex_round([a, b, c], 100.0) == 2
    assert a.told() == [
        PexMessage(added=[("127.0.0.3", 7000), ("127.0.0.4", 6882)], added_f=bytes([0, 0x10]))
    ]
    assert b.told()[0].added == [("127.0.0.2", 6881), ("127.0.0.4", 6882)]
    assert c.sent == []
    # Within the minute nothing more goes, even when a peer leaves.
    assert pex_round([a, b], 130.0) == 0
    # A minute on, the dropped peer is said.
    assert pex_round([a, b], 161.0) == 2
    assert a.told()[-1] == PexMessage(dropped=[("127.0.0.4", 6882)])


def test_no_pex_message_when_there_is_nobody_else() -> None:
    a = FakePeer(("127.0.0.2", 6881), True)
    assert pex_round([a], 100.0) == 0
    b = FakePeer(("127.0.0.3", 6882), True)
    # The first message goes as soon as there is somebody to tell of, not a minute later.
    assert pex_round([a, b], 101.0) == 2


class CountingPeer(FakePeer):
    """A peer that counts how often its address is read."""

    reads = 0

    @property
    def address(self) -> tuple[str, int]:
        CountingPeer.reads += 1
        return self._address

    @address.setter
    def address(self, value: tuple[str, int]) -> None:
        self._address = value


def test_between_the_minutes_pex_round_does_not_gather_the_addresses() -> None:
    a = CountingPeer(("127.0.0.2", 6881), True)
    b = CountingPeer(("127.0.0.3", 6882), True)
    assert pex_round([a, b], 100.0) == 2
    CountingPeer.reads = 0
    assert pex_round([a, b], 130.0) == 0  # each tick of the minute: nobody is due
    assert CountingPeer.reads == 0
    assert pex_round([a, b], 161.0) == 0  # due, but nothing changed
    assert CountingPeer.reads > 0


# -- the DHT's PORT message (BEP 5) ------------------------------------------------------------


def dht_state(
    *, private: bool = False, our_port: int | None = 7001, theirs: bool = True
) -> PeerState:
    s = PeerState(OURS, info_hash=INFO_HASH, now=0.0, dht_port=our_port)
    reserved = wire.make_reserved(fast=True, extended=True, dht=theirs)
    s.receive(wire.Handshake(reserved, INFO_HASH, THEIRS).encode(), 1.0)
    server = None if private else ut_metadata.MetadataServer(INFO)
    s.attach(Torrent(INFO_HASH, 2, PIECE, 2 * PIECE, [True, True], None, server, not private))
    return s


def ports_sent(s: PeerState) -> list[wire.Message]:
    sent = wire.Parser(expect_handshake=False, fast=True).feed(s.initial("swarm", 6881))
    return [m for m in sent if isinstance(m, wire.Port)]


def test_with_a_dht_our_handshake_sets_its_bit_and_a_port_message_follows() -> None:
    s = dht_state()
    assert wire.Handshake.decode(s.handshake()).supports_dht
    assert ports_sent(s) == [wire.Port(7001)]
    # Without a DHT of ours, or when the peer has none, no PORT message.
    assert not wire.Handshake.decode(dht_state(our_port=None).handshake()).supports_dht
    assert ports_sent(dht_state(our_port=None)) == []
    assert ports_sent(dht_state(theirs=False)) == []


def test_a_private_torrent_sends_no_port_and_ignores_the_peers() -> None:
    s = dht_state(private=True)
    assert ports_sent(s) == []
    assert s.receive(enc(wire.Port(6000)), 2.0) == []


def test_the_peers_port_message_comes_out_for_the_dht() -> None:
    assert dht_state().receive(enc(wire.Port(6000)), 2.0) == [wire.Port(6000)]
    assert dht_state(our_port=None).receive(enc(wire.Port(6000)), 2.0) == []
