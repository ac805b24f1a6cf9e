"""aria2, given only a magnet link, fetches from a libtorrent seed through ``swarm tracker``.

aria2 announces ``event=started`` with ``left=0`` before it has a magnet's metadata, so a
tracker that gives seeds no seeds leaves it with nobody to ask for the info dictionary (issue
15, item 5). Bounded: 60 s for the download; every process is stopped by its PID.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
from pathlib import Path

import pytest
from procutil import aria2_argv, digest

pytestmark = pytest.mark.interop


def test_aria2_by_magnet_fetches_from_a_libtorrent_seed_through_swarms_tracker(
    tmp_path: Path, procs, tracker: str, libtorrent: list[str], aria2c: str
) -> None:
    src = tmp_path / "src" / "payload.bin"
    src.parent.mkdir()
    src.write_bytes(random.Random(15).randbytes(2 * 1024 * 1024 + 12345))
    torrent = tmp_path / "t.torrent"
    create = [sys.executable, "-m", "swarm", "-q", "create", str(src), "-o", str(torrent)]
    subprocess.run([*create, "-t", tracker], check=True, timeout=60)
    info = subprocess.run(
        [*libtorrent, "info", str(torrent)], capture_output=True, text=True, check=True, timeout=60
    )
    info_hash = json.loads(info.stdout)["info_hash"]
    seed = procs(*libtorrent, "seed", torrent, src.parent, raw=True)
    seed.wait_line(lambda s: s.startswith("seeding"), timeout=60)

    out = tmp_path / "aria"
    magnet = f"magnet:?xt=urn:btih:{info_hash}&dn=payload.bin&tr={tracker}"
    fetch = procs(*aria2_argv(aria2c, magnet, out, "--bt-stop-timeout=50"), raw=True)
    assert fetch.wait_exit(timeout=60) == 0
    assert digest(out / "payload.bin") == digest(src)
