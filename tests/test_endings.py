"""How a download meets what is already on disk, and how it ends when it has no source (issue
13): a damaged finished file is repaired, a user's own file is checked before it is
overwritten (or kept, with overwrite=False), a fetch with nowhere to get data from fails on its
own, a taken port gives way to the next. Library level: real sockets on 127.0.0.1."""

from __future__ import annotations

import asyncio
import hashlib
import random
import socket
from pathlib import Path

import pytest

from swarm import bencoding, metainfo
from swarm.create import create_torrent
from swarm.errors import ExistingDataError, SessionError, TrackerError
from swarm.session import Session

PIECE = 32 * 1024
SIZE = 40 * PIECE + 1234  # 41 pieces, the last one short


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def src(tmp_path: Path) -> Path:
    path = tmp_path / "seed" / "data.bin"
    path.parent.mkdir()
    path.write_bytes(random.Random(5).randbytes(SIZE))
    return path


def torrent_of(src: Path, tracker: str | None = None) -> metainfo.Torrent:
    """The torrent of *src*; with *tracker*, that announce URL as it stands (even a bad one
    that create would refuse: a .torrent from elsewhere may carry one)."""
    data = create_torrent(src, piece_length=PIECE)
    if tracker is not None:
        meta = bencoding.decode(data)
        meta[b"announce"] = tracker.encode()
        data = bencoding.encode(meta)
    return metainfo.parse(data)


async def fetch(
    torrent: metainfo.Torrent, src: Path, out: Path, **add: object
) -> tuple[int, object]:
    """Download *torrent* into *out* from a seed of *src*: (pieces there at the start, existing)."""
    async with Session(host="127.0.0.1") as seeder, Session(host="127.0.0.1") as leecher:
        await seeder.add(torrent, src.parent, seed=True)
        t = await leecher.add(torrent, out, **add)  # type: ignore[arg-type]
        t.add_peers([("127.0.0.1", seeder.port)])
        async with asyncio.timeout(30):
            await t.complete.wait()
        assert t.failed is None
        return t.started_with, t.existing


def test_a_damaged_finished_download_is_repaired_in_place(src: Path, tmp_path: Path) -> None:
    torrent = torrent_of(src)
    out = tmp_path / "out"
    asyncio.run(fetch(torrent, src, out))
    done = out / src.name
    with open(done, "r+b") as f:  # 4 bytes of piece 7 go bad
        f.seek(7 * PIECE + 100)
        f.write(b"\xde\xad\xbe\xef")
    started_with, existing = asyncio.run(fetch(torrent, src, out))
    assert sha256(done) == sha256(src)
    assert started_with == torrent.num_pieces - 1
    assert existing is not None
    assert (existing.differ, existing.total, existing.complete_size) == (1, 41, True)  # type: ignore[attr-defined]
    assert not (out / (src.name + ".part")).exists()


def test_a_complete_download_run_again_has_nothing_to_do(src: Path, tmp_path: Path) -> None:
    torrent = torrent_of(src)
    out = tmp_path / "out"
    asyncio.run(fetch(torrent, src, out))
    started_with, existing = asyncio.run(fetch(torrent, src, out))
    assert started_with == torrent.num_pieces
    assert existing is not None and existing.differ == 0  # type: ignore[attr-defined]


def test_a_users_own_file_is_kept_with_overwrite_off(src: Path, tmp_path: Path) -> None:
    torrent = torrent_of(src)
    out = tmp_path / "out"
    out.mkdir()
    theirs = out / src.name
    theirs.write_bytes(b"someone's own recording" * 100)  # a different, shorter file
    before = sha256(theirs)

    async def main() -> None:
        async with Session(host="127.0.0.1") as leecher:
            with pytest.raises(ExistingDataError) as err:
                await leecher.add(torrent, out, overwrite=False)
            assert err.value.exit_code == 2
            assert str(err.value) == (
                f"{theirs} exists and 41 of 41 pieces differ: not overwriting it (--no-overwrite)"
            )

    asyncio.run(main())
    assert sha256(theirs) == before  # not a byte changed
    assert sorted(p.name for p in out.iterdir()) == [src.name]  # and nothing added


def test_a_users_file_is_checked_and_its_matching_pieces_kept(src: Path, tmp_path: Path) -> None:
    torrent = torrent_of(src)
    out = tmp_path / "out"
    out.mkdir()
    theirs = bytearray(src.read_bytes())
    for index in (0, 9, 40):
        theirs[index * PIECE + 3] ^= 1  # three pieces differ, the rest match
    (out / src.name).write_bytes(bytes(theirs))
    started_with, existing = asyncio.run(fetch(torrent, src, out))
    assert started_with == torrent.num_pieces - 3
    assert existing is not None and existing.differ == 3  # type: ignore[attr-defined]
    assert sha256(out / src.name) == sha256(src)


@pytest.mark.parametrize("tracker", [None, "ftp://example.invalid/announce", "udp://:80/x"])
def test_a_fetch_with_no_source_fails_on_its_own(
    src: Path, tmp_path: Path, tracker: str | None
) -> None:
    torrent = torrent_of(src, tracker)

    async def main() -> None:
        async with Session(host="127.0.0.1") as leecher:
            t = await leecher.add(torrent, tmp_path / "out")
            t.no_source_seconds = 0.5
            async with asyncio.timeout(10):
                await t.stopped.wait()
            assert isinstance(t.failed, TrackerError)
            assert str(t.failed) == "no usable tracker and no peer to download from"

    asyncio.run(main())


def test_a_fetch_with_a_peer_to_dial_keeps_trying(src: Path, tmp_path: Path) -> None:
    torrent = torrent_of(src)

    async def main() -> None:
        async with Session(host="127.0.0.1") as leecher:
            t = await leecher.add(torrent, tmp_path / "out")
            t.no_source_seconds = 0.5
            t.add_peers([("127.0.0.1", 9)])  # refuses, but the user named it: keep trying
            with pytest.raises(TimeoutError):
                async with asyncio.timeout(2.5):
                    await t.stopped.wait()
            assert t.failed is None

    asyncio.run(main())


def test_a_taken_port_gives_way_to_the_next_free_one() -> None:
    async def main() -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            base = probe.getsockname()[1]
        async with Session(host="127.0.0.1", port=base) as first:
            assert first.port == base
            async with Session(host="127.0.0.1", port=base, port_attempts=5) as second:
                assert base < second.port <= base + 4
            with pytest.raises(SessionError, match=f"port {base} is already in use"):
                async with Session(host="127.0.0.1", port=base):
                    pass

    asyncio.run(main())
