"""BEP 11 (ut_pex): the message's bytes, its limits, and what PexState sends when."""

from __future__ import annotations

import tracemalloc

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm import bencoding
from swarm.errors import ProtocolError
from swarm.wire.pex import (
    FLAG_ENCRYPTION,
    FLAG_OUTGOING,
    FLAG_SEED,
    MAX_PEX_PEERS,
    PexMessage,
    PexState,
)

# --- the message ---


def test_hand_written_bytes() -> None:
    raw = (
        b"d5:added12:\x7f\x00\x00\x01\x1a\xe1\x0a\x00\x00\x02\x00\x50"
        b"7:added.f2:\x02\x10"
        b"6:added618:" + b"\x20\x01\x0d\xb8" + b"\x00" * 11 + b"\x01\x1a\xe1"
        b"8:added6.f1:\x00"
        b"7:dropped6:\xc0\xa8\x01\x01\x00\x01"
        b"8:dropped60:"
        b"e"
    )
    message = PexMessage(
        added=[("127.0.0.1", 6881), ("10.0.0.2", 80)],
        added_f=bytes([FLAG_SEED, FLAG_OUTGOING]),
        dropped=[("192.168.1.1", 1)],
        added6=[("2001:db8::1", 6881)],
        added6_f=b"\x00",
    )
    assert PexMessage.decode(raw) == message
    assert message.encode() == raw


def test_missing_lists_are_empty_and_short_flags_are_zero() -> None:
    message = PexMessage.decode(b"d5:added6:\x7f\x00\x00\x01\x1a\xe1e")
    assert message == PexMessage(added=[("127.0.0.1", 6881)], added_f=b"\x00")
    assert PexMessage.decode(b"de") == PexMessage()


def test_the_peers_that_prefer_encryption_are_those_flagged_0x01() -> None:
    """libtorrent flags a peer 0x01 when its connection went through MSE/PE, and dials a peer
    so flagged encrypted first (peer_list: ``pe_support``)."""
    message = PexMessage(
        added=[("127.0.0.1", 1), ("127.0.0.2", 2), ("127.0.0.3", 3)],
        added_f=bytes([FLAG_ENCRYPTION | FLAG_SEED, FLAG_SEED, FLAG_ENCRYPTION]),
        added6=[("::1", 4)],
        added6_f=bytes([FLAG_ENCRYPTION]),
    )
    decoded = PexMessage.decode(message.encode())
    want = [("127.0.0.1", 1), ("127.0.0.3", 3), ("::1", 4)]
    assert decoded.prefers_encryption() == want
    # flags missing or too short (libtorrent ignores them then, so do we): nobody
    short = b"d5:added12:\x7f\x00\x00\x01\x00\x01\x7f\x00\x00\x02\x00\x027:added.f1:\x01e"
    assert PexMessage.decode(short).prefers_encryption() == []
    assert PexMessage(added=[("127.0.0.1", 1)], added_f=b"\x00").prefers_encryption() == []


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"le",
        b"d5:added5:12345e",  # not whole 6-byte entries
        b"d7:dropped7:1234567e",
        b"d6:added66:123456e",  # not whole 18-byte entries
        b"d8:dropped619:" + b"x" * 19 + b"e",
        b"d5:addedi6ee",  # not a byte string
        b"d5:added6:\x7f\x00\x00\x01\x1a\xe1",  # unterminated
    ],
)
def test_malformed_messages_are_protocol_errors(raw: bytes) -> None:
    with pytest.raises(ProtocolError):
        PexMessage.decode(raw)


def test_at_most_200_peers_of_a_list_are_read() -> None:
    raw = bencoding.encode(
        {b"added": b"\x01\x02\x03\x04\x00\x01" * 5000, b"added.f": b"\x01" * 5000}
    )
    message = PexMessage.decode(raw)
    assert len(message.added) == MAX_PEX_PEERS
    assert message.added_f == b"\x01" * MAX_PEX_PEERS


def test_a_flood_costs_bounded_memory() -> None:
    raw = bencoding.encode({b"added6": b"\x00" * 18 * 50_000})  # 900 kB, just under 1 MiB
    tracemalloc.start()
    message = PexMessage.decode(raw)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(message.added6) == MAX_PEX_PEERS
    assert peak < 4 * len(raw)  # copies of the payload, no object per listed peer


def test_encode_refuses_addresses_in_the_wrong_list() -> None:
    with pytest.raises(ValueError):
        PexMessage(added=[("::1", 1)], added_f=b"\x00").encode()
    with pytest.raises(ValueError):
        PexMessage(added=[("1.2.3.4", 1)]).encode()  # no flags byte


addresses4 = st.tuples(st.ip_addresses(v=4).map(str), st.integers(0, 65535))
addresses6 = st.tuples(st.ip_addresses(v=6).map(str), st.integers(0, 65535))


@given(
    st.lists(addresses4, max_size=60),
    st.lists(addresses4, max_size=60),
    st.lists(addresses6, max_size=60),
    st.lists(addresses6, max_size=60),
)
def test_round_trip(
    added: list[tuple[str, int]],
    dropped: list[tuple[str, int]],
    added6: list[tuple[str, int]],
    dropped6: list[tuple[str, int]],
) -> None:
    message = PexMessage(
        added=added,
        added_f=bytes(i % 32 for i in range(len(added))),
        dropped=dropped,
        added6=added6,
        added6_f=bytes(len(added6)),
        dropped6=dropped6,
    )
    assert PexMessage.decode(message.encode()) == message


@settings(max_examples=500)
@given(st.binary(max_size=600))
def test_random_bytes_never_raise_anything_but_protocol_error(raw: bytes) -> None:
    try:
        PexMessage.decode(raw)
    except ProtocolError:
        pass


@given(st.dictionaries(st.sampled_from([b"added", b"added.f", b"dropped6", b"x"]), st.binary()))
def test_random_dictionaries_never_raise_anything_but_protocol_error(d: dict[bytes, bytes]) -> None:
    try:
        message = PexMessage.decode(bencoding.encode(d))
    except ProtocolError:
        return
    assert len(message.added_f) == len(message.added) <= MAX_PEX_PEERS


# --- PexState: once a minute, 50 at most, dropped, never the peer itself ---

ME = ("10.0.0.1", 6881)


def _peers(n: int, start: int = 0) -> list[tuple[str, int]]:
    return [(f"10.1.{i // 250}.{i % 250 + 1}", 6881) for i in range(start, start + n)]


def test_the_first_message_lists_current_peers_but_not_the_peer_itself() -> None:
    state = PexState(ME)
    message = state.update({ME: 0, ("10.0.0.2", 1): FLAG_SEED, ("::2", 2): 0}, now=0.0)
    assert message == PexMessage(
        added=[("10.0.0.2", 1)], added_f=bytes([FLAG_SEED]), added6=[("::2", 2)], added6_f=b"\0"
    )


def test_at_most_once_a_minute() -> None:
    state = PexState(ME)
    assert state.update(_peers(3), now=100.0) is not None
    assert state.update(_peers(4), now=159.9) is None
    message = state.update(_peers(4), now=160.0)
    assert message is not None and message.added == _peers(1, 3)
    assert state.update(_peers(5), now=200.0) is None


def test_nothing_new_sends_nothing_and_does_not_wait_a_minute_for_the_next() -> None:
    state = PexState(ME)
    assert state.update([], now=0.0) is None
    assert state.update(_peers(1), now=1.0) == PexMessage(added=_peers(1), added_f=b"\0")
    assert state.update(_peers(1), now=70.0) is None
    assert state.update(_peers(2), now=71.0) is not None


def test_at_most_50_added_the_rest_next_time() -> None:
    state = PexState(ME)
    first = state.update(_peers(120), now=0.0)
    second = state.update(_peers(120), now=60.0)
    third = state.update(_peers(120), now=120.0)
    assert first is not None and second is not None and third is not None
    assert (len(first.added), len(second.added), len(third.added)) == (50, 50, 20)
    assert set(first.added + second.added + third.added) == set(_peers(120))
    assert state.update(_peers(120), now=180.0) is None


def test_dropped_lists_what_the_peer_was_told_of_and_we_lost() -> None:
    state = PexState(ME)
    state.update(_peers(3) + [("::5", 5)], now=0.0)
    # peer 3 came and went between two messages: never told, never dropped
    message = state.update(_peers(1) + _peers(1, 10), now=60.0)
    assert message == PexMessage(
        added=_peers(1, 10), added_f=b"\0", dropped=_peers(2, 1), dropped6=[("::5", 5)]
    )
    # a dropped peer that comes back is added again
    message = state.update(_peers(3), now=120.0)
    assert message is not None
    assert message.added == _peers(2, 1) and message.dropped == _peers(1, 10)


def test_at_most_50_dropped() -> None:
    state = PexState(ME)
    for t in range(3):
        state.update(_peers(120), now=60.0 * t)
    message = state.update([], now=180.0)
    assert message is not None and len(message.dropped) == 50
    message = state.update([], now=240.0)
    assert message is not None and len(message.dropped) == 50


def test_the_messages_pexstate_makes_encode() -> None:
    state = PexState(ME)
    message = state.update({a: FLAG_OUTGOING for a in _peers(60)}, now=0.0)
    assert message is not None
    assert PexMessage.decode(message.encode()) == message


def test_addresses_are_written_as_before_and_names_are_refused() -> None:
    mapped = bytes(10) + b"\xff\xff\x01\x02\x03\x04" + b"\x1a\xe1"
    plain = bytes.fromhex("20010db8000000000000000000000001") + b"\x00\x50"
    payload = bencoding.encode({b"added6": mapped + plain, b"added": b"\x7f\x00\x00\x01\x00\x01"})
    msg = PexMessage.decode(payload)
    # IPv6 in RFC 5952's compressed form; an embedded IPv4 address all hex, as ipaddress has it
    assert msg.added6 == [("::ffff:102:304", 6881), ("2001:db8::1", 80)]
    assert msg.added == [("127.0.0.1", 1)]
    assert PexMessage.decode(PexMessage(added6=msg.added6, added6_f=b"\0\0").encode()) == (
        PexMessage(added6=msg.added6, added6_f=b"\0\0")
    )
    for bad in ("peer.example", "1.2.3.4\0", "01.2.3.4"):
        with pytest.raises(ValueError, match="not an IP address"):
            PexMessage(dropped=[(bad, 1)]).encode()
