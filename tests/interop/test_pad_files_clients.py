"""BEP 47 pad files with libtorrent (issue 20): ``swarm create --align`` gives libtorrent's
info-hash for the same files; a padded hybrid torrent made by libtorrent goes from a swarm seed
to a libtorrent leecher and from a libtorrent seed to a swarm leecher, with no ``.pad`` file on
either side (libtorrent writes none either).

Each test has a bounded time-out, runs on 127.0.0.1, and stops what it started by PID.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from e2e.test_pad_files import files_of, lt_create, make_folder
from procutil import seed_port

pytestmark = pytest.mark.interop

LOCAL = ("--host", "127.0.0.1", "--port", "0", "--no-dht")
PIECE = 16384

# A libtorrent leecher as lt_helper.py's `download` runs it (its session and settings), but
# its files flushed without the pad files, which libtorrent never creates.
LT_DOWNLOAD = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
import lt_helper as h
import libtorrent as lt
torrent, out, peer = sys.argv[2], sys.argv[3], sys.argv[4]
ses = h.session()
t = h.add(ses, torrent, out)
host, port = peer.rsplit(":", 1)
t.connect_peer((host, int(port)))
deadline = time.monotonic() + 60
while not t.status().is_seeding:
    if time.monotonic() > deadline:
        sys.exit("timed out at %.3f" % t.status().progress)
    time.sleep(0.05)
t.flush_cache()
if h.wait_alert(ses, lt.cache_flushed_alert, time.monotonic() + 30) is None:
    sys.exit("no flush")
fs = t.torrent_file().files()
for i in range(fs.num_files()):
    if not fs.file_flags(i) & lt.file_storage.flag_pad_file:
        fd = os.open(os.path.join(out, fs.file_path(i)), os.O_RDONLY)
        os.fsync(fd)
        os.close(fd)
print("done", flush=True)
"""


@pytest.fixture
def padded(tmp_path: Path, libtorrent: list[str]) -> tuple[Path, Path]:
    """The original folder (no .pad) and libtorrent's default (hybrid, padded) torrent of it."""
    src = make_folder(tmp_path / "src" / "set")
    return src, lt_create(src, tmp_path / "set.torrent", PIECE)


def lt_info(libtorrent: list[str], torrent: Path) -> dict:
    r = subprocess.run(
        [*libtorrent, "info", torrent], capture_output=True, text=True, timeout=60, check=True
    )
    return json.loads(r.stdout)


def test_create_align_gives_libtorrents_info_hash(tmp_path: Path, libtorrent: list[str]) -> None:
    src = make_folder(tmp_path / "src" / "set")
    ours = tmp_path / "ours.torrent"
    subprocess.run(
        [sys.executable, "-m", "swarm", "-q", "create", src, "-o", ours, "--align"]
        + ["--piece-length", str(PIECE)],
        check=True,
        timeout=60,
    )
    flags = "v1_only|canonical_files_no_tail_padding"
    theirs = lt_create(src, tmp_path / "theirs.torrent", PIECE, flags)
    a, b = lt_info(libtorrent, ours), lt_info(libtorrent, theirs)
    assert a["info_hash"] == b["info_hash"]
    assert a["files"] == b["files"]
    assert [f["path"] for f in a["files"] if "/.pad/" in f["path"]] == [
        f"set/.pad/{PIECE - 40_000 % PIECE}",
        f"set/.pad/{PIECE - 70_001 % PIECE}",
    ]


def test_swarm_seed_to_libtorrent_leecher(
    tmp_path: Path, padded: tuple[Path, Path], procs, libtorrent: list[str]
) -> None:
    src, torrent = padded
    port = seed_port(procs("seed", src, "--torrent", torrent, *LOCAL))
    out = tmp_path / "lt"
    out.mkdir()
    helper_dir = Path(libtorrent[1]).parent
    lt = procs(
        libtorrent[0], "-c", LT_DOWNLOAD, helper_dir, torrent, out, f"127.0.0.1:{port}", raw=True
    )
    assert lt.wait_exit(timeout=90) == 0, lt.err[-5:]
    assert lt.out[-1:] == ["done"]
    assert files_of(out / "set") == files_of(src)  # no .pad on either side


def test_libtorrent_seed_to_swarm_leecher(
    tmp_path: Path, padded: tuple[Path, Path], procs, libtorrent: list[str]
) -> None:
    src, torrent = padded
    seed = procs(*libtorrent, "seed", torrent, src.parent, raw=True)
    port = seed.wait_line(lambda s: s.startswith("seeding"), timeout=60).split()[1]
    out = tmp_path / "out"
    fetch = procs("fetch", torrent, "-o", out, "--no-seed", *LOCAL, "--peer", f"127.0.0.1:{port}")
    assert fetch.wait_exit(timeout=90) == 0, fetch.err[-5:]
    assert files_of(out / "set") == files_of(src)
    assert not (src / ".pad").exists()  # libtorrent's seed made none either
