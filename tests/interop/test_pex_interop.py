"""PEX (BEP 11) from swarm to libtorrent: a libtorrent leecher that was given only a swarm
seed's address learns of another peer from the seed's ut_pex messages and dials it."""

from __future__ import annotations

import random
import subprocess
from collections.abc import Callable
from pathlib import Path

from tests.procutil import Proc, free_port, seed_port, start_seed, swarm_run

# libtorrent, connected to the seed alone, reports each peer it dials and where it heard of
# each peer it is connected to; it exits 0 once it dialled or is connected to the peer at
# WANT that came from PEX (peer_info.pex), 1 at the deadline.
LT_SCRIPT = r"""
import sys, time
sys.path.insert(0, sys.argv[1])
import libtorrent as lt
import lt_helper
torrent, out, seed, want, timeout = sys.argv[2:7]
pack = lt_helper.settings()
cat = lt.alert.category_t
pack["alert_mask"] = cat.connect_notification | cat.status_notification
ses = lt.session(pack)
h = lt_helper.add(ses, torrent, out)
host, port = seed.rsplit(":", 1)
h.connect_peer((host, int(port)))
want = int(want)
deadline = time.monotonic() + float(timeout)
while time.monotonic() < deadline:
    ses.wait_for_alert(100)
    for a in ses.pop_alerts():
        if isinstance(a, lt.peer_connect_alert) and a.endpoint[1] == want:
            print("dialled", a.endpoint[1], flush=True)
            sys.exit(0)
    for p in h.get_peer_info():
        if p.source & lt.peer_info.pex and p.ip[1] == want:
            print("connected by pex", p.ip[1], flush=True)
            sys.exit(0)
print("no pex peer", [(p.ip, p.source) for p in h.get_peer_info()], flush=True)
sys.exit(1)
"""


def test_libtorrent_learns_a_peer_from_a_swarm_seeds_pex(
    tmp_path: Path, procs: Callable[..., Proc], libtorrent: list[str]
) -> None:
    src = tmp_path / "src" / "movie.bin"
    src.parent.mkdir()
    src.write_bytes(random.Random(3).randbytes(4 << 20))
    torrent = tmp_path / "movie.torrent"  # no tracker: peers only from --peer and PEX
    r = swarm_run("-q", "create", src, "-o", torrent, "--piece-length", "32K")
    assert r.returncode == 0, r.stderr
    seed = start_seed(procs, src, torrent, rate="200K")  # slow: the leechers stay a while
    at_seed = f"127.0.0.1:{seed_port(seed)}"
    # A swarm leecher on a known port, connected to the seed: the peer libtorrent should hear of.
    port = free_port()
    procs(
        "fetch",
        torrent,
        "-o",
        tmp_path / "swarm-leecher",
        "--peer",
        at_seed,
        "--host",
        "127.0.0.1",
        "--port",
        port,
    )
    helper_dir = str(Path(libtorrent[1]).parent)
    run = subprocess.run(
        [
            libtorrent[0],
            "-c",
            LT_SCRIPT,
            helper_dir,
            str(torrent),
            str(tmp_path / "lt"),
            at_seed,
            str(port),
            "60",
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert run.returncode == 0, run.stdout + run.stderr
