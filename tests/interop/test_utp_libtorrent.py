"""swarm seed and swarm fetch over uTP (BEP 29) against libtorrent with TCP turned off, both
ways (issue 20).

libtorrent runs lt_helper's seed or download with ``enable_outgoing_tcp`` and
``enable_incoming_tcp`` off and uTP on, so every byte goes over uTP: swarm must accept its uTP
dial on the UDP side of its listen port, and dial it over uTP first. Skipped without
python3-libtorrent, except under CI=true (conftest).
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from procutil import digest, seed_port, swarm_run

pytestmark = pytest.mark.interop

PIECE = 32 * 1024
PIECES = 64
LOCAL = ("--host", "127.0.0.1", "--port", "0", "--no-dht", "--utp")  # uTP is off by default

LT_UTP_ONLY = """
import sys
sys.path.insert(0, sys.argv[1])
import lt_helper

tcp_settings = lt_helper.settings

def utp_only():
    pack = tcp_settings()
    pack["enable_outgoing_tcp"] = False
    pack["enable_incoming_tcp"] = False
    pack["enable_outgoing_utp"] = True
    pack["enable_incoming_utp"] = True
    return pack

lt_helper.settings = utp_only
if sys.argv[2] == "seed":
    lt_helper.cmd_seed(sys.argv[3], sys.argv[4])
else:
    lt_helper.cmd_download(*sys.argv[3:])
"""


def _lt(libtorrent: list[str]) -> list[str]:
    return [libtorrent[0], "-c", LT_UTP_ONLY, str(Path(libtorrent[1]).parent)]


def _payload(tmp_path: Path) -> tuple[Path, Path]:
    src = tmp_path / "src" / "payload.bin"
    src.parent.mkdir()
    src.write_bytes(random.Random(29).randbytes(PIECE * PIECES - 777))
    torrent = tmp_path / "t.torrent"
    r = swarm_run("-q", "create", src, "-o", torrent, "--piece-length", "32K")
    assert r.returncode == 0, r.stderr
    return src, torrent


def test_libtorrent_with_tcp_off_downloads_from_a_swarm_seed(
    tmp_path: Path, procs, libtorrent: list[str]
) -> None:
    src, torrent = _payload(tmp_path)
    seed = procs("-v", "seed", src, "--torrent", torrent, *LOCAL)
    port = seed_port(seed)
    out = tmp_path / "out"
    lt = procs(*_lt(libtorrent), "download", torrent, out, "60", f"127.0.0.1:{port}", raw=True)
    lt.wait_line(lambda s: s == "done", timeout=90)
    assert digest(out / "payload.bin") == digest(src)
    assert any("a peer connected over uTP" in line for line in seed.err), seed.err[-20:]


def test_swarm_fetches_over_utp_from_libtorrent_with_tcp_off(
    tmp_path: Path, procs, libtorrent: list[str]
) -> None:
    src, torrent = _payload(tmp_path)
    seed = procs(*_lt(libtorrent), "seed", torrent, src.parent, raw=True)
    port = int(seed.wait_line(lambda s: s.startswith("seeding"), timeout=60).split()[1])
    out = tmp_path / "out"
    fetch = procs(
        "-v", "fetch", torrent, "-o", out, "--no-seed", *LOCAL, "--peer", f"127.0.0.1:{port}"
    )
    assert fetch.wait_exit(90) == 0, fetch.err[-20:]
    assert digest(out / "payload.bin") == digest(src)
    assert any(f"127.0.0.1:{port} over uTP" in line for line in fetch.err), fetch.err[-20:]
