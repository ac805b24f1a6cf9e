"""The tracker's one-shot fast path: which requests it answers at once (bytes only), and the
answers on real sockets next to those that go the long way through llhttp."""

from __future__ import annotations

import asyncio
import socket

import bencodepy
import pytest

from tracker.listener import one_shot
from tracker.server import Tracker, TrackerConfig

IH = b"%01" * 20
CLOSE = b"Connection: close\r\n"


@pytest.mark.parametrize(
    ("data", "target"),
    [
        (b"GET /announce?a=1 HTTP/1.1\r\nHost: x\r\n" + CLOSE + b"\r\n", b"/announce?a=1"),
        (b"GET /a HTTP/1.1\r\nConnection:  Close \r\n\r\n", b"/a"),
        (b"GET /a HTTP/1.0\r\nHost: x\r\n\r\n", b"/a"),
        (b"GET /a HTTP/1.0\r\n\r\n", b"/a"),
        # keep-alive: the connection stays open, so the event loop must own it
        (b"GET /a HTTP/1.1\r\nHost: x\r\n\r\n", None),
        (b"GET /a HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", None),
        (b"GET /a HTTP/1.1\r\nConnection: keep-alive, close\r\n\r\n", None),
        # not one whole GET, or framing llhttp must judge
        (b"GET /a HTTP/1.1\r\n" + CLOSE, None),
        (b"GET /a HTTP/1.1\r\n" + CLOSE + b"\r\nGET /b HTTP/1.1\r\n\r\n", None),
        (b"POST /a HTTP/1.1\r\n" + CLOSE + b"\r\n", None),
        (b"HEAD /a HTTP/1.1\r\n" + CLOSE + b"\r\n", None),
        (b"GET http://x/a HTTP/1.1\r\n" + CLOSE + b"\r\n", None),
        (b"GET /a HTTP/1.1\r\n" + CLOSE + b"Content-Length: 3\r\n\r\n", None),
        (b"GET /a HTTP/1.1\r\n" + CLOSE + b"Transfer-Encoding: chunked\r\n\r\n", None),
        (b"GET /a HTTP/1.1\r\n" + CLOSE + b"Connection: close\r\n\r\n", None),
        (b"GET /a HTTP/1.1\r\nConnection: close\nX: y\r\n\r\n", None),
        (b"GET /a HTTP/1.1\r\nConnection: close\rX: y\r\n\r\n", None),
        (b"GET /a HTTP/1.1\r\nX: y\r\n folded\r\n" + CLOSE + b"\r\n", None),
        (b"GET /a b HTTP/1.1\r\n" + CLOSE + b"\r\n", None),
        (b"GET /a\x01b HTTP/1.1\r\n" + CLOSE + b"\r\n", None),
        (b"GET /a\xffb HTTP/1.1\r\n" + CLOSE + b"\r\n", None),
        (b"GET /a HTTP/2.0\r\n" + CLOSE + b"\r\n", None),
    ],
)
def test_one_shot_takes_only_whole_closing_gets(data: bytes, target: bytes | None) -> None:
    assert one_shot(data) == target


def announce(peer: int) -> bytes:
    return (
        b"/announce?info_hash="
        + IH
        + b"&peer_id=-XX0001-"
        + b"%02d" % peer * 6
        + b"&port=%d&left=5&compact=1" % (6000 + peer)
    )


async def exchange(port: int, chunks: list[bytes], *, answers: int = 1) -> list[bytes]:
    """Send *chunks* (each after the answer to the one before when *answers* > 1) and read
    until the tracker closes the connection or *answers* answers are in."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        for chunk in chunks:
            writer.write(chunk)
            await writer.drain()
        data = b""
        while data.count(b"HTTP/1.1 ") < answers or not data.endswith(b"e"):
            more = await reader.read(65536)
            if not more:
                break
            data += more
        return [b"HTTP/1.1 " + part for part in data.split(b"HTTP/1.1 ")[1:]]
    finally:
        writer.close()


def body(answer: bytes) -> dict[bytes, object]:
    head, _, rest = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
    assert len(rest) == length
    decoded = bencodepy.decode(rest)
    assert isinstance(decoded, dict)
    return decoded


def test_one_shot_and_long_way_answers_share_one_swarm() -> None:
    async def main() -> None:
        t = Tracker(TrackerConfig(host="127.0.0.1", port=0, udp=False))
        await t.start()
        try:
            closing = b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            # one shot: the whole request at once, answered and closed
            [a] = await exchange(t.port, [closing % announce(1)])
            assert b"Connection: close\r\n" in a and body(a)[b"incomplete"] == 1
            # the same request in two pieces goes the long way, to the same state
            req = closing % announce(2)
            [b] = await exchange(t.port, [req[:30], req[30:]])
            assert body(b)[b"peers"] == bytes([127, 0, 0, 1]) + (6001).to_bytes(2, "big")
            # keep-alive: two answers on one connection, then the peers of both before
            keep = b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n"
            c, d = await exchange(t.port, [keep % announce(3), keep % announce(4)], answers=2)
            assert b"Connection" not in c and body(d)[b"incomplete"] == 4
            # HTTP/1.0 without keep-alive is a one-shot too; bad input is a failure reason
            [e] = await exchange(t.port, [b"GET /announce?info_hash=x HTTP/1.0\r\n\r\n"])
            assert b"failure reason" in body(e)
            [f] = await exchange(t.port, [closing % b"/stats"])
            assert b'"leechers": 4' in f
        finally:
            await t.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_the_listener_accepts_a_burst_and_answers_all() -> None:
    async def main() -> None:
        t = Tracker(TrackerConfig(host="127.0.0.1", port=0, udp=False))
        await t.start()
        try:
            closing = b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            answers = await asyncio.gather(
                *(exchange(t.port, [closing % announce(i)]) for i in range(1, 60))
            )
            assert all(len(a) == 1 and b"peers" in body(a[0]) for a in answers)
            assert t.state.stats()["leechers"] == 59
        finally:
            await t.stop()

    asyncio.run(asyncio.wait_for(main(), 30))


def test_a_port_in_use_is_a_start_error() -> None:
    from tracker.errors import StartError

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]

        async def main() -> None:
            t = Tracker(TrackerConfig(host="127.0.0.1", port=port, udp=False))
            with pytest.raises(StartError, match="already in use"):
                await t.start()

        asyncio.run(asyncio.wait_for(main(), 30))


def test_a_failing_answer_closes_only_its_connection() -> None:
    async def main() -> None:
        t = Tracker(TrackerConfig(host="127.0.0.1", port=0, udp=False))
        await t.start()
        real = t.http.respond
        calls = []

        def once_broken(target: bytes, remote: str) -> tuple[int, bytes, bytes]:
            calls.append(target)
            if len(calls) == 1:
                raise RuntimeError("a bug")
            return real(target, remote)

        t.http.respond = once_broken  # type: ignore[method-assign]
        try:
            closing = b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
            assert await exchange(t.port, [closing % announce(1)]) == []  # closed, no answer
            [a] = await exchange(t.port, [closing % announce(2)])
            assert body(a)[b"incomplete"] == 1
        finally:
            await t.stop()

    asyncio.run(asyncio.wait_for(main(), 30))
