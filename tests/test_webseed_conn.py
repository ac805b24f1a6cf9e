"""A web seed's own HTTP connections (swarm.webseed_conn, against a raw keep-alive server on
127.0.0.1) and where their bytes go (swarm.webseed_sink: in place, or through the cutter)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from swarm import http_get
from swarm.picker import PiecePicker
from swarm.webseed_conn import Conn, ConnError, connect
from swarm.webseed_plan import WebSeedHealth
from swarm.webseed_run import Job
from swarm.webseed_sink import JobSink

K = 16 * 1024


class Collect:
    """A sink that gives *room* bytes at a time and keeps what comes."""

    def __init__(self, room: int = 7, stop_at: int | None = None) -> None:
        self.data = bytearray()
        self.room = bytearray(room)
        self.stop_at = stop_at

    def buffer(self, limit: int) -> memoryview:
        return memoryview(self.room)[: min(limit, len(self.room))]

    def written(self, n: int) -> None:
        self.data += self.room[:n]

    @property
    def done(self) -> bool:
        return self.stop_at is not None and len(self.data) >= self.stop_at


Answer = Callable[[asyncio.StreamWriter], Awaitable[None]]


def sends(*parts: bytes, close: bool = False) -> Answer:
    """An answer written in *parts* (each its own write, a moment apart)."""

    async def answer(writer: asyncio.StreamWriter) -> None:
        for part in parts:
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.01)
        if close:
            writer.close()

    return answer


async def keep_alive_server(answers: list[Answer]) -> tuple[asyncio.Server, list[int]]:
    """A server that answers each request it reads, on any connection, with the next of
    *answers* (a request beyond them: nothing); the list counts requests per connection."""
    per_connection: list[int] = []

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        per_connection.append(0)
        me = len(per_connection) - 1
        try:
            while True:
                await reader.readuntil(b"\r\n\r\n")
                per_connection[me] += 1
                if not answers:
                    await asyncio.sleep(30)
                await answers.pop(0)(writer)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0), per_connection


def run(answers: list[Answer], test: Callable[[str], Awaitable[None]]) -> list[int]:
    async def main() -> list[int]:
        server, counts = await keep_alive_server(answers)
        port = server.sockets[0].getsockname()[1]
        async with server:
            async with asyncio.timeout(10):
                await test(f"http://127.0.0.1:{port}/f.bin")
            server.close()
        return counts

    return asyncio.run(main())


async def ask(url: str, conn: Conn | None = None, timeout: float = 5.0) -> tuple[Conn, int]:
    target = http_get.target(url, "Range: bytes=0-99\r\n", keep_alive=True)
    conn = conn or await connect(target, timeout, lambda n: 0.0)
    head = await conn.send(target.request)
    return conn, head.status


BODY = random.Random(1).randbytes(100)
HEAD = b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 0-99/1000\r\n"


def test_several_answers_on_one_kept_alive_connection() -> None:
    chunked = b"Transfer-Encoding: chunked\r\n\r\n%x\r\n%s\r\n%x\r\n%s\r\n0\r\n\r\n" % (
        30,
        BODY[:30],
        70,
        BODY[30:],
    )
    answers = [
        sends(HEAD + b"Content-Length: 100\r\n\r\n" + BODY[:40], BODY[40:]),  # head and body
        sends(HEAD + chunked[:50], chunked[50:]),  # chunked: through the parser
        sends(HEAD + b"Content-Length: 100\r\n\r\n", BODY[:1], BODY[1:]),
        sends(HEAD + b"Content-Length: 100\r\n\r\n" + BODY),  # all of it with the head
        sends(HEAD + b"Content-Length: 100\r\n\r\n" + BODY),
    ]

    async def test(url: str) -> None:
        conn: Conn | None = None
        for _ in range(5):
            conn, status = await ask(url, conn)
            sink = Collect()
            await conn.read_body(sink, 100)
            assert status == 206 and bytes(sink.data) == BODY and conn.reusable
        assert conn is not None
        conn.close()

    assert run(answers, test) == [5]


def test_a_body_longer_than_wanted_or_stopped_early_closes_the_connection() -> None:
    answers = [sends(HEAD + b"Content-Length: 100\r\n\r\n", BODY)] * 2

    async def test(url: str) -> None:
        conn, _ = await ask(url)
        sink = Collect()
        await conn.read_body(sink, 40)  # a whole file's answer, of which a range is wanted
        assert bytes(sink.data) == BODY[:40] and not conn.reusable
        conn, _ = await ask(url)
        sink = Collect(stop_at=20)  # every block came from others meanwhile
        await conn.read_body(sink, 100)
        assert sink.data == BODY[: len(sink.data)] and not conn.reusable

    assert run(answers, test) == [1, 1]


@pytest.mark.parametrize(
    ("answer", "words"),
    [
        (sends(HEAD + b"Content-Length: 100\r\n\r\n", BODY[:50], close=True), "middle"),
        (sends(b"SSH-2.0-OpenSSH\r\n\r\n"), "not HTTP"),
        (sends(b"", close=True), "without an answer"),
    ],
)
def test_an_answer_we_cannot_use_is_a_conn_error(answer: Answer, words: str) -> None:
    async def test(url: str) -> None:
        with pytest.raises(ConnError, match=words):
            conn, _ = await ask(url)
            await conn.read_body(Collect(), 100)

    run([answer], test)


def test_silence_times_out() -> None:
    async def test(url: str) -> None:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            await ask(url, timeout=0.3)
        assert 0.3 <= loop.time() - started < 2

    run([], test)


def test_a_rate_cap_pauses_reading() -> None:
    body = random.Random(2).randbytes(40_000)
    answers = [sends(HEAD + b"Content-Length: 40000\r\n\r\n", body)]

    async def test(url: str) -> None:
        target = http_get.target(url, keep_alive=True)
        conn = await connect(target, 5.0, lambda n: n / 100_000)  # 100 kB/s
        await conn.send(target.request)
        loop = asyncio.get_running_loop()
        started = loop.time()
        sink = Collect(room=4096)
        await conn.read_body(sink, len(body))
        assert bytes(sink.data) == body
        assert loop.time() - started >= 0.3  # 40 kB at 100 kB/s, the last read's wait unpaid
        conn.close()

    run(answers, test)


def test_the_next_request_sent_while_the_cap_holds_reading_gets_its_answer() -> None:
    # The last body's bytes cost a wait: reading is paused when the next request goes, and
    # the pause's end must resume reading for that answer's head (it used to resume only a
    # body, and the head waited for the silence time-out, half the runs of a capped download).
    answers = [sends(HEAD + b"Content-Length: 100\r\n\r\n" + BODY)] * 2

    async def test(url: str) -> None:
        target = http_get.target(url, "Range: bytes=0-99\r\n", keep_alive=True)
        conn = await connect(target, 3.0, lambda n: n / 1000)  # 100 bytes: 0.1 s
        for _ in range(2):
            head = await conn.send(target.request)
            sink = Collect()
            await conn.read_body(sink, 100)
            assert head.status == 206 and bytes(sink.data) == BODY
        conn.close()

    assert run(answers, test) == [2]


# -- into the pieces ------------------------------------------------------------------------


class Pieces:
    """A torrent as a sink sees it: a real picker, piece buffers, on_piece recorded."""

    def __init__(self, pieces: int, piece: int, length: int) -> None:
        self.picker = PiecePicker(pieces, piece, length, rng=random.Random(1))
        self.io = self
        self.buffers: dict[int, bytearray] = {}
        self.downloaded = self.wasted = 0
        self.last_blocks: list[tuple[int, int, bytes]] = []

    def piece_buffer(self, index: int, contributor: bytes) -> bytearray:
        return self.buffers.setdefault(index, bytearray(self.picker.piece_size(index)))

    def add_block(self, index: int, begin: int, block: Any, contributor: bytes) -> None:
        self.piece_buffer(index, contributor)[begin : begin + len(block)] = block

    def on_piece(self, conn: object, index: int, begin: int, block: Any) -> None:
        self.downloaded += len(block)
        self.last_blocks.append((index, begin, bytes(block)))
        if self.picker.block_received(conn, index, begin)[0]:
            self.add_block(index, begin, block, b"")
        else:
            self.wasted += len(block)


class Source:
    peer_id = b"web seed"
    downloaded = 0
    health = WebSeedHealth("http://w/")

    def cancel(self, index: int, begin: int, length: int) -> None: ...


def feed(sink: JobSink, data: bytes, step: int) -> None:
    view = memoryview(data)
    while view:
        room = sink.buffer(min(step, len(view)))
        room[:] = view[: len(room)]
        sink.written(len(room))
        view = view[len(room) :]


@pytest.mark.parametrize("step", [1000, K, 3 * K + 5, 1 << 20])
def test_a_jobs_bytes_land_in_the_pieces_however_they_are_read(step: int) -> None:
    t = Pieces(4, 2 * K, 7 * K + 7)  # piece 0 left to others: not in end-game
    data = random.Random(3).randbytes(5 * K + 7)
    source = Source()
    blocks = t.picker.pick(source, [False, True, True, True], 6, endgame=False)
    job = Job.of(blocks, 2 * K)
    sink = JobSink(t, source, job)  # type: ignore[arg-type]
    feed(sink, data, step)
    assert sink.done and not t.picker.in_endgame
    assert all(t.picker.piece_full(i) for i in (1, 2, 3))
    assert b"".join(bytes(t.buffers[i]) for i in (1, 2, 3)) == data
    # Each piece's last block as a peer's (on_piece verifies the piece), the rest in place.
    assert [(i, b) for i, b, _ in t.last_blocks] == [(1, K), (2, K), (3, K)]
    assert t.downloaded == len(data) and t.wasted == 0 and source.downloaded == len(data)


def test_in_end_game_every_block_goes_as_a_peers() -> None:
    t = Pieces(2, 2 * K, 4 * K)
    data = random.Random(5).randbytes(4 * K)
    source = Source()
    job = Job.of(t.picker.pick(source, [True, True], 4, endgame=False), 2 * K)
    assert t.picker.in_endgame
    sink = JobSink(t, source, job)  # type: ignore[arg-type]
    feed(sink, data, 3 * K)
    assert [(i, b) for i, b, _ in t.last_blocks] == [(0, 0), (0, K), (1, 0), (1, K)]
    assert b"".join(bytes(t.buffers[i]) for i in (0, 1)) == data


def test_a_block_delivered_by_another_meanwhile_is_dropped_in_place() -> None:
    t = Pieces(3, 4 * K, 12 * K)
    data = random.Random(4).randbytes(8 * K)
    source = Source()
    job = Job.of(t.picker.pick(source, [True, True, False], 8, endgame=False), 4 * K)
    sink = JobSink(t, source, job)  # type: ignore[arg-type]
    feed(sink, data[: K + 100], K + 100)  # block 0 whole, block 1 begun in place
    t.buffers[0][K : 2 * K] = data[K : 2 * K]  # block 1 came from a peer (end-game)
    t.picker.block_received("peer", 0, K)
    job.blocks.discard((0, K))
    before = bytes(t.buffers[0])
    feed(sink, data[K + 100 :], 5000)
    assert bytes(t.buffers[0]) == before[: 2 * K] + data[2 * K : 4 * K]  # 1 left as it was
    assert bytes(t.buffers[1]) == data[4 * K :] and sink.done
    assert t.wasted == 0 and all(t.picker.piece_full(i) for i in range(2))


def test_a_dropped_web_seeds_answer_is_read_no_further() -> None:
    t = Pieces(3, 2 * K, 6 * K)
    source = Source()
    source.health = WebSeedHealth("http://w/")
    job = Job.of(t.picker.pick(source, [True, True, False], 4, endgame=False), 2 * K)
    sink = JobSink(t, source, job)  # type: ignore[arg-type]
    feed(sink, bytes(K), K)
    assert not sink.done
    source.health.dropped = "2 corrupt pieces"  # its first piece failed (the rest would too)
    assert sink.done and job.blocks
