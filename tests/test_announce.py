"""The tracker client's codecs as bytes: HTTP answers (BEP 3, 23, 7) and UDP replies (BEP 15)."""

from __future__ import annotations

import asyncio
import socket
import urllib.parse
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

import bencodepy
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scripted_http import answer, ok, redirect, routes, serve, tls_contexts

from swarm import announce, http_get
from swarm.errors import TrackerError, UDPTransactionMismatch
from tracker import codec

T = TypeVar("T")

IH = bytes(range(20))
PID = b"-SW0001-" + b"\x00\xff" * 6
REQ = announce.AnnounceRequest(IH, PID, 6881, uploaded=1, downloaded=2, left=3, event="started")


def test_http_url_carries_raw_bytes_percent_encoded() -> None:
    url = announce.http_announce_url("http://t/announce?x=1", REQ, tracker_id=b"\x01id")
    base, _, query = url.partition("?")
    assert base == "http://t/announce"
    fields = dict(part.split("=", 1) for part in query.split("&"))
    assert urllib.parse.unquote_to_bytes(fields["info_hash"]) == IH
    assert urllib.parse.unquote_to_bytes(fields["peer_id"]) == PID
    assert fields["trackerid"] == "%01id"
    assert (fields["x"], fields["port"], fields["left"], fields["event"]) == (
        "1",
        "6881",
        "3",
        "started",
    )
    assert (fields["compact"], fields["numwant"], fields["key"]) == ("1", "50", "00000000")
    assert "event" not in announce.http_announce_url(
        "http://t/a", announce.AnnounceRequest(IH, PID, 1)
    )


def test_http_answer_with_compact_dict_and_ipv6_peers() -> None:
    body = bencodepy.encode(
        {
            b"interval": 900,
            b"min interval": 60,
            b"complete": 2,
            b"incomplete": 5,
            b"peers": codec.pack_peer("10.0.0.1", 6881) + codec.pack_peer("10.0.0.2", 0),
            b"peers6": codec.pack_peer("2001:db8::1", 51413),
            b"tracker id": b"abc",
            b"warning message": b"be nice",
        }
    )
    r = announce.parse_http_response(body)
    assert r.peers == [("10.0.0.1", 6881), ("2001:db8::1", 51413)]
    assert (r.interval, r.min_interval, r.complete, r.incomplete) == (900, 60, 2, 5)
    assert (r.tracker_id, r.warning) == (b"abc", "be nice")
    listed = bencodepy.encode(
        {b"interval": 0, b"peers": [{b"ip": b"1.2.3.4", b"port": 5}, {b"ip": b"x", b"port": 0}, 7]}
    )
    r = announce.parse_http_response(listed)
    assert r.peers == [("1.2.3.4", 5)] and r.interval == 1800 and r.min_interval is None


def test_http_answers_that_are_failures() -> None:
    for body, message in {
        b"<html>busy</html>": "not bencoded",
        b"i03e": "not bencoded",
        b"le": "not a dictionary",
        b"d14:failure reason9:not theree": "refused: not there",
    }.items():
        with pytest.raises(TrackerError, match=message):
            announce.parse_http_response(body)


def test_udp_connect_reply() -> None:
    assert announce.parse_udp_connect(codec.connect_reply(7, 99), 7) == 99


def test_udp_announce_reply_ipv4_and_ipv6() -> None:
    peers = codec.pack_peer("1.2.3.4", 5) + codec.pack_peer("5.6.7.8", 9)
    r = announce.parse_udp_announce(codec.announce_reply(7, 0, 3, 1, peers), 7, ipv6=False)
    assert r.peers == [("1.2.3.4", 5), ("5.6.7.8", 9)]
    assert (r.interval, r.incomplete, r.complete, r.min_interval) == (1800, 3, 1, None)
    v6 = codec.pack_peer("::1", 6881)
    r = announce.parse_udp_announce(codec.announce_reply(7, 60, 0, 0, v6), 7, ipv6=True)
    assert r.peers == [("::1", 6881)] and r.interval == 60


def test_udp_reply_for_another_transaction_is_a_typed_mismatch() -> None:
    with pytest.raises(UDPTransactionMismatch):
        announce.parse_udp_connect(codec.connect_reply(8, 99), 7)
    # An error reply for someone else's transaction is not ours to report either.
    with pytest.raises(UDPTransactionMismatch):
        announce.parse_udp_announce(codec.error_reply(8, "nope"), 7, ipv6=False)
    assert issubclass(UDPTransactionMismatch, TrackerError)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (codec.error_reply(7, "torrent not allowed"), "refused: torrent not allowed"),
        (codec.connect_reply(7, 1), "wrong action"),
        (b"\x00\x00\x00\x01", "too short"),
        (codec.announce_reply(7, 60, 0, 0, b"")[:19], "too short"),
    ],
)
def test_udp_announce_replies_that_are_failures(data: bytes, message: str) -> None:
    with pytest.raises(TrackerError, match=message) as info:
        announce.parse_udp_announce(data, 7, ipv6=False)
    assert not isinstance(info.value, UDPTransactionMismatch)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.booleans())
def test_random_answers_are_read_or_are_tracker_errors(data: bytes, ipv6: bool) -> None:
    # Whatever a tracker sends, HTTP or UDP, the client raises nothing but TrackerError.
    for parse in (
        lambda: announce.parse_http_response(data),
        lambda: announce.parse_udp_connect(data, 7),
        lambda: announce.parse_udp_announce(data, 7, ipv6),
    ):
        try:
            parse()
        except TrackerError:
            continue


class EchoTransport:
    """Answers each datagram sent with a stale reply first, then the right one."""

    def __init__(self, proto: announce._UDPClient) -> None:
        self.proto = proto
        self.sent: list[bytes] = []

    def sendto(self, data: bytes) -> None:
        self.sent.append(data)
        _, _, tid = codec.REQUEST_HEADER.unpack_from(data)
        self.proto.datagram_received(codec.connect_reply(tid ^ 1, 1), ("t", 1))
        self.proto.datagram_received(codec.connect_reply(tid, 42), ("t", 1))


def test_udp_exchange_skips_replies_to_other_transactions() -> None:
    async def main() -> int:
        proto = announce._UDPClient()
        transport = EchoTransport(proto)
        async with asyncio.timeout(5):
            return await announce._udp_exchange(
                transport,  # type: ignore[arg-type]
                proto,
                codec.connect_request,
                announce.parse_udp_connect,
            )

    assert asyncio.run(main()) == 42


# -- HTTP announces on real sockets (127.0.0.1, port 0) -------------------------------------


def run(coro: Coroutine[Any, Any, T]) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(30):
            return await coro

    return asyncio.run(bounded())


ANSWER = bencodepy.encode({b"interval": 120, b"peers": codec.pack_peer("10.0.0.9", 7)})


def test_http_announce_sends_the_request_and_reads_the_peers() -> None:
    async def main() -> None:
        full = announce.http_announce_url("/t/announce", REQ)
        table = {full: ok(ANSWER), announce.http_announce_url("/go", REQ): redirect(302, full)}
        async with serve(routes(table)) as server:
            r = await announce.announce_once(server.url("/t/announce"), REQ)
            assert (r.interval, r.peers) == (120, [("10.0.0.9", 7)])
            r = await announce.announce_once(server.url("/go"), REQ)  # redirected
            assert r.peers == [("10.0.0.9", 7)]
        query = server.heads[0].split(b" ")[1].decode().partition("?")[2]
        fields = dict(part.split("=", 1) for part in query.split("&"))
        assert urllib.parse.unquote_to_bytes(fields["info_hash"]) == IH
        assert urllib.parse.unquote_to_bytes(fields["peer_id"]) == PID

    run(main())


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n", "answered HTTP 404 Not Found$"),
        (b"HTTP/1.1 500 Oops\r\nContent-Length: 3\r\n\r\nbad", "answered HTTP 500 Oops$"),
        (ok(b"d8:intervali1e5:peers" + b"%d:" % (1 << 20) + b"x" * (1 << 20) + b"e"), "1 MiB"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\nd8:inter", "in the middle"),
        (b"<html>busy</html>", "not HTTP"),
        (ok(b"<html>busy</html>"), "not bencoded"),
        (ok(b"d14:failure reason4:fulle"), "refused: full"),
    ],
)
def test_http_announces_that_fail(data: bytes, message: str) -> None:
    async def main() -> None:
        async with serve(answer(data)) as server:
            await announce.announce_once(server.url("/announce"), REQ)

    with pytest.raises(TrackerError, match=message) as info:
        run(main())
    assert "\n" not in str(info.value)


def test_an_https_tracker(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    server_ctx, client_ctx = tls_contexts(tmp_path)
    monkeypatch.setattr(http_get, "_default_context", client_ctx)  # it trusts our certificate

    async def main() -> announce.AnnounceResponse:
        async with serve(answer(ok(ANSWER)), ssl_context=server_ctx) as server:
            assert server.url().startswith("https://127.0.0.1:")
            return await announce.announce_once(server.url("/announce"), REQ)

    assert run(main()).peers == [("10.0.0.9", 7)]


def test_an_http_tracker_that_never_answers_is_given_up_on_time() -> None:
    async def silent(head: bytes, writer: asyncio.StreamWriter) -> None:
        await asyncio.Event().wait()  # cancelled when the server stops

    async def main() -> None:
        async with serve(silent) as server:
            url = server.url("/announce")
            with pytest.raises(TrackerError, match=f"^{url}: no answer within 0.1 s$"):
                await announce.http_announce(url, REQ, timeout=0.1)

    run(main())


def test_an_http_tracker_that_is_down() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # never listening: connecting is refused
        url = f"http://127.0.0.1:{s.getsockname()[1]}/announce"
        with pytest.raises(TrackerError, match="refused the connection"):
            run(announce.announce_once(url, REQ))
