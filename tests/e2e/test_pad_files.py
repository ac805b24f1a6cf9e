"""BEP 47 end to end (issue 20): a padded multi-file hybrid torrent made by libtorrent (its
defaults: ``.pad/N`` after every file that does not end on a piece boundary, the last one too)
seeded by ``swarm seed`` from the original folder, which has no ``.pad``, to ``swarm fetch``,
which writes none: every file byte-identical, the executable one executable; a damaged byte
is found and repaired by the next fetch."""

from __future__ import annotations

import os
import random
import subprocess
from pathlib import Path

import pytest
from procutil import digest, seed_port

from swarm import metainfo

pytestmark = pytest.mark.e2e

SYSTEM_PYTHON = "/usr/bin/python3"
LOCAL = ("--host", "127.0.0.1", "--port", "0", "--no-dht")

# libtorrent's create_torrent with *flags* over the folder argv[1] (pieces of argv[3] bytes),
# written to argv[2]. flags=0 is libtorrent 2.0's default: a hybrid (v1 + v2) torrent, padded.
LT_CREATE = """
import os, sys, libtorrent as lt
src, out, piece, flags = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]
value = 0
for name in filter(None, flags.split("|")):
    value |= getattr(lt.create_torrent, name)
fs = lt.file_storage()
lt.add_files(fs, src)
t = lt.create_torrent(fs, piece, flags=value)
lt.set_piece_hashes(t, os.path.dirname(os.path.abspath(src)))
open(out, "wb").write(lt.bencode(t.generate()))
"""


def lt_create(src: Path, out: Path, piece: int, flags: str = "") -> Path:
    """*out*, a torrent libtorrent makes of *src* (*flags*: create_torrent's flag names
    joined by ``|``); skipped when python3-libtorrent is missing, but not under CI=true."""
    if (
        not os.path.exists(SYSTEM_PYTHON)
        or subprocess.run(
            [SYSTEM_PYTHON, "-c", "import libtorrent"], capture_output=True, timeout=60
        ).returncode
    ):
        if os.environ.get("CI") == "true":
            pytest.fail("python3-libtorrent is not installed, and CI must run this test")
        pytest.skip("python3-libtorrent (for /usr/bin/python3) is not installed")
    cmd = [SYSTEM_PYTHON, "-c", LT_CREATE, str(src), str(out), str(piece), flags]
    subprocess.run(cmd, check=True, timeout=60)
    return out


def make_folder(root: Path) -> Path:
    """Files whose ends fall inside pieces (so libtorrent pads them), one empty, one nested,
    one executable."""
    rnd = random.Random(47)
    for rel, size in [("a.bin", 40_000), ("empty", 0), ("sub/b.bin", 70_001), ("z.sh", 5_000)]:
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(rnd.randbytes(size))
    (root / "z.sh").chmod(0o755)
    return root


def files_of(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): digest(p) for p in sorted(root.rglob("*")) if not p.is_dir()}


def test_padded_libtorrent_torrent_seeded_from_the_original_folder(procs, tmp_path: Path) -> None:
    src = make_folder(tmp_path / "src" / "set")
    torrent = lt_create(src, tmp_path / "set.torrent", 16384)
    t = metainfo.load(torrent)
    assert sum(f.padding for f in t.files) == 3  # after a.bin, b.bin and z.sh (the tail)
    seed = procs("seed", src, "--torrent", torrent, *LOCAL)  # checks the data first
    port = seed_port(seed)
    out = tmp_path / "out"
    fetch = procs("fetch", torrent, "-o", out, "--no-seed", *LOCAL, "--peer", f"127.0.0.1:{port}")
    assert fetch.wait_exit(timeout=60) == 0, fetch.err[-5:]
    assert files_of(out / "set") == files_of(src)  # no .pad folder, every file the same
    assert not (out / "set" / ".pad").exists()
    assert os.access(out / "set" / "z.sh", os.X_OK)
    assert not os.access(out / "set" / "a.bin", os.X_OK)
    # A damaged byte: the next fetch checks the files (pads read as zeros), repairs one piece.
    with open(out / "set" / "sub" / "b.bin", "r+b") as f:
        f.seek(100)
        f.write(b"X" if f.read(1) != b"X" else b"Y")
    fetch = procs("fetch", torrent, "-o", out, "--no-seed", *LOCAL, "--peer", f"127.0.0.1:{port}")
    assert fetch.wait_exit(timeout=60) == 0, fetch.err[-5:]
    assert files_of(out / "set") == files_of(src)
    # The download checks again as a seed (pads read as zeros): seeding from it works.
    again = procs("seed", out / "set", "--torrent", torrent, *LOCAL)
    seed_port(again)
