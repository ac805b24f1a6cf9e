"""A swarm outlives its tracker (issue 17): the tracker is SIGKILLed mid-swarm; the leechers
that were running go on, and a leecher started after its death, whose torrent names only the
dead tracker, finds the swarm through the DHT (a ``swarm dht`` node on loopback as the
bootstrap). Every one finishes with the right bytes."""

from __future__ import annotations

import json
import random
import signal
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from procutil import Proc, digest, seed_port, swarm_run, wait_for

pytestmark = pytest.mark.e2e

LOCAL = ("--host", "127.0.0.1", "--port", "0")


def _stats(url: str) -> dict[str, int]:
    with urllib.request.urlopen(url, timeout=5) as answer:
        data: dict[str, int] = json.load(answer)
        return data


def test_leechers_finish_after_the_tracker_dies_and_a_late_one_finds_them_by_dht(
    tmp_path: Path, procs: Callable[..., Proc]
) -> None:
    tracker = procs("tracker", *LOCAL, "--no-udp", "--interval", "5", "--min-interval", "1")
    announce = tracker.wait_line(lambda s: s.startswith("http://")).split()[0]
    stats = announce.rsplit("/", 1)[0] + "/stats"
    dht = procs("dht", *LOCAL)
    router = dht.wait_line(lambda s: s.startswith("dht node "), timeout=20).split()[4]
    src = tmp_path / "src" / "movie.bin"
    src.parent.mkdir()
    src.write_bytes(random.Random(11).randbytes(3 << 20))
    torrent = tmp_path / "movie.torrent"
    r = swarm_run("-q", "create", src, "-o", torrent, "-t", announce, "--piece-length", "32K")
    assert r.returncode == 0, r.stderr
    dht_args = ("--dht-bootstrap", router)
    # A slow seed, so the download lasts past the tracker's death.
    seed = procs("seed", src, "--torrent", torrent, *LOCAL, "--max-upload-rate", "400K", *dht_args)
    seed_port(seed)
    early = [
        procs("fetch", torrent, "-o", tmp_path / f"early{i}", *LOCAL, "--no-seed", *dht_args)
        for i in range(2)
    ]
    wait_for(lambda: _stats(stats)["leechers"] >= 2, 30, "both leechers at the tracker")
    tracker.stop(signal.SIGKILL)
    late = procs("fetch", torrent, "-o", tmp_path / "late", *LOCAL, "--no-seed", *dht_args)
    for f, folder in [(p, f"early{i}") for i, p in enumerate(early)] + [(late, "late")]:
        f.wait_line(lambda s: s.startswith("done:"), timeout=120)
        assert f.wait_exit(30) == 0, f.err
        assert digest(tmp_path / folder / "movie.bin") == digest(src)
