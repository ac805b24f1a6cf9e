"""The tracker's HTTP and UDP shells on real sockets (127.0.0.1, OS-chosen ports)."""

from __future__ import annotations

import asyncio
import json
import random
import struct
import urllib.parse

import aiohttp
import bencodepy
import pytest
import yarl
from hypothesis import given, settings
from hypothesis import strategies as st

from swarm import announce
from tracker.server import Tracker, TrackerConfig
from tracker.state import TrackerState
from tracker.udp import PROTOCOL_ID, UDPTracker

IH = bytes(range(20))


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(asyncio.wait_for(coro, 60))


async def started() -> Tracker:
    t = Tracker(TrackerConfig(host="127.0.0.1", port=0, interval=60, min_interval=5))
    await t.start()
    return t


def req(peer: int, left: int = 10, event: str = "started") -> announce.AnnounceRequest:
    return announce.AnnounceRequest(IH, bytes([peer]) * 20, 6000 + peer, left=left, event=event)


def test_http_announce_round_trip_with_our_client() -> None:
    async def main() -> None:
        t = await started()
        try:
            url = t.announce_urls[0]
            await announce.http_announce(url, req(1))
            r = await announce.http_announce(url, req(2))
            assert r.peers == [("127.0.0.1", 6001)]
            assert (r.interval, r.min_interval, r.incomplete) == (60, 5, 2)
        finally:
            await t.stop()

    run(main())


def test_a_left_0_starter_is_given_the_seed_over_http_and_udp() -> None:
    # a magnet client (aria2) announces started with left=0 before it has the metadata
    async def main() -> None:
        t = await started()
        try:
            http, udp = t.announce_urls[0], t.announce_urls[1]
            await announce.http_announce(http, req(1, left=0))  # a seed with the data
            r = await announce.http_announce(http, req(2, left=0))
            assert r.peers == [("127.0.0.1", 6001)] and (r.complete, r.incomplete) == (2, 0)
            r = await announce.udp_announce(udp, req(3, left=0))
            assert sorted(r.peers) == [("127.0.0.1", 6001), ("127.0.0.1", 6002)]
            # a seed seen finishing is given the leechers only
            await announce.http_announce(http, req(4, left=10))
            await announce.http_announce(http, req(4, left=0, event="completed"))
            await announce.http_announce(http, req(5, left=10))
            r = await announce.http_announce(http, req(4, left=0, event=""))
            assert r.peers == [("127.0.0.1", 6005)]
            assert (r.complete, r.incomplete) == (4, 1)
        finally:
            await t.stop()

    run(main())


@pytest.mark.parametrize(
    "query",
    [
        "",
        "info_hash=abc&peer_id=xyz&port=1",
        "info_hash=%01%02&peer_id=" + "a" * 20 + "&port=5",
        "info_hash=" + "a" * 20 + "&peer_id=" + "b" * 20 + "&port=99999",
        "info_hash=" + "a" * 20 + "&peer_id=" + "b" * 20 + "&port=5&event=explode",
        "info_hash=" + "a" * 20 + "&peer_id=" + "b" * 20 + "&port=5&left=lots",
        "x=" + "y" * 6000,
    ],
)
def test_bad_http_announce_is_200_with_failure_reason(query: str) -> None:
    async def main() -> None:
        t = await started()
        try:
            base = t.announce_urls[0]
            async with aiohttp.ClientSession() as http:
                async with http.get(yarl.URL(f"{base}?{query}", encoded=True)) as resp:
                    assert resp.status == 200
                    body = bencodepy.decode(await resp.read())
                    assert b"failure reason" in body
        finally:
            await t.stop()

    run(main())


def test_scrape_stats_page_and_404() -> None:
    async def main() -> None:
        t = await started()
        try:
            url = t.announce_urls[0]
            base = url.rsplit("/", 1)[0]
            async with aiohttp.ClientSession() as http:
                await announce.http_announce(url, req(1, left=0))
                await announce.http_announce(url, req(2))
                ih = urllib.parse.quote_from_bytes(IH, safe="")
                async with http.get(yarl.URL(f"{base}/scrape?info_hash={ih}", encoded=True)) as r:
                    files = bencodepy.decode(await r.read())[b"files"]
                    assert files[IH] == {b"complete": 1, b"downloaded": 0, b"incomplete": 1}
                async with http.get(f"{base}/stats") as r:
                    stats = json.loads(await r.text())
                    assert stats["seeders"] == 1 and stats["leechers"] == 1
                async with http.get(f"{base}/") as r:
                    assert IH.hex() in await r.text()
                async with http.get(f"{base}/nothing-here") as r:
                    assert r.status == 404
        finally:
            await t.stop()

    run(main())


def test_many_concurrent_clients() -> None:
    async def main() -> None:
        t = await started()
        try:
            url = t.announce_urls[0]
            reqs = [
                announce.AnnounceRequest(IH, i.to_bytes(20, "big"), 1000 + i, left=1)
                for i in range(300)
            ]
            results = await asyncio.gather(*(announce.http_announce(url, r) for r in reqs))
            assert all(r.interval == 60 for r in results)
            assert t.state.swarms[IH].leechers == 300
        finally:
            await t.stop()

    run(main())


def test_udp_announce_and_scrape_round_trip() -> None:
    async def main() -> None:
        t = await started()
        try:
            url = t.announce_urls[1]
            await announce.udp_announce(url, req(1, left=0))
            r = await announce.udp_announce(url, req(2))
            assert r.peers == [("127.0.0.1", 6001)]
            assert (r.complete, r.incomplete, r.interval) == (1, 1, 60)
        finally:
            await t.stop()

    run(main())


class Clock:
    now = 10_000.0

    def __call__(self) -> float:
        return self.now


def test_udp_connection_ids_expire_and_are_checked() -> None:
    clock = Clock()
    udp = UDPTracker(TrackerState(interval=60, clock=clock), 60, clock)
    addr = ("127.0.0.1", 5555)
    reply = udp.handle(struct.pack(">QII", PROTOCOL_ID, 0, 7), addr)
    assert reply is not None
    action, tid, conn_id = struct.unpack(">IIQ", reply)
    assert (action, tid) == (0, 7)
    packet = struct.pack(
        ">QII20s20sQQQIIIiH", conn_id, 1, 8, IH, b"p" * 20, 0, 5, 0, 2, 0, 0, -1, 6881
    )
    assert struct.unpack_from(">II", udp.handle(packet, addr)) == (1, 8)  # type: ignore[arg-type]
    # Another address cannot use it; a guessed id fails; after two minutes it has expired.
    assert struct.unpack_from(">I", udp.handle(packet, ("127.0.0.1", 5556)))[0] == 3  # type: ignore[arg-type]
    clock.now += 125
    assert struct.unpack_from(">I", udp.handle(packet, addr))[0] == 3  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_malformed_udp_packets_are_dropped_or_refused(data: bytes) -> None:
    clock = Clock()
    udp = UDPTracker(TrackerState(interval=60, clock=clock), 60, clock)
    reply = udp.handle(data, ("127.0.0.1", 1))
    if reply is not None:
        action = struct.unpack_from(">I", reply)[0]
        assert action in (0, 3)  # a valid connect, or an error: never an announce


def test_random_garbage_over_udp_leaves_the_tracker_working() -> None:
    async def main() -> None:
        t = await started()
        try:
            loop = asyncio.get_running_loop()
            assert t.udp_port is not None
            transport, _ = await loop.create_datagram_endpoint(
                asyncio.DatagramProtocol, remote_addr=("127.0.0.1", t.udp_port)
            )
            rng = random.Random(5)
            for _ in range(200):
                transport.sendto(rng.randbytes(rng.randrange(0, 120)))
            transport.close()
            r = await announce.udp_announce(t.announce_urls[1], req(3))
            assert r.interval == 60
        finally:
            await t.stop()

    run(main())


async def raw_exchange(port: int, data: bytes, timeout: float = 10) -> bytes:
    """Send *data* on one connection and read until the tracker closes it (or a timeout)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        async with asyncio.timeout(timeout):
            return await reader.read(-1)
    finally:
        writer.close()


def announce_line(peer: int, connection: str = "keep-alive") -> bytes:
    ih = urllib.parse.quote_from_bytes(IH, safe="")
    pid = f"%{peer:02X}" * 20
    return (
        f"GET /announce?info_hash={ih}&peer_id={pid}&port={6000 + peer}&left=5"
        f" HTTP/1.1\r\nHost: x\r\nConnection: {connection}\r\n\r\n"
    ).encode()


def test_http_keep_alive_and_pipelined_requests_answered_in_order() -> None:
    async def main() -> None:
        t = await started()
        try:
            data = announce_line(1) + announce_line(2) + announce_line(3, connection="close")
            out = await raw_exchange(t.port, data)
            assert out.count(b"HTTP/1.1 200 OK\r\n") == 3
            assert out.count(b"Connection: close") == 1
            bodies = out.split(b"\r\n\r\n")[1:]
            # the third answer sees the first two peers
            third = bencodepy.decode(bodies[-1])
            assert third[b"incomplete"] == 3 and len(third[b"peers"]) == 12
        finally:
            await t.stop()

    run(main())


@pytest.mark.parametrize(
    ("request_bytes", "status"),
    [
        (b"NOT HTTP AT ALL\r\n\r\n", b"400"),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Pad: " + b"a" * 70_000 + b"\r\n\r\n", b"400"),
        (b"POST /announce HTTP/1.1\r\nContent-Length: 0\r\nConnection: close\r\n\r\n", b"405"),
    ],
)
def test_http_garbage_gets_an_error_and_the_tracker_keeps_serving(
    request_bytes: bytes, status: bytes
) -> None:
    async def main() -> None:
        t = await started()
        try:
            out = await raw_exchange(t.port, request_bytes)
            assert out.startswith(b"HTTP/1.1 " + status)
            again = await raw_exchange(t.port, announce_line(7, connection="close"))
            assert b"8:intervali60e" in again
        finally:
            await t.stop()

    run(main())


def test_http_over_long_query_head_and_absolute_target() -> None:
    async def main() -> None:
        t = await started()
        try:
            long_target = b"/announce?x=" + b"a" * 20_000
            out = await raw_exchange(
                t.port, b"GET " + long_target + b" HTTP/1.1\r\nConnection: close\r\n\r\n"
            )
            assert out.startswith(b"HTTP/1.1 200")
            assert b"failure reason" in out and b"too long" in out
            head = await raw_exchange(t.port, b"HEAD /stats HTTP/1.1\r\nConnection: close\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 200") and head.endswith(b"\r\n\r\n")
            absolute = await raw_exchange(
                t.port,
                announce_line(9, connection="close").replace(
                    b"GET /announce", f"GET http://127.0.0.1:{t.port}/announce".encode()
                ),
            )
            assert b"8:intervali60e" in absolute
        finally:
            await t.stop()

    run(main())


def test_idle_keep_alive_connections_are_closed_by_the_sweep() -> None:
    async def main() -> None:
        t = await started()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", t.port)
            writer.write(announce_line(4))
            await reader.readuntil(b"\r\n\r\n")
            assert len(t.http.connections) == 1
            conn = next(iter(t.http.connections))
            t.http.sweep_idle(conn.last_active + 1)  # not idle long enough: kept
            assert len(t.http.connections) == 1
            t.http.sweep_idle(conn.last_active + 3600)
            async with asyncio.timeout(10):
                while await reader.read(65536):
                    pass  # the rest of the body, then EOF
            writer.close()
        finally:
            await t.stop()

    run(main())
