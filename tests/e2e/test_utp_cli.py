"""swarm seed and swarm fetch as real processes over uTP (BEP 29) on 127.0.0.1: the data goes
over uTP by default, over TCP when either side has ``--no-utp``, and MSE runs over uTP
(issue 20). Which transport carried a connection is read from the ``-v`` log lines."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from procutil import digest, seed_port, swarm_run

PIECE = 32 * 1024
LOCAL = ("--host", "127.0.0.1", "--port", "0", "--no-dht")  # uTP is on by default


def _payload(tmp_path: Path, size: int = 2 << 20) -> tuple[Path, Path]:
    src = tmp_path / "src" / "payload.bin"
    src.parent.mkdir()
    src.write_bytes(random.Random(size).randbytes(size - 123))
    torrent = tmp_path / "t.torrent"
    r = swarm_run("-q", "create", src, "-o", torrent, "--piece-length", "32K")
    assert r.returncode == 0, r.stderr
    return src, torrent


def _fetch_from(procs, tmp_path: Path, seed_args: tuple[str, ...], fetch_args: tuple[str, ...]):  # type: ignore[no-untyped-def]
    src, torrent = _payload(tmp_path)
    seed = procs("-v", "seed", src, "--torrent", torrent, *LOCAL, *seed_args)
    port = seed_port(seed)
    out = tmp_path / "out"
    fetch = procs(
        "-v", "fetch", torrent, "-o", out, "--no-seed", *LOCAL, "--peer", f"127.0.0.1:{port}",
        *fetch_args,
    )  # fmt: skip
    assert fetch.wait_exit(60) == 0, fetch.err[-20:]
    assert digest(out / "payload.bin") == digest(src)
    return seed, fetch, port


def _over(proc, port: int) -> set[str]:  # type: ignore[no-untyped-def]
    """The transports the fetch's log says it connected to the seed over."""
    found = set()
    for line in proc.err:
        for kind in ("uTP", "TCP"):
            if f"connected to 127.0.0.1:{port} over {kind}" in line:
                found.add(kind)
    return found


def test_fetch_from_a_seed_goes_over_utp(tmp_path: Path, procs) -> None:
    seed, fetch, port = _fetch_from(procs, tmp_path, (), ())
    assert _over(fetch, port) == {"uTP"}, fetch.err[-20:]
    assert any("a peer connected over uTP" in line for line in seed.err)


@pytest.mark.parametrize("side", ["seed", "fetch"])
def test_no_utp_on_either_side_falls_back_to_tcp(tmp_path: Path, procs, side: str) -> None:
    no = ("--no-utp",)
    seed, fetch, port = _fetch_from(
        procs, tmp_path, no if side == "seed" else (), no if side == "fetch" else ()
    )
    assert _over(fetch, port) == {"TCP"}, fetch.err[-20:]
    assert not any("over uTP" in line for line in seed.err + fetch.err)


def test_a_fetch_from_a_seed_requiring_encryption_goes_over_utp(tmp_path: Path, procs) -> None:
    seed, fetch, port = _fetch_from(procs, tmp_path, ("--encryption", "require"), ())
    assert _over(fetch, port) == {"uTP"}, fetch.err[-20:]
    assert any("a peer connected over uTP" in line for line in seed.err)
    assert not [line for line in fetch.out if line.startswith("notice:")]


def test_a_magnets_metadata_and_data_come_over_utp(tmp_path: Path, procs) -> None:
    from swarm import metainfo

    src, torrent = _payload(tmp_path, 1 << 20)
    seed = procs("-v", "seed", src, "--torrent", torrent, *LOCAL)
    port = seed_port(seed)
    info_hash = metainfo.load(torrent).info_hash.hex()
    out = tmp_path / "out"
    magnet = f"magnet:?xt=urn:btih:{info_hash}&x.pe=127.0.0.1:{port}"
    fetch = procs("-v", "fetch", magnet, "-o", out, "--no-seed", *LOCAL)
    assert fetch.wait_exit(60) == 0, fetch.err[-20:]
    assert digest(out / "payload.bin") == digest(src)
    # the metadata fetcher's connection and the download's, both over uTP
    over = [s for s in fetch.err if f"connected to 127.0.0.1:{port} over" in s]
    assert len(over) >= 2 and all(s.endswith("over uTP") for s in over), fetch.err[-20:]
