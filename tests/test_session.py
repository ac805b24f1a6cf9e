"""The peer engine end to end inside one process: real sockets on 127.0.0.1, no tracker."""

from __future__ import annotations

import asyncio
import hashlib
import os
import random
from pathlib import Path

import pytest

from swarm import metainfo
from swarm.create import create_torrent
from swarm.session import Session


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
            sessions = [Session(host="127.0.0.1") for _ in range(3)]
            for s in sessions:
                await s.start()
            try:
                ts = [await s.add(torrent, tmp_path / f"out{i}") for i, s in enumerate(sessions)]
                for i, t in enumerate(ts):
                    t.add_peers([("127.0.0.1", seeder.port)])
                    t.add_peers([("127.0.0.1", s.port) for j, s in enumerate(sessions) if j != i])
                await wait_all([t.complete for t in ts], 60)
            finally:
                for s in sessions:
                    await s.close()

    asyncio.run(main())
    for i in range(3):
        for f in torrent.files:
            got = tmp_path / f"out{i}" / Path(*f.path)
            want = tmp_path / "seed" / Path(*f.path)
            assert got.read_bytes() == want.read_bytes()
