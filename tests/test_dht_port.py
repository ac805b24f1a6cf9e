"""BEP 5's PORT message between two sessions with the DHT on, over loopback sockets: each
tells the other its DHT node's UDP port after the handshake, and each pings the node named,
which then joins its routing table (neither was given any bootstrap node)."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

from swarm import metainfo
from swarm.create import create_torrent
from swarm.session import Session


async def _until(predicate, timeout: float, what: str) -> None:  # type: ignore[no-untyped-def]
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        assert loop.time() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def _table(session: Session) -> int:
    assert session.dht is not None
    return int(session.dht.node.stats()["nodes"])


def test_port_messages_put_each_sessions_dht_node_in_the_others_table(tmp_path: Path) -> None:
    src = tmp_path / "seed" / "data.bin"
    src.parent.mkdir()
    src.write_bytes(random.Random(5).randbytes(300_000))
    torrent = metainfo.parse(create_torrent(src, piece_length=32768))

    async def main() -> None:
        async with (
            Session(host="127.0.0.1", dht=True) as seeder,
            Session(host="127.0.0.1", dht=True) as leecher,
        ):
            assert seeder.dht_port and leecher.dht_port
            assert _table(seeder) == 0 and _table(leecher) == 0
            await seeder.add(torrent, src.parent, seed=True)
            t = await leecher.add(torrent, tmp_path / "out")
            t.add_peers([("127.0.0.1", seeder.port)])
            await asyncio.wait_for(t.complete.wait(), 20)
            await _until(lambda: _table(seeder) >= 1 and _table(leecher) >= 1, 10, "the pings")

    asyncio.run(main())


def test_no_port_message_for_a_private_torrent(tmp_path: Path) -> None:
    src = tmp_path / "seed" / "data.bin"
    src.parent.mkdir()
    src.write_bytes(random.Random(6).randbytes(100_000))
    torrent = metainfo.parse(create_torrent(src, piece_length=32768, private=True))

    async def main() -> None:
        async with (
            Session(host="127.0.0.1", dht=True) as seeder,
            Session(host="127.0.0.1", dht=True) as leecher,
        ):
            await seeder.add(torrent, src.parent, seed=True)
            t = await leecher.add(torrent, tmp_path / "out")
            t.add_peers([("127.0.0.1", seeder.port)])
            await asyncio.wait_for(t.complete.wait(), 20)
            # Give a PORT message (had one been sent) time to be answered: poll a while.
            loop = asyncio.get_running_loop()
            until = loop.time() + 1.0
            while loop.time() < until:
                assert _table(seeder) == 0 and _table(leecher) == 0
                await asyncio.sleep(0.05)

    asyncio.run(main())
