"""The peers a download knew, kept with its resume data: a restart dials them before (or
without) any tracker, as Transmission's and libtorrent's resume data keep peers."""

from __future__ import annotations

import asyncio
import hashlib
import json
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from swarm import metainfo
from swarm.create import create_torrent
from swarm.peer_directory import SAVED_PEERS, Address, PeerDirectory, addresses_from
from swarm.session import Session
from swarm.storage import Storage

MiB = 1024 * 1024


def data(folder: Path, size: int) -> Path:
    folder.mkdir(parents=True)
    (path := folder / "data.bin").write_bytes(random.Random(size).randbytes(size))
    return path


async def until(predicate: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.02)


def test_saved_addresses_are_checked_one_by_one() -> None:
    good = [["127.0.0.1", 6881], ["::1", 51413]]
    hostile = [
        ["127.0.0.1", 0],
        ["127.0.0.1", 65536],
        ["127.0.0.1", True],
        ["127.0.0.1", "6881"],
        ["not an ip", 6881],
        ["127.0.0.1"],
        "127.0.0.1:6881",
        None,
        [1, 2],
    ]
    assert addresses_from(hostile + good) == [("127.0.0.1", 6881), ("::1", 51413)]
    junks: list[object] = [None, {}, "peers", 7, [[["127.0.0.1", 1]]]]
    for junk in junks:
        assert addresses_from(junk) == []
    many = [["127.0.0.1", p] for p in range(1, 500)]
    assert len(addresses_from(many)) == SAVED_PEERS


@dataclass(eq=False)
class Conn:
    peer_id: bytes
    address: Address
    outgoing: bool
    listen_address: Address | None = None

    def close(self, reason: str = "") -> None:
        pass

    async def closed_wait(self) -> None:
        pass


def test_worth_keeping_puts_the_connected_first_and_leaves_out_failures_and_us() -> None:
    d: PeerDirectory[Conn] = PeerDirectory(b"-SW0100-ourselves000")
    us = ("127.0.0.1", 9)
    d.add([("127.0.0.1", p) for p in (1, 2, 3)] + [us])
    d.dialled(("127.0.0.1", 2), ok=False)  # its last dial failed
    assert d.admit(Conn(b"a" * 20, ("127.0.0.1", 7), outgoing=True))
    # one that dialled us: where it listens (BEP 10 'p'), not its outgoing port
    assert d.admit(Conn(b"b" * 20, ("127.0.0.1", 40000), False, ("127.0.0.1", 3)))
    assert d.admit(Conn(b"c" * 20, ("127.0.0.1", 40001), outgoing=False))  # no 'p': unknown
    got = d.worth_keeping(us)
    assert set(got[:2]) == {("127.0.0.1", 7), ("127.0.0.1", 3)}  # the connected, any order
    assert got[2:] == [("127.0.0.1", 1)]


def test_storage_keeps_the_peers_with_the_resume_data(tmp_path: Path) -> None:
    src = data(tmp_path / "seed", 100_000)
    t = metainfo.parse(create_torrent(src, piece_length=16 * 1024))
    st = Storage(t, tmp_path / "out")
    st.open_for_download()
    st.save_resume([False] * t.num_pieces, [("127.0.0.1", 6881), ("::1", 7000)])
    assert st.load_resume_peers() == [("127.0.0.1", 6881), ("::1", 7000)]
    # A hostile or damaged resume file gives no peers, never an error.
    junk = ("{", "[]", '"x"', "[" * 100_000, json.dumps({"info_hash": t.info_hash_hex, "peers": 5}))
    for text in junk:
        st.resume_path.write_text(text)
        assert st.load_resume_peers() == []
        assert st.load_resume() is None
    other = {"info_hash": "00" * 20, "peers": [["127.0.0.1", 6881]]}
    st.resume_path.write_text(json.dumps(other))  # another torrent's
    assert st.load_resume_peers() == []
    st.resume_path.unlink()
    assert st.load_resume_peers() == []
    st.close()


def test_a_restarted_download_dials_the_peers_it_knew_without_a_tracker(tmp_path: Path) -> None:
    src = data(tmp_path / "seed", 2 * MiB)
    torrent = metainfo.parse(create_torrent(src, piece_length=16 * 1024))

    async def main() -> None:
        async with Session(host="127.0.0.1", max_upload_rate=MiB // 2) as seeder:
            await seeder.add(torrent, src.parent, seed=True)
            async with Session(host="127.0.0.1") as leecher:
                t = await leecher.add(torrent, tmp_path / "out")
                t.add_peers([("127.0.0.1", seeder.port)])
                await until(lambda: t.picker.num_have >= 4, 30)
            assert not t.complete.is_set()
            # No tracker and no add_peers: only the resume data knows the seed.
            async with Session(host="127.0.0.1") as again:
                t2 = await again.add(torrent, tmp_path / "out")
                assert t2.started_with >= 4
                await asyncio.wait_for(t2.complete.wait(), 30)
                assert t2.failed is None

    asyncio.run(main())
    got = (tmp_path / "out" / src.name).read_bytes()
    assert hashlib.sha256(got).digest() == hashlib.sha256(src.read_bytes()).digest()
