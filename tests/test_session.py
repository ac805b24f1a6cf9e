"""The peer engine end to end inside one process: real sockets on 127.0.0.1, no tracker."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import random
from pathlib import Path

import pytest

from swarm import metainfo
from swarm.create import create_torrent
from swarm.errors import StorageError
from swarm.session import Session
from swarm.torrent import TorrentController


def make_data(folder: Path, size: int, seed: int = 1, name: str = "data.bin") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(random.Random(seed).randbytes(size))
    return path


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


async def wait_all(events: list[asyncio.Event], timeout: float) -> None:
    async with asyncio.timeout(timeout):
        await asyncio.gather(*(e.wait() for e in events))


async def leech_together(
    torrent: metainfo.Torrent, seed_port: int, outs: list[Path], timeout: float = 60
) -> None:
    """One leecher Session per folder in *outs*, each told of the seed and of all the others;
    returns once every one is complete, and closes them."""
    sessions = [Session(host="127.0.0.1") for _ in outs]
    for s in sessions:
        await s.start()
    try:
        ts = [await s.add(torrent, out) for s, out in zip(sessions, outs, strict=True)]
        for i, t in enumerate(ts):
            t.add_peers([("127.0.0.1", seed_port)])
            t.add_peers([("127.0.0.1", s.port) for j, s in enumerate(sessions) if j != i])
        await wait_all([t.complete for t in ts], timeout)
    finally:
        for s in sessions:
            await s.close()


def test_one_seed_one_leecher(tmp_path: Path) -> None:
    src = make_data(tmp_path / "seed", 3 * 1024 * 1024 + 12345)
    torrent = metainfo.parse(create_torrent(src, piece_length=64 * 1024))

    async def main() -> None:
        async with Session(host="127.0.0.1") as seeder, Session(host="127.0.0.1") as leecher:
            await seeder.add(torrent, src.parent, seed=True)
            t = await leecher.add(torrent, tmp_path / "out")
            t.add_peers([("127.0.0.1", seeder.port)])
            await wait_all([t.complete], 30)
            assert t.failed is None

    asyncio.run(main())
    out = tmp_path / "out" / src.name
    assert sha256(out) == sha256(src)
    assert not (tmp_path / "out" / (src.name + ".part")).exists()


def test_leechers_share_multi_file(tmp_path: Path) -> None:
    root = tmp_path / "seed" / "album"
    for i, size in enumerate([700_000, 0, 1_300_001, 50]):
        sub = root / ("disc2" if i % 2 else "disc1")
        make_data(sub, size, seed=i, name=f"track{i}.bin")
    torrent = metainfo.parse(create_torrent(root, piece_length=32 * 1024))

    async def main() -> None:
        async with Session(host="127.0.0.1") as seeder:
            await seeder.add(torrent, root.parent, seed=True)
            await leech_together(torrent, seeder.port, [tmp_path / f"out{i}" for i in range(3)])

    asyncio.run(main())
    for i in range(3):
        for f in torrent.files:
            got = tmp_path / f"out{i}" / Path(*f.path)
            want = tmp_path / "seed" / Path(*f.path)
            assert got.read_bytes() == want.read_bytes()


async def poll(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    """Wait for *predicate* with a deadline, checking often (no blind sleeps)."""
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.02)


def test_corrupt_peer_is_banned_and_the_download_completes(tmp_path: Path) -> None:
    src = make_data(tmp_path / "good", 1024 * 1024)
    torrent = metainfo.parse(create_torrent(src, piece_length=32 * 1024))
    bad = tmp_path / "bad" / src.name
    bad.parent.mkdir()
    corrupted = bytearray(src.read_bytes())
    for i in range(0, len(corrupted), 32 * 1024):
        corrupted[i + 7] ^= 0xFF  # every piece is wrong
    bad.write_bytes(bytes(corrupted))

    async def main() -> None:
        async with (
            Session(host="127.0.0.1") as liar,
            Session(host="127.0.0.1") as honest,
            Session(host="127.0.0.1") as leecher,
        ):
            await liar.add(torrent, bad.parent, seed=True, verify=False)
            await honest.add(torrent, src.parent, seed=True)
            t = await leecher.add(torrent, tmp_path / "out")
            t.add_peers([("127.0.0.1", liar.port)])
            await poll(lambda: t.banned_ids, 20, "the liar to be banned")
            assert t.hash_failures >= 1
            # Every byte of a piece that failed its hash check was wasted.
            assert t.stats().wasted >= t.hash_failures * 32 * 1024
            assert liar.peer_id in t.banned_ids
            t.add_peers([("127.0.0.1", honest.port)])
            await wait_all([t.complete], 30)
            assert all(p.peer_id != liar.peer_id for p in t.peers)
            st = t.stats()
            assert st.downloaded - st.wasted == torrent.length  # the file's bytes, apart

    asyncio.run(main())
    assert sha256(tmp_path / "out" / src.name) == sha256(src)


def test_a_write_that_fails_in_a_small_piece_s_check_fails_the_download(tmp_path: Path) -> None:
    """A piece of 64 KiB or less is hashed and written at once, inside the reading of the
    peer's message, with no task of its own: a storage error there still fails the download
    with its own message (as a task's would), and does not just close that peer."""
    src = make_data(tmp_path / "seed", 256 * 1024)
    torrent = metainfo.parse(create_torrent(src, piece_length=16 * 1024))

    async def main() -> None:
        async with Session(host="127.0.0.1") as seeder, Session(host="127.0.0.1") as leecher:
            await seeder.add(torrent, src.parent, seed=True)
            t = await leecher.add(torrent, tmp_path / "out")
            assert t.io.inline(0)

            def full(index: int, data: bytes | bytearray | memoryview) -> None:
                raise StorageError("no space left on the test's disk")

            t.io.storage.write_piece = full  # type: ignore[method-assign,assignment]
            t.add_peers([("127.0.0.1", seeder.port)])
            async with asyncio.timeout(20):
                await t.stopped.wait()
            assert isinstance(t.failed, StorageError)
            assert "no space left" in str(t.failed)
            assert t.picker.num_have == 0

    asyncio.run(main())


def test_restart_fetches_only_what_is_missing(tmp_path: Path) -> None:
    src = make_data(tmp_path / "seed", 4 * 1024 * 1024)
    torrent = metainfo.parse(create_torrent(src, piece_length=64 * 1024))
    out = tmp_path / "out"

    async def main() -> tuple[int, int]:
        async with Session(host="127.0.0.1", max_upload_rate=2 * 1024 * 1024) as seeder:
            await seeder.add(torrent, src.parent, seed=True)
            async with Session(host="127.0.0.1") as leecher:
                t = await leecher.add(torrent, out)
                t.add_peers([("127.0.0.1", seeder.port)])
                await poll(lambda: t.picker.num_have >= torrent.num_pieces // 2, 30, "half")
            had = t.picker.num_have
            assert not (out / src.name).exists()  # only the .part file until complete
            async with Session(host="127.0.0.1") as leecher2:
                t2 = await leecher2.add(torrent, out)
                assert t2.picker.num_have >= had
                t2.add_peers([("127.0.0.1", seeder.port)])
                await wait_all([t2.complete], 30)
                return had, t2.downloaded

    had, downloaded = asyncio.run(main())
    missing = torrent.length - had * torrent.piece_length
    assert downloaded <= missing + 8 * torrent.piece_length
    assert sha256(out / src.name) == sha256(src)


def test_leechers_finish_from_each_other_after_the_seed_leaves(tmp_path: Path) -> None:
    src = make_data(tmp_path / "seed", 2 * 1024 * 1024)
    torrent = metainfo.parse(create_torrent(src, piece_length=32 * 1024))

    async def main() -> None:
        seeder = Session(host="127.0.0.1", max_upload_rate=1024 * 1024)
        await seeder.start()
        await seeder.add(torrent, src.parent, seed=True)
        sessions = [Session(host="127.0.0.1", max_upload_rate=256 * 1024) for _ in range(3)]
        for s in sessions:
            await s.start()
        try:
            ts = [await s.add(torrent, tmp_path / f"out{i}") for i, s in enumerate(sessions)]
            for i, t in enumerate(ts):
                t.add_peers([("127.0.0.1", seeder.port)])
                t.add_peers([("127.0.0.1", s.port) for j, s in enumerate(sessions) if j != i])

            def covered() -> bool:
                return all(any(t.picker.have[i] for t in ts) for i in range(torrent.num_pieces))

            await poll(covered, 30, "the leechers to hold every piece between them")
            assert not all(t.complete.is_set() for t in ts)
            await seeder.close()
            await wait_all([t.complete for t in ts], 60)
        finally:
            for s in sessions:
                await s.close()
            await seeder.close()

    asyncio.run(main())
    for i in range(3):
        assert sha256(tmp_path / f"out{i}" / src.name) == sha256(src)


def test_a_rate_capped_seed_sends_each_piece_about_once(tmp_path: Path) -> None:
    """Initial seeding: while pieces remain that the seed has never sent, a second copy of a
    piece is refused (a BEP 6 reject) so the leecher fetches it from the peer that has it.
    A long-running seed does it again for each new swarm (once its peers have all left)."""
    size = 1024 * 1024
    src = make_data(tmp_path / "seed", size)
    torrent = metainfo.parse(create_torrent(src, piece_length=16 * 1024))

    async def swarm(seeder: Session, st: TorrentController, name: str, n: int) -> int:
        before = st.uploaded
        await leech_together(torrent, seeder.port, [tmp_path / f"{name}{i}" for i in range(n)])
        for i in range(n):
            assert sha256(tmp_path / f"{name}{i}" / src.name) == sha256(src)
        await poll(lambda: not st.peers, 10, "the swarm to leave")
        return st.uploaded - before

    async def main() -> list[int]:
        async with Session(host="127.0.0.1", max_upload_rate=1024 * 1024) as seeder:
            st = await seeder.add(torrent, src.parent, seed=True)
            return [await swarm(seeder, st, "a", 4), await swarm(seeder, st, "b", 4)]

    first, second = asyncio.run(main())
    # Without initial seeding the seed sends 1.4-2x the file here (each leecher asks it for
    # pieces the others are already getting). With it, 1.0-1.22x in 12 runs of each swarm
    # when a peer turned away once got the piece when it asked again (1.203x once in CI),
    # 1.0x in 8 runs since it is turned away for a while: 1.3 keeps the two apart.
    assert first <= 1.3 * size, first / size
    assert second <= 1.3 * size, second / size


def test_stopping_mid_download_logs_no_error_and_resumes(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Blocks that complete a piece while a download stops must not start work after the
    pool has shut down (that used to print 'task failed' with a traceback)."""
    src = make_data(tmp_path / "seed", 2 * 1024 * 1024)
    torrent = metainfo.parse(create_torrent(src, piece_length=16 * 1024))
    caplog.set_level(logging.ERROR)

    async def main() -> None:
        async with Session(host="127.0.0.1") as seeder:
            await seeder.add(torrent, src.parent, seed=True)
            for round_ in range(10):
                leecher = Session(host="127.0.0.1")
                await leecher.start()
                t = await leecher.add(torrent, tmp_path / "out")
                t.add_peers([("127.0.0.1", seeder.port)])
                if t.complete.is_set():
                    await leecher.close()
                    break
                want = min(t.num_pieces, t.picker.num_have + 8 + round_ * 3)
                await poll(lambda: t.picker.num_have >= want, 30, "some pieces")  # noqa: B023
                await leecher.close()  # mid-download, blocks still arriving
                assert t.failed is None
            leecher = Session(host="127.0.0.1")
            async with leecher:
                t = await leecher.add(torrent, tmp_path / "out")
                t.add_peers([("127.0.0.1", seeder.port)])
                await wait_all([t.complete], 30)

    asyncio.run(main())
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert sha256(tmp_path / "out" / src.name) == sha256(src)


def test_the_engine_runs_on_uvloop(tmp_path: Path) -> None:
    """A library user may run the engine on uvloop, whose transports are not subclasses of
    asyncio.Transport (an isinstance assert there once stalled every download)."""
    uvloop = pytest.importorskip("uvloop")
    src = make_data(tmp_path / "seed", 512 * 1024)
    torrent = metainfo.parse(create_torrent(src, piece_length=32 * 1024))

    async def main() -> None:
        async with Session(host="127.0.0.1") as seeder, Session(host="127.0.0.1") as leecher:
            await seeder.add(torrent, src.parent, seed=True)
            t = await leecher.add(torrent, tmp_path / "out")
            t.add_peers([("127.0.0.1", seeder.port)])
            await wait_all([t.complete], 30)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
    assert sha256(tmp_path / "out" / src.name) == sha256(src)


def test_unchoke_slots_follow_the_upload_cap_unless_given(tmp_path: Path) -> None:
    src = make_data(tmp_path / "src", 64 * 1024)
    torrent = metainfo.parse(create_torrent(src, piece_length=16 * 1024))

    async def slots(**options: object) -> int:
        cap = options.pop("cap", None)
        async with Session(host="127.0.0.1", max_upload_rate=cap) as s:  # type: ignore[arg-type]
            t = await s.add(torrent, src.parent, seed=True, **options)
            return t.choker.slots

    async def main() -> list[int]:
        return [await slots(), await slots(cap=1 << 20), await slots(unchoke_slots=3)]

    assert asyncio.run(main()) == [8, 4, 3]


def test_a_group_downloader_leaves_room_for_the_peers_that_dial_it(tmp_path: Path) -> None:
    """``swarm fetch-group``'s downloaders dial few peers and take many more that dial them:
    in a swarm that starts at once the first to announce are dialled by everyone after them,
    and with room for only twice what they dialled they refused the last ones, left with a
    peer or none (compare at N = 100: last copy 7.7-8.6 s against 6.5-6.6 s)."""
    from swarm.cli.fetch_group import GROUP_DIALS, GROUP_PEERS

    src = make_data(tmp_path / "seed", 64 * 1024)
    torrent = metainfo.parse(create_torrent(src, piece_length=16 * 1024))

    async def main() -> None:
        async with Session(host="127.0.0.1") as s:
            t = await s.add(
                torrent, tmp_path / "out", max_peers=GROUP_PEERS, max_outgoing=GROUP_DIALS
            )
            t.add_peers([("127.0.0.1", 1 + i) for i in range(2 * GROUP_PEERS)])
            assert t.directory.max_outgoing == GROUP_DIALS
            dialling = [c for c in t.directory.candidates.values() if c.connecting]
            assert len(dialling) == GROUP_DIALS  # dials no more than that ...
            assert GROUP_PEERS > 3 * GROUP_DIALS  # ... and takes 18 more that dial it

    asyncio.run(main())


def test_torrents_started_together_tick_apart(tmp_path: Path) -> None:
    """Each torrent's 1 s tick has a phase of its own (the first 1-2 s in): started together,
    they all ticked at once, and at N = 100 that first tick stalled the whole swarm."""
    src = make_data(tmp_path / "seed", 100_000)
    torrent = metainfo.parse(create_torrent(src, piece_length=32 * 1024))

    async def main() -> list[float]:
        sessions = [Session(host="127.0.0.1", rng=random.Random(i)) for i in range(4)]
        first: dict[int, float] = {}
        loop = asyncio.get_running_loop()
        try:
            for s in sessions:
                await s.start()
            start = loop.time()
            for i, s in enumerate(sessions):
                t = await s.add(torrent, tmp_path / f"out{i}")

                def ticked(now: float, i: int = i) -> None:
                    first.setdefault(i, loop.time() - start)

                t._check_sources = ticked  # type: ignore[method-assign]
            async with asyncio.timeout(10):
                while len(first) < len(sessions):
                    await asyncio.sleep(0.05)
        finally:
            for s in sessions:
                await s.close()
        return sorted(first.values())

    ticks = asyncio.run(main())
    assert 0.9 <= ticks[0] and ticks[-1] <= 2.5, ticks
    assert ticks[-1] - ticks[0] >= 0.3, ticks  # not all at one moment


def test_a_capped_seed_unchokes_every_peer_until_each_piece_went_out_once(
    tmp_path: Path,
) -> None:
    """Under an upload cap a seed in initial seeding has no slot limit (see swarm.choker);
    once a block of every piece has gone out, or without a cap, it has its slots."""
    src = make_data(tmp_path / "seed", 100_000)
    torrent = metainfo.parse(create_torrent(src, piece_length=32 * 1024))

    async def main() -> tuple[int, int, int, int]:
        capped = Session(host="127.0.0.1", max_upload_rate=1 << 20)
        free = Session(host="127.0.0.1")
        try:
            for s in (capped, free):
                await s.start()
            seed = await capped.add(torrent, src.parent, seed=True)
            leech = await capped.add(
                metainfo.parse(create_torrent(make_data(tmp_path / "x", 5000))), tmp_path / "o"
            )
            other = await free.add(torrent, src.parent, seed=True)
            spreading = seed.choker.current_slots
            seed.requests.blocks_sent([(i, 0, 1) for i in range(torrent.num_pieces)])
            return (
                spreading,
                seed.choker.current_slots,
                leech.choker.current_slots,
                (other.choker.current_slots),
            )
        finally:
            for s in (capped, free):
                await s.close()

    spreading, done, leeching, uncapped = asyncio.run(main())
    assert spreading > 1000
    assert (done, leeching, uncapped) == (4, 4, 8)
