"""A fetch with nowhere to get data from ends on its own (issue 13, item 5): a torrent whose
only tracker URL no announce can use, and no peer, says so once and exits 1."""

from __future__ import annotations

import random
import subprocess
import sys
from pathlib import Path

import pytest

from swarm import bencoding
from swarm.create import create_torrent

pytestmark = pytest.mark.e2e


def test_fetch_with_only_an_unusable_tracker_gives_up_with_exit_1(tmp_path: Path) -> None:
    src = tmp_path / "d.bin"
    src.write_bytes(random.Random(3).randbytes(100_000))
    meta = bencoding.decode(create_torrent(src, piece_length=32 * 1024))
    meta[b"announce"] = b"ftp://tracker.invalid/announce"  # create refuses it; others may not
    torrent = tmp_path / "d.torrent"
    torrent.write_bytes(bencoding.encode(meta))
    done = subprocess.run(
        [sys.executable, "-m", "swarm", "fetch", str(torrent), "-o", str(tmp_path / "out")]
        + ["--no-seed", "--host", "127.0.0.1", "--port", "0", "--give-up-after", "3"],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 1
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert errors == ["error: no usable tracker and no peer to download from"]
    assert done.stderr.count("unsupported tracker URL scheme") == 1  # said once
    assert "Traceback" not in done.stderr
