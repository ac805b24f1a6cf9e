"""The Mainline DHT end to end, on 127.0.0.1 only: ``swarm dht`` as the bootstrap node, a
``swarm seed`` of a trackerless torrent, and a ``swarm fetch`` of a bare magnet (no tr, no
x.pe) that finds the seed through the DHT alone; a private torrent is never announced there."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from procutil import Proc, digest, seed_port, swarm_run, wait_for

from swarm import metainfo
from swarm.dht_shell import DhtNode

pytestmark = pytest.mark.e2e

LOCAL = ("--host", "127.0.0.1", "--port", "0")


def start_dht(procs: Callable[..., Proc]) -> tuple[Proc, str]:
    """A ``swarm dht`` on a free loopback port printing its figures 5 times a second; the
    process and its HOST:PORT."""
    dht = procs("dht", *LOCAL, "--stats-every", "0.2")
    line = dht.wait_line(lambda s: s.startswith("dht node "), timeout=20)
    words = line.split()
    assert len(bytes.fromhex(words[2])) == 20 and words[3] == "on"
    return dht, words[4]


def last_stats(dht: Proc) -> dict[str, Any]:
    lines = [s for s in list(dht.out) if s.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def make_trackerless(tmp_path: Path, name: str, size: int, *extra: str) -> tuple[Path, Path]:
    src = tmp_path / "src" / name
    src.parent.mkdir(exist_ok=True)
    src.write_bytes(random.Random(size).randbytes(size))
    torrent = tmp_path / f"{name}.torrent"
    r = swarm_run("-q", "create", src, "-o", torrent, "--piece-length", "32K", *extra)
    assert r.returncode == 0, r.stderr
    assert metainfo.load(torrent).trackers == []
    return src, torrent


def test_a_bare_magnet_is_fetched_through_the_dht_alone(
    tmp_path: Path, procs: Callable[..., Proc]
) -> None:
    dht, router = start_dht(procs)
    src, torrent = make_trackerless(tmp_path, "movie.bin", 1_500_000)
    seed = procs("seed", src, "--torrent", torrent, *LOCAL, "--dht-bootstrap", router)
    seed.wait_line(lambda s: s.startswith("dht:       UDP port"), timeout=20)
    seed_port(seed)
    wait_for(lambda: last_stats(dht).get("peers") == 1, 20, "the seed's announce")

    info_hash = metainfo.load(torrent).info_hash_hex
    out = tmp_path / "out"
    magnet = f"magnet:?xt=urn:btih:{info_hash}"
    r = swarm_run(
        "fetch", magnet, "-o", out, "--no-seed", *LOCAL, "--dht-bootstrap", router, timeout=60
    )
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("metadata: movie.bin, "), r.stdout
    assert lines[1].startswith("done: movie.bin: 1500000 bytes"), r.stdout
    assert digest(out / "movie.bin") == digest(src)
    assert (out / ".swarm-dht.state").is_file()  # the table, for the next run
    assert seed.stop() == 0
    assert (tmp_path / ".swarm-dht.state").is_file()  # beside the seed's .torrent
    assert not (src.parent / ".swarm-dht.state").exists()


def test_a_torrent_with_nodes_needs_no_other_bootstrap(
    tmp_path: Path, procs: Callable[..., Proc]
) -> None:
    dht, router = start_dht(procs)
    src, torrent = make_trackerless(tmp_path, "film.bin", 700_000, "--dht-node", router)
    assert metainfo.load(torrent).nodes == ((router.split(":")[0], int(router.split(":")[1])),)
    seed = procs("seed", src, "--torrent", torrent, *LOCAL)  # the DHT through the torrent only
    seed_port(seed)
    wait_for(lambda: last_stats(dht).get("peers") == 1, 20, "the seed's announce")
    out = tmp_path / "out"
    r = swarm_run("fetch", torrent, "-o", out, "--no-seed", *LOCAL, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[0].startswith("done: film.bin: 700000 bytes"), r.stdout
    assert digest(out / "film.bin") == digest(src)


def test_a_private_torrent_is_never_announced_in_the_dht(
    tmp_path: Path, procs: Callable[..., Proc]
) -> None:
    dht, router = start_dht(procs)
    host, port = router.split(":")
    secret_src, secret = make_trackerless(tmp_path, "secret.bin", 100_000, "--private")
    open_src, public = make_trackerless(tmp_path, "open.bin", 120_000)
    private_seed = procs("seed", secret_src, "--torrent", secret, *LOCAL, "--dht-bootstrap", router)
    public_seed = procs("seed", open_src, "--torrent", public, *LOCAL, "--dht-bootstrap", router)
    private_port, public_port = seed_port(private_seed), seed_port(public_seed)
    # both seeds run a DHT node (both joined the bootstrap node's table); one torrent announced
    wait_for(lambda: last_stats(dht).get("nodes") == 2, 20, "both seeds' DHT nodes")
    wait_for(lambda: last_stats(dht).get("peers") == 1, 20, "the public torrent's announce")
    assert not any(s.startswith("dht:") for s in private_seed.out)
    assert any(s.startswith("dht:") for s in public_seed.out)

    async def look_up() -> tuple[list[tuple[str, int]], list[tuple[str, int]]]:
        node = DhtNode(rng=random.Random(7))
        await node.start("127.0.0.1", 0)
        try:
            await node.bootstrap([(host, int(port))], timeout=10.0)
            hidden = await node.get_peers(metainfo.load(secret).info_hash, timeout=10.0)
            shown = await node.get_peers(metainfo.load(public).info_hash, timeout=10.0)
            return hidden, shown
        finally:
            await node.stop()

    hidden, shown = asyncio.run(look_up())
    assert shown == [("127.0.0.1", public_port)]
    assert hidden == [] and ("127.0.0.1", private_port) not in shown
    assert last_stats(dht)["torrents"] == 1
