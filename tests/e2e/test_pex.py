"""Peer exchange (BEP 11) end to end: two leechers that know only the seed, and no tracker at
all, find each other through the seed's PEX and trade pieces."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from pathlib import Path

from tests.procutil import Proc, digest, seed_port, start_seed, swarm_run

SIZE = 3 << 20


def uploaded(proc: Proc) -> float:
    """Bytes the fetch uploaded, from its ``done:`` line (``uploaded 1.2 MiB``)."""
    line = proc.wait_line(lambda s: s.startswith("done:"), timeout=90)
    m = re.search(r"uploaded ([\d.]+) (B|KiB|MiB)", line)
    assert m, line
    return float(m.group(1)) * {"B": 1, "KiB": 1024, "MiB": 1 << 20}[m.group(2)]


def test_two_leechers_that_know_only_the_seed_find_each_other_by_pex(
    tmp_path: Path, procs: Callable[..., Proc]
) -> None:
    src = tmp_path / "src" / "movie.bin"
    src.parent.mkdir()
    src.write_bytes(random.Random(7).randbytes(SIZE))
    torrent = tmp_path / "movie.torrent"  # no tracker: the seed is the only address given
    r = swarm_run("-q", "create", src, "-o", torrent, "--piece-length", "32K")
    assert r.returncode == 0, r.stderr
    # The seed is slow, so that the leechers have pieces to give each other for a while.
    seed = start_seed(procs, src, torrent, rate="400K")
    peer = f"127.0.0.1:{seed_port(seed)}"
    fetches = [
        procs(
            "fetch",
            torrent,
            "-o",
            tmp_path / name,
            "--peer",
            peer,
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--no-seed",
        )
        for name in ("a", "b")
    ]
    moved = [uploaded(f) for f in fetches]
    for f, name in zip(fetches, ("a", "b"), strict=True):
        assert f.wait_exit(30) == 0, f.err
        assert digest(tmp_path / name / "movie.bin") == digest(src)
    # The seed downloads nothing: what A or B uploaded went to the other (without PEX, as
    # before it was built, both upload 0 B and this fails).
    assert sum(moved) > 0, moved
