"""libtorrent seed -> ``swarm fetch 'magnet:?xt=...&x.pe=...'``: swarm gets the info
dictionary from libtorrent by BEP 9, downloads, writes NAME.torrent, and a second run uses it
with no metadata phase. Bounded: 90 s per fetch; the seed is stopped by its PID."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from pathlib import Path

import pytest
from procutil import digest, swarm_run

from swarm import metainfo

pytestmark = pytest.mark.interop

FETCH = ("--no-seed", "--host", "127.0.0.1", "--port", "0")


def test_swarm_fetches_a_magnets_metadata_and_data_from_a_libtorrent_seed(
    tmp_path: Path, procs, libtorrent: list[str]
) -> None:
    src = tmp_path / "src" / "payload.bin"
    src.parent.mkdir()
    src.write_bytes(random.Random(915).randbytes(3 * 1024 * 1024 + 777))
    torrent = tmp_path / "t.torrent"
    subprocess.run(
        [sys.executable, "-m", "swarm", "-q", "create", str(src), "-o", str(torrent)]
        + ["--piece-length", "32K"],
        check=True,
        timeout=60,
    )
    info = subprocess.run(
        [*libtorrent, "info", str(torrent)], capture_output=True, text=True, check=True, timeout=60
    )
    info_hash = json.loads(info.stdout)["info_hash"]
    seed = procs(*libtorrent, "seed", torrent, src.parent, raw=True)
    port = int(seed.wait_line(lambda s: s.startswith("seeding"), timeout=60).split()[1])
    magnet = f"magnet:?xt=urn:btih:{info_hash}&x.pe=127.0.0.1:{port}"
    out = tmp_path / "out"

    first = swarm_run("fetch", magnet, "-o", out, *FETCH, timeout=90)
    assert first.returncode == 0, first.stderr
    t = metainfo.load(torrent)
    lines = first.stdout.splitlines()
    assert re.fullmatch(
        rf"metadata: payload\.bin, {len(t.raw_info)} bytes, from 1 peer in \d+\.\d\d s", lines[0]
    ), first.stdout
    assert lines[1].startswith("done: payload.bin: 3146505 bytes")
    assert digest(out / "payload.bin") == digest(src)
    written = metainfo.load(out / "payload.bin.torrent")
    assert written.info_hash.hex() == info_hash and written.raw_info == t.raw_info

    (out / "payload.bin").unlink()
    second = swarm_run("fetch", magnet, "-o", out, *FETCH, timeout=90)
    assert second.returncode == 0, second.stderr
    assert not any(line.startswith("metadata:") for line in second.stdout.splitlines())
    assert digest(out / "payload.bin") == digest(src)
