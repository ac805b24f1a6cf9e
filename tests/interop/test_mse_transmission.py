"""Transmission with encryption required (``transmission-cli -er``) and swarm, both ways (issue
20). Transmission 3.00 never dials 127.x peers, so swarm dials it either way: as a fetch told its
address, and as a seed that finds it at a tracker. swarm's default ``--encryption prefer`` dials
plain first; Transmission closes that, and swarm dials again at once with MSE (RC4 selected).
uTP is off in Transmission's settings (swarm's TCP dial is what is tested here).
"""

from __future__ import annotations

import json
import random
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest
from procutil import Proc, digest, swarm_run, transmission_argv, wait_for

pytestmark = pytest.mark.interop

SIZE = 2 * 1024 * 1024 + 4321
LOCAL = ("--host", "127.0.0.1", "--port", "0", "--no-dht")


def _torrent(src: Path, out: Path, *trackers: str) -> Path:
    args: list[object] = ["-q", "create", src, "-o", out, "--piece-length", "32K"]
    for url in trackers:
        args += ["-t", url]
    r = swarm_run(*args)
    assert r.returncode == 0, r.stderr
    return out


def _payload(tmp_path: Path) -> Path:
    src = tmp_path / "src" / "payload.bin"
    src.parent.mkdir()
    src.write_bytes(random.Random(20).randbytes(SIZE))
    return src


def _transmission(
    procs: Callable[..., Proc], exe: str, torrent: Path, out: Path, home: Path
) -> Proc:
    """transmission-cli requiring encryption (settings and -er), no uTP, DHT, LPD or PEX."""
    return procs(*transmission_argv(exe, torrent, out, home, encryption=2), raw=True)


def test_swarm_fetches_from_a_transmission_seed_that_requires_encryption(
    tmp_path: Path, procs, transmission_cli: str
) -> None:
    src = _payload(tmp_path)
    torrent = _torrent(src, tmp_path / "t.torrent")
    tr = _transmission(procs, transmission_cli, torrent, src.parent, tmp_path / "trhome")
    tr.wait_line(lambda s: s.startswith("Seeding"), timeout=60)
    port = tr.args[tr.args.index("-p") + 1]
    out = tmp_path / "out"
    fetch = procs("fetch", torrent, "-o", out, "--no-seed", *LOCAL, "--peer", f"127.0.0.1:{port}")
    assert fetch.wait_exit(timeout=60) == 0, fetch.out[-5:]
    assert digest(out / src.name) == digest(src)
    assert not [line for line in fetch.out if line.startswith("notice:")]


def test_transmission_requiring_encryption_fetches_from_a_swarm_seed(
    tmp_path: Path, procs, transmission_cli: str
) -> None:
    tracker = procs(
        "tracker", "--host", "127.0.0.1", "--port", "0", "--interval", "5", "--min-interval", "1"
    )
    url = tracker.wait_line(lambda s: s.startswith("http://")).split()[0]
    stats = url.rsplit("/", 1)[0] + "/stats"
    src = _payload(tmp_path)
    torrent = _torrent(src, tmp_path / "t.torrent", url)
    out = tmp_path / "tr"
    out.mkdir()
    tr = _transmission(procs, transmission_cli, torrent, out, tmp_path / "trhome")

    def leecher_announced() -> bool:
        assert tr.popen.poll() is None, "transmission-cli exited"
        with urllib.request.urlopen(stats, timeout=5) as resp:
            return json.load(resp)["leechers"] >= 1

    wait_for(leecher_announced, 60, "transmission to announce")
    procs("seed", src, "--torrent", torrent, *LOCAL).wait_line(
        lambda s: s.startswith("seeding on port")
    )
    done = out / src.name
    want = digest(src)
    wait_for(
        lambda: done.exists() and done.stat().st_size == SIZE and digest(done) == want,
        90,
        "transmission to finish the download",
    )
