"""HTTP tracker requests and responses as bytes (BEP 3, 7, 23, 48)."""

from __future__ import annotations

import random
import urllib.parse

import bencodepy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tracker import protocol
from tracker.errors import RequestError
from tracker.state import AnnounceResult, CompactResult, PeerEntry

IH = bytes(range(20))
PID = b"-SW0001-" + bytes([0xFF, 0x00, 0x25, 0x26, 0x3D, 0x2B, 0x80, 0x81, 0x20, 0x7F, 0x01, 0x02])


def q(**params: bytes | str | int) -> bytes:
    parts = []
    for k, v in params.items():
        raw = v if isinstance(v, bytes) else str(v).encode()
        parts.append(f"{k}={urllib.parse.quote_from_bytes(raw, safe='')}")
    return "&".join(parts).encode()


def good(**over: bytes | str | int) -> bytes:
    params: dict[str, bytes | str | int] = {
        "info_hash": IH,
        "peer_id": PID,
        "port": 6881,
        "uploaded": 0,
        "downloaded": 0,
        "left": 10,
    }
    params.update(over)
    return q(**params)


def test_raw_bytes_survive_percent_decoding() -> None:
    a, compact, no_peer_id = protocol.parse_announce(good(event="started"), "::ffff:10.0.0.5")
    assert a.info_hash == IH and a.peer_id == PID
    assert a.ip == "10.0.0.5"  # an IPv4-mapped address is an IPv4 peer
    assert a.event == "started" and compact and not no_peer_id


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        (q(peer_id=PID, port=1), "missing info_hash"),
        (q(info_hash=IH[:19], peer_id=PID, port=1), "invalid info_hash"),
        (q(info_hash=IH, port=1), "missing peer_id"),
        (q(info_hash=IH, peer_id=PID + b"x", port=1), "invalid peer_id"),
        (good(port=0), "invalid port"),
        (good(port=70000), "invalid port"),
        (good(port="x"), "invalid port"),
        (good(left="-5"), "invalid left"),
        (good(uploaded="1e9"), "invalid uploaded"),
        (good(event="bogus"), "invalid event"),
        (good() + b"&x=" + b"a" * 5000, "too long"),
    ],
)
def test_bad_announces_give_a_reason(query: bytes, reason: str) -> None:
    with pytest.raises(protocol.RequestError, match=reason):
        protocol.parse_announce(query, "127.0.0.1")


def test_ip_parameter_is_ignored_unless_allowed() -> None:
    assert protocol.parse_announce(good(ip="8.8.8.8"), "127.0.0.1")[0].ip == "127.0.0.1"
    assert (
        protocol.parse_announce(good(ip="8.8.8.8"), "127.0.0.1", allow_ip_param=True)[0].ip
        == "8.8.8.8"
    )


def peers() -> AnnounceResult:
    return AnnounceResult(
        [
            PeerEntry(b"a" * 20, "10.1.2.3", 6881, 0, 0, 0, 0),
            PeerEntry(b"b" * 20, "::1", 51413, 5, 0, 0, 0),
        ],
        complete=1,
        incomplete=1,
    )


def test_compact_response_bep23_and_bep7() -> None:
    d = bencodepy.decode(protocol.announce_response(peers(), 1800, 60, True, False))
    assert d[b"interval"] == 1800 and d[b"min interval"] == 60
    assert d[b"complete"] == 1 and d[b"incomplete"] == 1
    assert d[b"peers"] == bytes([10, 1, 2, 3, 0x1A, 0xE1])
    assert d[b"peers6"] == b"\x00" * 15 + b"\x01" + (51413).to_bytes(2, "big")


def test_dictionary_response_with_and_without_peer_id() -> None:
    d = bencodepy.decode(protocol.announce_response(peers(), 1800, 60, False, False))
    assert d[b"peers"][0] == {b"ip": b"10.1.2.3", b"port": 6881, b"peer id": b"a" * 20}
    d = bencodepy.decode(protocol.announce_response(peers(), 1800, 60, False, True))
    assert b"peer id" not in d[b"peers"][0]


def test_failure_and_scrape() -> None:
    assert bencodepy.decode(protocol.failure("nope")) == {b"failure reason": b"nope"}
    hashes = protocol.parse_scrape(q(info_hash=IH) + b"&" + q(info_hash=b"\x02" * 20))
    assert hashes == [IH, b"\x02" * 20]
    d = bencodepy.decode(protocol.scrape_response({IH: (3, 7, 2)}))
    assert d == {b"files": {IH: {b"complete": 3, b"downloaded": 7, b"incomplete": 2}}}
    with pytest.raises(RequestError):
        protocol.parse_scrape(q(info_hash=b"short"))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.sampled_from(["127.0.0.1", "::1", "::ffff:1.2.3.4"]))
def test_random_queries_only_raise_request_errors(data: bytes, ip: str) -> None:
    try:
        protocol.parse_announce(data, ip)
    except protocol.RequestError:
        pass
    try:
        protocol.parse_scrape(data)
    except protocol.RequestError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_mutated_good_queries_only_raise_request_errors(data: st.DataObject) -> None:
    raw = bytearray(good(event="started", numwant=10))
    rng = random.Random(data.draw(st.integers(0, 2**32)))
    for _ in range(data.draw(st.integers(1, 8))):
        i = rng.randrange(len(raw))
        raw[i] = rng.randrange(256)
    try:
        protocol.parse_announce(bytes(raw), "127.0.0.1")
    except protocol.RequestError:
        pass


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=40), st.sampled_from(["", "%", "+", "%%", "%4", "%zz", "%41"]))
def test_fast_unquote_agrees_with_urllib(raw: bytes, extra: str) -> None:
    for value in (
        urllib.parse.quote_from_bytes(raw, safe="").encode(),
        "".join(f"%{b:02x}" for b in raw).encode(),
        urllib.parse.quote_from_bytes(raw, safe="").encode() + extra.encode(),
        extra.encode() + raw.hex().encode(),
    ):
        want = urllib.parse.unquote_to_bytes(value.replace(b"+", b" "))
        assert protocol.unquote(value) == want


@given(
    st.integers(0, 2**31),
    st.integers(0, 2**31),
    st.integers(0, 86400),
    st.integers(0, 86400),
    st.binary(max_size=60),
    st.binary(max_size=60),
)
def test_compact_response_is_exact_bencoding(
    complete: int, incomplete: int, interval: int, min_interval: int, v4: bytes, v6: bytes
) -> None:
    r = CompactResult(v4, v6, complete, incomplete)
    expected = {
        b"complete": complete,
        b"incomplete": incomplete,
        b"interval": interval,
        b"min interval": min_interval,
        b"peers": v4,
    }
    if v6:
        expected[b"peers6"] = v6
    assert protocol.compact_response(r, interval, min_interval) == bencodepy.encode(expected)
