"""Web seeds (BEP 19) end to end: ``swarm fetch`` as a real process from ``swarm serve-central``
(a real process) as a web seed, alone and beside a swarm; web seeds that serve corrupt data,
errors or nothing (small aiohttp servers in the test) are left and the download finishes from
a peer.

Kept short (issue 18: the file took 23 s of the suite): one ``serve-central`` of a module
folder serves every test that needs a good web seed (each test its own file in it), torrents
are made in the test's process (``swarm create --webseed`` runs in the multi-file test), the
peers are given with ``--peer`` rather than through a tracker, and the files are as small as
the assertions allow."""

from __future__ import annotations

import asyncio
import json
import random
import tempfile
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from aiohttp import web
from procutil import Proc, digest, seed_port, start_seed, swarm_run

from swarm import metainfo
from swarm.create import create_torrent

pytestmark = pytest.mark.e2e

LOCAL = ("--host", "127.0.0.1", "--port", "0", "--no-dht")


def central(procs: Callable[..., Proc], path: Path, *extra: str) -> str:
    """A ``swarm serve-central`` of *path*; the web seed URL it prints."""
    p = procs("serve-central", path, "--host", "127.0.0.1", "--port", "0", *extra)
    return p.wait_line(lambda s: s.startswith("web seed URL: ")).split()[-1]


@pytest.fixture(scope="module")
def shared() -> Iterator[tuple[Path, str]]:
    """One unthrottled ``swarm serve-central`` of a folder for the module (it serves the files
    put there later): the folder and its web seed URL."""
    with tempfile.TemporaryDirectory(prefix="webseed-e2e-") as folder:
        p = Proc(["serve-central", folder, "--host", "127.0.0.1", "--port", "0"])
        try:
            yield Path(folder), p.wait_line(lambda s: s.startswith("web seed URL: ")).split()[-1]
        finally:
            p.stop()


def make(
    tmp_path: Path, size: int, webseed: str, tracker: str | None = None, folder: Path | None = None
) -> tuple[Path, Path]:
    """A file of *size* pseudo-random bytes (in *folder*, default the test's ``src``, under a
    name of the test's own) and its torrent (16 KiB pieces) naming *webseed*."""
    folder = folder or tmp_path / "src"
    folder.mkdir(parents=True, exist_ok=True)
    src = folder / f"{tmp_path.name}.bin"
    src.write_bytes(random.Random(size).randbytes(size))
    torrent = tmp_path / "movie.torrent"
    trackers = [[tracker]] if tracker else None
    torrent.write_bytes(
        create_torrent(src, piece_length=16 << 10, webseeds=[webseed], trackers=trackers)
    )
    return src, torrent


def done_status(p: Proc, timeout: float = 60) -> dict[str, int]:
    """The ``done`` status line of a fetch run with ``--status-fd 1``."""
    line = p.wait_line(lambda s: s.startswith('{"event":"done"'), timeout=timeout)
    return json.loads(line)  # type: ignore[no-any-return]


def fetch(procs: Callable[..., Proc], torrent: Path | str, out: Path, *extra: str) -> Proc:
    return procs("fetch", torrent, "-o", out, *LOCAL, "--status-fd", "1", *extra)


def test_a_web_seed_alone_and_no_webseed_turns_it_off(
    tmp_path: Path, procs: Callable[..., Proc], shared: tuple[Path, str]
) -> None:
    src, torrent = make(tmp_path, 3_000_000 + 123, shared[1], folder=shared[0])
    # Beside it (its give-up takes two of the engine's 1 s ticks), the same torrent with the
    # web seed turned off: no source at all.
    off_args = ("--no-seed", "--no-webseed", "--give-up-after", "1")
    off = fetch(procs, torrent, tmp_path / "off", *off_args)
    p = fetch(procs, torrent, tmp_path / "out", "--no-seed")
    st = done_status(p)
    assert p.wait_exit(timeout=30) == 0
    assert digest(tmp_path / "out" / src.name) == digest(src)
    assert st["web_seed_downloaded"] == st["downloaded"] == src.stat().st_size
    assert any("from web seeds" in line for line in p.out if line.startswith("done:"))
    assert off.wait_exit(timeout=30) == 1
    assert "no usable tracker and no peer" in off.err[-1]


def test_a_multi_file_torrent_from_a_web_seed(
    tmp_path: Path, procs: Callable[..., Proc], shared: tuple[Path, str]
) -> None:
    album, url = shared[0] / "my album", shared[1]
    names = ["a b.bin", "sub/ü&c.bin", "sub/deeper/d%.bin", "z.bin"]
    for i, name in enumerate(names):
        (album / name).parent.mkdir(parents=True, exist_ok=True)
        (album / name).write_bytes(random.Random(i).randbytes(40_000 * (i + 1) + i))
    torrent = tmp_path / "album.torrent"
    r = swarm_run("-q", "create", album, "-o", torrent, "--piece-length", "16K", "--webseed", url)
    assert r.returncode == 0, r.stderr
    p = fetch(procs, torrent, tmp_path / "out", "--no-seed")
    assert p.wait_exit(timeout=30) == 0, p.err
    for name in names:
        assert digest(tmp_path / "out" / "my album" / name) == digest(album / name)


def test_web_seed_and_swarm_both_serve(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str
) -> None:
    (tmp_path / "src").mkdir()
    url = central(procs, tmp_path / "src", "--max-upload-rate", "1M")
    src, torrent = make(tmp_path, 512 * 1024, url, tracker)
    start_seed(procs, src, torrent, rate="1M")
    leechers = [fetch(procs, torrent, tmp_path / f"l{i}", "--no-seed") for i in range(4)]
    done = [done_status(p, timeout=60) for p in leechers]
    for i, p in enumerate(leechers):
        assert p.wait_exit(timeout=30) == 0
        assert digest(tmp_path / f"l{i}" / src.name) == digest(src)
    from_web = sum(d["web_seed_downloaded"] for d in done)
    from_peers = sum(d["downloaded"] - d["web_seed_downloaded"] for d in done)
    assert from_web > 0 and from_peers > 0, done


# -- bad web seeds, beside a good seed --------------------------------------------------------


class Server:
    """A small aiohttp server on 127.0.0.1 in a thread of its own; *mode* says how it answers."""

    def __init__(self, data: bytes, mode: str) -> None:
        self.data, self.mode, self.hits = data, mode, 0
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.runner = asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> web.AppRunner:
        app = web.Application()
        app.router.add_get("/{name}", self._handle)
        runner = web.AppRunner(app, shutdown_timeout=0.1)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", 0).start()
        self.url = f"http://127.0.0.1:{runner.addresses[0][1]}/"
        self.gate = asyncio.Event()  # a hung answer waits for it
        return runner

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.hits += 1
        if self.mode == "hang":
            await self.gate.wait()
        if self.mode in ("404", "500"):
            return web.Response(status=int(self.mode))
        first, stop = request.http_range.start, request.http_range.stop
        body = self.data[first:stop]
        if self.mode == "corrupt":
            body = bytes(b ^ 0x55 for b in body)
        headers = {"Content-Range": f"bytes {first}-{stop - 1}/{len(self.data)}"}
        return web.Response(status=206, body=body, headers=headers)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.gate.set)
        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


BAD_SIZE = 1024 * 1024 + 5


@pytest.fixture(scope="module")
def bad_web_seed() -> Iterator[tuple[Server, Path, Path, int]]:
    """One bad web seed for the module (each test sets its mode), a file of 1 MiB (and 5
    bytes) and its torrent naming only that web seed, and a ``swarm seed`` of it capped at
    1 MiB/s: the server, the file, the torrent, the seed's port."""
    data = random.Random(BAD_SIZE).randbytes(BAD_SIZE)
    bad = Server(data, "404")
    started: list[Proc] = []

    def spawn(*args: object) -> Proc:
        started.append(Proc([str(a) for a in args]))
        return started[-1]

    with tempfile.TemporaryDirectory(prefix="webseed-e2e-bad-") as folder:
        try:
            src, torrent = make(Path(folder), BAD_SIZE, bad.url)
            seed = start_seed(spawn, src, torrent, rate="1M")
            yield bad, src, torrent, seed_port(seed)
        finally:
            for p in started:
                p.stop()
            bad.close()


@pytest.mark.parametrize("mode", ["corrupt", "404", "500", "hang"])
def test_a_bad_web_seed_is_left_and_peers_finish(
    tmp_path: Path,
    procs: Callable[..., Proc],
    bad_web_seed: tuple[Server, Path, Path, int],
    mode: str,
) -> None:
    # A corrupt web seed is dropped within a few tenths of a second (its first piece fails,
    # and the run it was asked for next, already on its way, has the second): the seed alone
    # takes a second, time for both. The others are asked at once.
    bad, src, torrent, port = bad_web_seed
    bad.mode, bad.hits = mode, 0
    p = fetch(procs, torrent, tmp_path / "out", "--no-seed", "-v", "--peer", f"127.0.0.1:{port}")
    st = done_status(p, timeout=40)
    assert p.wait_exit(timeout=30) == 0
    assert digest(tmp_path / "out" / src.name) == digest(src)
    assert bad.hits >= 1
    log = "\n".join(p.err)
    if mode == "corrupt":
        assert "dropping web seed" in log and "corrupt" in log
        assert "banning" not in log  # the seed, which sent good pieces, is not blamed
    elif mode != "hang":
        assert f"HTTP {mode}; trying again in" in log
    assert st["downloaded"] - st["web_seed_downloaded"] > 0


def test_a_magnets_web_seed_is_used_once_the_metadata_came(
    tmp_path: Path, procs: Callable[..., Proc], shared: tuple[Path, str]
) -> None:
    src, torrent = make(tmp_path, 1024 * 1024, shared[1], folder=shared[0])
    seed = start_seed(procs, src, torrent, rate="256K")  # the metadata, and a slow peer
    port = seed_port(seed)
    magnet = next(s.split()[-1] for s in seed.out if s.startswith("magnet:"))
    assert "ws=" in magnet
    p = fetch(procs, magnet, tmp_path / "out", "--no-seed", "--peer", f"127.0.0.1:{port}")
    st = done_status(p)
    assert p.wait_exit(timeout=30) == 0
    assert digest(tmp_path / "out" / src.name) == digest(src)
    assert st["web_seed_downloaded"] > 0


def test_no_webseed_with_a_magnet_uses_no_web_seed_at_all(
    tmp_path: Path, procs: Callable[..., Proc], shared: tuple[Path, str]
) -> None:
    src, torrent = make(tmp_path, 300_000, shared[1], folder=shared[0])
    seed = start_seed(procs, src, torrent, rate="1M")
    port = seed_port(seed)
    magnet = next(s.split()[-1] for s in seed.out if s.startswith("magnet:"))
    # Neither the magnet's ws= nor the url-list in the metadata from the peer is used.
    args = ("--no-seed", "--no-webseed", "--peer", f"127.0.0.1:{port}")
    p = fetch(procs, magnet, tmp_path / "out", *args)
    st = done_status(p)
    assert p.wait_exit(timeout=30) == 0
    assert digest(tmp_path / "out" / src.name) == digest(src)
    assert "web_seed_downloaded" not in st  # said only when the torrent has web seeds


def test_seed_webseed_makes_a_torrent_with_a_url_list(
    tmp_path: Path, procs: Callable[..., Proc]
) -> None:
    src = tmp_path / "song.bin"
    src.write_bytes(random.Random(3).randbytes(50_000))
    with ThreadPoolExecutor(2) as pool:  # the two usage errors run beside the seed
        bad = pool.submit(swarm_run, "seed", src, *LOCAL, "--webseed", "ftp://c/", "--force")
        args = ("--webseed", "http://127.0.0.1:1/", "--webseed", "http://b/")
        seed = procs("seed", src, *LOCAL, *args)
        seed.wait_line(lambda s: s.startswith("seeding on port"))
        made = metainfo.load(tmp_path / "song.bin.torrent")
        assert made.url_list == ("http://127.0.0.1:1/", "http://b/")
        # Used as it is when --webseed agrees or is left out; another is a usage error.
        other = pool.submit(swarm_run, "seed", src, *LOCAL, "--webseed", "http://c/")
        assert other.result(30).returncode == 2
        assert "other web seeds than --webseed" in other.result().stderr
        assert bad.result(30).returncode == 2 and "bad web seed URL" in bad.result().stderr
