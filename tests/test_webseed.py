"""Web seeds in the engine (swarm.webseed_run, pure; swarm.webseed with a real aiohttp server
on 127.0.0.1 and the library's Session)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import random
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from swarm import metainfo
from swarm.errors import TrackerError
from swarm.magnet import parse_magnet, without_web_seeds
from swarm.picker import PiecePicker
from swarm.session import Session
from swarm.webseed import WebSeeds, WebSeedSettings
from swarm.webseed_plan import FileRange, Problem
from swarm.webseed_run import (
    FIRST_RUN_BYTES,
    WHOLE_BODY_LIMIT,
    BadResponse,
    BlockCutter,
    Job,
    RunSizer,
    check_response,
    pick_run,
)

K = 16 * 1024
WS = "web seed"  # the picker's key for the web seed


def picker(pieces: int = 32, piece: int = K, length: int | None = None) -> PiecePicker:
    return PiecePicker(pieces, piece, length or pieces * piece, rng=random.Random(1))


def pieces_of(blocks: list[tuple[int, int, int]]) -> list[int]:
    return sorted({b[0] for b in blocks})


# -- runs ----------------------------------------------------------------------------------


def test_a_run_is_consecutive_whole_pieces_of_about_run_bytes() -> None:
    p = picker(64)
    blocks = pick_run(p, WS, 8 * K)
    got = pieces_of(blocks)
    assert len(got) == 8 and got == list(range(got[0], got[0] + 8))
    assert all(p.partial[i].requested for i in got)  # marked asked of the web seed
    # A second run takes none of the first's pieces.
    assert not set(pieces_of(pick_run(p, WS, 8 * K))) & set(got)


def test_a_run_starts_at_the_piece_no_peer_has() -> None:
    p = picker(32)
    peer_has = [True] * 32
    peer_has[20] = False
    p.peer_bitfield(peer_has)  # a peer has every piece but 20
    for _ in range(4):
        p.set_have(_)  # past the random first pieces: rarest first
    blocks = pick_run(p, WS, K)
    assert pieces_of(blocks) == [20]


def test_a_run_stops_at_a_piece_a_peer_has_started() -> None:
    p = picker(16, 2 * K)
    mask = [False] * 16
    mask[5] = True
    p.pick("peer", mask, 1)  # the first block of piece 5 asked of a peer
    runs = []
    while blocks := pick_run(p, WS, 16 * 2 * K):
        runs.append(blocks)
    # Whole new pieces first (runs grown both ways from where they started), none of them 5;
    # last, piece 5: the block nobody was asked for and an end-game copy of the peer's.
    assert sorted(i for r in runs[:-1] for i in pieces_of(r)) == [i for i in range(16) if i != 5]
    assert sorted(runs[-1]) == [(5, 0, K), (5, K, K)]


def test_rare_only_leaves_pieces_peers_have_to_them() -> None:
    p = picker(8)
    has = [True] * 8
    has[3] = False
    p.peer_bitfield(has)
    assert pieces_of(pick_run(p, WS, 8 * K, rare_only=True)) == [3]
    assert pick_run(p, WS, 8 * K, rare_only=True) == []


def test_alone_runs_go_in_order_from_a_start_wrapping_round() -> None:
    p = picker(16)
    runs = [pieces_of(pick_run(p, WS, 4 * K, in_order=10)) for _ in range(5)]
    assert runs == [[10, 11, 12, 13], [14, 15], [0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_among_a_crowd_few_rare_pieces_are_left_to_the_others() -> None:
    p = picker(8)
    has = [True] * 8
    has[3] = has[6] = False
    p.peer_bitfield(has)  # two pieces no peer has, three other downloaders connected
    assert pick_run(p, WS, 8 * K, rare_only=True, crowd=3, draw=0.5) == []  # 0.5*2*4 >= 2
    assert len(pieces_of(pick_run(p, WS, 8 * K, rare_only=True, crowd=3, draw=0.2))) == 1


def test_a_web_seed_is_shared_only_among_downloaders() -> None:
    class Owner:
        torrent = make_torrent(b"x" * K, "http://w/")

        def __init__(self) -> None:
            self.picker = picker(2)
            self.peers: set[object] = set()

        def on_piece(self, conn: object, index: int, begin: int, block: bytes) -> None: ...

    owner = Owner()
    seeds = WebSeeds(owner, ["http://w/"])
    assert not seeds.shared()  # alone: the web seed is used fully
    owner.peers.add("a downloader")
    assert seeds.shared()  # a piece at a time, pieces no peer has
    owner.picker.peer_bitfield([True, True])
    assert owner.picker.seeds == 1 and not seeds.shared()  # beside a seed: as before
    assert WebSeeds(Owner(), ["http://w/"], settings=WebSeedSettings(rare_only=True)).shared()


def test_with_nothing_free_it_helps_finish_started_pieces_then_duplicates_in_end_game() -> None:
    p = picker(2, 2 * K)
    p.pick("peer", [True, True], 3)  # piece 0 whole and half of piece 1 asked of a peer
    blocks = pick_run(p, WS, 8 * K)
    assert blocks == [(1, K, K)]  # the block nobody was asked for
    assert p.in_endgame
    dup = pick_run(p, WS, 8 * K)
    assert len(dup) >= 1 and len(pieces_of(dup)) == 1  # one piece's blocks, duplicated


def test_the_short_last_piece_and_a_released_run() -> None:
    p = picker(3, K, 2 * K + 100)
    blocks = pick_run(p, WS, 10 * K)
    assert pieces_of(blocks) == [0, 1, 2] and blocks[-1] == (2, 0, 100)
    p.release(WS, blocks)
    assert p.partial == {} and pieces_of(pick_run(p, WS, 10 * K)) == [0, 1, 2]


def test_a_run_is_about_a_second_of_the_measured_rate() -> None:
    sizer = RunSizer(4 << 20)
    assert sizer.run_bytes == FIRST_RUN_BYTES
    sizer.done(512 << 10, 2.0)  # 256 KiB/s
    assert sizer.run_bytes == 256 << 10
    sizer.done(100 << 20, 1.0)
    assert sizer.run_bytes == 4 << 20  # never more than the most
    tiny = RunSizer(4 << 20)
    tiny.done(10, 10.0)
    assert tiny.run_bytes == 1  # pick_run still gives a whole piece


def test_a_run_grows_at_most_twice_over_the_last_one() -> None:
    # The first piece of a capped server comes from its idle credit, at once: that measures
    # no rate, and the next run must not be the rest of the file.
    sizer = RunSizer(16 << 20)
    sizer.done(16 << 10, 0.001)  # 16 MiB/s, on one piece
    assert sizer.run_bytes == 32 << 10
    sizer.done(32 << 10, 0.03)
    assert sizer.run_bytes == 64 << 10
    sizer.done(64 << 10, 0.5)  # 128 KiB/s: the average is still MB/s, the growth holds it
    assert sizer.run_bytes == 128 << 10


# -- bytes into blocks ----------------------------------------------------------------------


def test_the_cutter_cuts_a_span_into_whole_blocks_of_a_piece_however_it_is_fed() -> None:
    p = picker(3, 2 * K, 5 * K + 7)
    data = random.Random(2).randbytes(p.total_length)
    blocks = [(0, 0, K), (0, K, K), (1, 0, K), (1, K, K), (2, 0, K), (2, K, 7)]
    for step in (1000, K, 3 * K + 5, len(data)):
        cutter = BlockCutter(p, 0)
        out = []
        for i in range(0, len(data), step):
            out += [(i, b, bytes(d)) for i, b, d in cutter.feed(data[i : i + step])]
        assert b"".join(d for _, _, d in out) == data and cutter.pending == 0
        for index, begin, d in out:  # whole blocks, never across a piece's end
            assert begin % K == 0 and (len(d) % K == 0 or begin + len(d) == p.piece_size(index))
            assert begin + len(d) <= p.piece_size(index)
        cut = [(i, b + o, min(K, len(d) - o)) for i, b, d in out for o in range(0, len(d), K)]
        assert cut == blocks
    whole = BlockCutter(p, 0)  # one read of all: a span per piece
    assert [(i, b, len(d)) for i, b, d in whole.feed(data)] == [
        (0, 0, 2 * K),
        (1, 0, 2 * K),
        (2, 0, K + 7),
    ]


def test_a_job_covers_its_blocks() -> None:
    job = Job.of([(3, K, K), (3, 0, K)], 2 * K)
    assert (job.start, job.end) == (6 * K, 8 * K) and job.blocks == {(3, 0), (3, K)}


# -- answers ------------------------------------------------------------------------------


ASK = FileRange(0, 100, 199)


@pytest.mark.parametrize(
    ("status", "headers", "skip"),
    [
        (206, {"Content-Range": "bytes 100-199/1000", "Content-Length": "100"}, 0),
        (206, {"Content-Range": "bytes 100-199/*"}, 0),
        (200, {"Content-Length": "1000"}, 100),  # a small file whole: the range is cut out
    ],
)
def test_answers_we_take(status: int, headers: dict[str, str], skip: int) -> None:
    assert check_response(status, headers, ASK, 1000) == skip


@pytest.mark.parametrize(
    ("status", "headers", "size", "words"),
    [
        (206, {"Content-Range": "bytes 0-99/1000"}, 1000, "Content-Range"),
        (206, {"Content-Range": "bytes 100-199/999"}, 1000, "Content-Range"),
        (206, {}, 1000, "Content-Range"),
        (206, {"Content-Range": "bytes 100-199/1000", "Content-Length": "99"}, 1000, "99 bytes"),
        (200, {"Content-Length": "999"}, 1000, "999 bytes"),
        (200, {}, 1000, "unknown"),
        (200, {"Content-Length": str(WHOLE_BODY_LIMIT + 1)}, WHOLE_BODY_LIMIT + 1, "no range"),
        (206, {"Content-Range": "bytes 100-199/1000", "Content-Encoding": "gzip"}, 1000, "gzip"),
        (404, {}, 1000, "HTTP 404"),
        (500, {}, 1000, "HTTP 500"),
    ],
)
def test_answers_we_refuse(status: int, headers: dict[str, str], size: int, words: str) -> None:
    with pytest.raises(BadResponse) as err:
        check_response(status, headers, ASK, size)
    assert words in err.value.detail and err.value.problem is Problem.HTTP_ERROR


def test_a_503_retry_after_is_passed_on() -> None:
    with pytest.raises(BadResponse) as err:
        check_response(503, {"Retry-After": "7"}, ASK, 1000)
    assert err.value.retry_after == 7.0


# -- with a real server ---------------------------------------------------------------------

FAST = WebSeedSettings(timeout=0.5, base_delay=0.05, max_delay=0.2, idle_poll=0.02)


@pytest.fixture
def data() -> bytes:
    return random.Random(7).randbytes(300_000)


def make_torrent(data: bytes, url: str) -> metainfo.Torrent:
    hashes = [hashlib.sha1(data[i : i + K]).digest() for i in range(0, len(data), K)]
    raw = metainfo.build_metainfo(
        name="w.bin", piece_length=K, piece_hashes=hashes, length=len(data), url_list=[url]
    )
    return metainfo.parse(raw)


async def serve(handler: Callable[[web.Request], object]) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_get("/{name}", handler)  # type: ignore[arg-type]
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    return runner, f"http://127.0.0.1:{port}/"


def with_server(
    handler: Callable[[web.Request], object],
    test: Callable[[Session, str], Coroutine[Any, Any, None]],
    web_seeds: WebSeedSettings | bool = FAST,
) -> None:
    """Run *test* with a session and a web server of *handler* (its base URL)."""

    async def main() -> None:
        runner, url = await serve(handler)
        try:
            async with Session(host="127.0.0.1", port=0, web_seeds=web_seeds) as s:
                await test(s, url)
        finally:
            await runner.cleanup()

    asyncio.run(main())


async def until(predicate: Callable[[], bool], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def ranged(data: bytes, corrupt: bool = False) -> Callable[[web.Request], object]:
    async def handle(request: web.Request) -> web.StreamResponse:
        first, last = request.http_range.start, request.http_range.stop
        body = data[first:last]
        if corrupt:
            body = bytes(b ^ 1 for b in body)
        return web.Response(
            status=206,
            body=body,
            headers={"Content-Range": f"bytes {first}-{last - 1}/{len(data)}"},
        )

    return handle


def test_a_web_seed_alone_downloads_the_file(tmp_path: Path, data: bytes) -> None:
    async def test(session: Session, url: str) -> None:
        t = await session.add(make_torrent(data, url), tmp_path / "out")
        async with asyncio.timeout(20):
            await t.complete.wait()
        assert (tmp_path / "out" / "w.bin").read_bytes() == data
        st = t.stats()
        assert st.web_seed_downloaded == st.downloaded == len(data) and st.peer_downloaded == 0

    with_server(ranged(data), test)


def test_a_corrupt_web_seed_is_dropped(
    tmp_path: Path, data: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    async def test(session: Session, url: str) -> None:
        t = await session.add(make_torrent(data, url), tmp_path / "out")
        src = t.web_seeds.sources[0]
        await until(lambda: src.health.dropped is not None, 20)
        assert src.health.dropped is not None and "corrupt" in src.health.dropped
        st = t.stats()
        assert st.have_pieces == 0 and st.hash_failures >= 2
        assert st.web_seeds == 0 and st.banned == 0  # no peer was blamed
        assert any("dropping web seed" in r.message for r in caplog.records)

    with_server(ranged(data, corrupt=True), test)


@pytest.mark.parametrize("status", [404, 500])
def test_an_erring_web_seed_backs_off_then_is_dropped(
    tmp_path: Path, data: bytes, status: int
) -> None:
    hits: list[float] = []

    async def handle(request: web.Request) -> web.Response:
        hits.append(asyncio.get_running_loop().time())
        return web.Response(status=status)

    async def test(session: Session, url: str) -> None:
        t = await session.add(make_torrent(data, url), tmp_path / "out")
        src = t.web_seeds.sources[0]
        await until(lambda: src.health.dropped is not None, 20)
        assert src.health.dropped is not None and f"HTTP {status}" in src.health.dropped
        assert FAST.max_failures <= len(hits) <= 2 * FAST.max_failures
        assert hits[-1] - hits[0] >= 0.05 + 0.1 + 0.2  # it waited between tries
        await until(lambda: not src._jobs, 5)
        assert t.picker.partial == {}  # every block it had asked for went back

    with_server(handle, test)


def test_a_silent_web_seed_times_out(tmp_path: Path, data: bytes) -> None:
    gate = asyncio.Event()

    async def handle(request: web.Request) -> web.Response:
        await gate.wait()
        return web.Response(status=404)

    async def test(session: Session, url: str) -> None:
        t = await session.add(make_torrent(data, url), tmp_path / "out")
        src = t.web_seeds.sources[0]
        started = asyncio.get_running_loop().time()
        await until(lambda: src.health.failures > 0, 10)
        waited = asyncio.get_running_loop().time() - started
        gate.set()
        assert src.health.last_problem is not None and "timed out" in src.health.last_problem
        assert FAST.timeout <= waited < FAST.timeout + 2

    with_server(handle, test)


def test_no_web_seeds_when_turned_off(tmp_path: Path, data: bytes) -> None:
    async def test(session: Session, url: str) -> None:
        t = await session.add(make_torrent(data, url), tmp_path / "out")
        assert t.web_seeds.sources == [] and t.stats().web_seeds == 0

    with_server(ranged(data), test, web_seeds=False)


def test_a_magnet_with_only_web_seeds_says_they_cannot_give_metadata(tmp_path: Path) -> None:
    uri = "magnet:?xt=urn:btih:" + "ab" * 20 + "&ws=http%3A%2F%2F127.0.0.1%3A9%2F"

    async def main() -> None:
        async with Session(host="127.0.0.1", port=0, give_up_after=0.2) as s:
            await s.add_magnet(uri, tmp_path)

    with pytest.raises(TrackerError, match=r"web seed \(ws=\) cannot give it"):
        asyncio.run(main())


def test_without_web_seeds_keeps_the_rest_of_a_magnet() -> None:
    uri = "magnet:?xt=urn:btih:" + "ab" * 20 + "&dn=x&tr=http%3A%2F%2Ft%2Fa&ws=http%3A%2F%2Fw%2F"
    m = parse_magnet(without_web_seeds(uri))
    assert m.web_seeds == [] and m.trackers == ["http://t/a"] and m.display_name == "x"


def test_the_web_seeds_rate_is_measured_when_read() -> None:
    now = [0.0]

    class Owner:
        torrent = make_torrent(b"x" * K, "http://w/")
        picker = picker(1)

        def on_piece(self, conn: object, index: int, begin: int, block: bytes) -> None: ...

    seeds = WebSeeds(Owner(), ["http://w/", "ftp://no/"], clock=lambda: now[0])
    assert [s.url for s in seeds.sources] == ["http://w/"] and seeds.rate == 0.0
    seeds.sources[0].downloaded = 3000
    now[0] = 0.5
    assert seeds.rate == 0.0  # not a second yet
    now[0] = 1.5
    assert seeds.rate == 2000.0 and seeds.downloaded == 3000


def test_the_sessions_download_cap_holds_for_a_web_seed(tmp_path: Path, data: bytes) -> None:
    async def main() -> float:
        runner, url = await serve(ranged(data))
        try:
            async with Session(host="127.0.0.1", port=0, max_download_rate=250_000) as s:
                loop = asyncio.get_running_loop()
                started = loop.time()
                t = await s.add(make_torrent(data, url), tmp_path / "out")
                async with asyncio.timeout(20):
                    await t.complete.wait()
                return loop.time() - started
        finally:
            await runner.cleanup()

    seconds = asyncio.run(main())
    assert seconds >= len(data) / 250_000 * 0.8  # 300 kB at 250 kB/s: 1.2 s (0.96 s at least)


def test_redirects_are_followed_and_bounded(tmp_path: Path, data: bytes) -> None:
    serve_file = ranged(data)

    async def handle(request: web.Request) -> web.StreamResponse:
        name = request.match_info["name"]
        if name == "w.bin":
            raise web.HTTPFound("/moved.bin")
        if name == "loop.bin":
            raise web.HTTPFound("/loop.bin")
        return await serve_file(request)  # type: ignore[no-any-return, misc]

    async def test(session: Session, url: str) -> None:
        t = await session.add(make_torrent(data, url), tmp_path / "out")
        async with asyncio.timeout(20):
            await t.complete.wait()
        assert (tmp_path / "out" / "w.bin").read_bytes() == data
        looping = await session.add(make_torrent(data[:-1], url + "loop.bin"), tmp_path / "l")
        src = looping.web_seeds.sources[0]
        await until(lambda: src.health.failures > 0, 10)
        assert src.health.last_problem is not None and "redirect" in src.health.last_problem.lower()

    with_server(handle, test)


def test_runs_share_one_kept_alive_connection(tmp_path: Path, data: bytes) -> None:
    ports: set[int] = set()
    serve_file = ranged(data)

    async def handle(request: web.Request) -> web.StreamResponse:
        ports.add(request.transport.get_extra_info("peername")[1])  # type: ignore[union-attr]
        return await serve_file(request)  # type: ignore[no-any-return, misc]

    async def test(session: Session, url: str) -> None:
        t = await session.add(make_torrent(data, url), tmp_path / "out")
        async with asyncio.timeout(20):
            await t.complete.wait()
        assert (tmp_path / "out" / "w.bin").read_bytes() == data
        assert len(ports) == 1  # 19 runs of a piece, one connection

    with_server(handle, test, dataclasses.replace(FAST, connections=1, run_bytes=K))
