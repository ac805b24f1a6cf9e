"""The shared disk pool: bounded threads for any number of torrents; each waits for its own."""

from __future__ import annotations

import asyncio
import random
import threading
import time
from pathlib import Path

from swarm import metainfo
from swarm.create import create_torrent
from swarm.disk_pool import DISK_THREADS, DiskJobs
from swarm.piece_io import INLINE_BYTES, PieceIO


def _disk_threads() -> int:
    return sum(1 for t in threading.enumerate() if t.name.startswith("disk"))


def test_many_torrents_share_a_bounded_number_of_disk_threads(tmp_path: Path) -> None:
    piece = 2 * INLINE_BYTES  # large pieces: hashed and written on the pool
    src = tmp_path / "src" / "data.bin"
    src.parent.mkdir()
    data = random.Random(3).randbytes(2 * piece)
    src.write_bytes(data)
    torrent = metainfo.parse(create_torrent(src, piece_length=piece))

    async def main() -> list[bool]:
        ios = [PieceIO(torrent, tmp_path / f"out{i}") for i in range(12)]
        for io in ios:
            await io.open(seed=False, verify=True)
        for io in ios:
            for index in range(2):
                for begin in range(0, piece, 16384):
                    at = index * piece + begin
                    io.add_block(index, begin, data[at : at + 16384], b"p")
        results = await asyncio.gather(*(io.verify_and_write(i) for io in ios for i in range(2)))
        assert _disk_threads() <= DISK_THREADS
        for io in ios:
            await io.finalize()
            await io.close([True, True], True)
        return [ok for ok, _ in results]

    assert asyncio.run(main()) == [True] * 24
    for i in range(12):
        assert (tmp_path / f"out{i}" / "data.bin").read_bytes() == data


def test_drain_waits_for_this_owners_jobs_only() -> None:
    release = threading.Event()
    done: list[str] = []

    def slow(name: str) -> None:
        release.wait(5)
        done.append(name)

    def quick(name: str) -> None:
        time.sleep(0.05)
        done.append(name)

    async def main() -> None:
        other, mine = DiskJobs(), DiskJobs()
        blocked = other.submit(slow, "other")
        started = mine.submit(quick, "mine")
        await asyncio.wait_for(mine.drain(), 2)  # returns although other's job still waits
        assert done == ["mine"] and started.done() and not blocked.done()
        release.set()
        await other.drain()
        assert done == ["mine", "other"]

    asyncio.run(main())
