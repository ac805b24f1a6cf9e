"""``swarm serve-central`` as the only source of a torrent (BEP 19 web seed), end to end: a
folder's multi-file torrent, made with the URL that ``serve-central`` prints, fetched by
``swarm fetch`` with no tracker and no peer, every file byte-identical (issue 18).

Real processes on 127.0.0.1 with OS-chosen ports; every wait bounded."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest

from swarm.status import Event, decode

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(90)]

SWARM = [sys.executable, "-m", "swarm"]


def make_album(root: Path) -> dict[str, str]:
    """Nested files with odd names in *root*; their SHA-256 by path inside it."""
    files = {
        ("cd 1", "01 intro.bin"): os.urandom(300_000),
        ("cd 1", "deep", "caf\u00e9 #2?.bin"): os.urandom(70_001),
        ("notes.txt",): b"top level\n",
    }
    out = {}
    for parts, data in files.items():
        path = root.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
        out["/".join(parts)] = hashlib.sha256(data).hexdigest()
    return out


def test_a_folder_torrent_downloads_from_serve_central_alone(tmp_path: Path) -> None:
    album = tmp_path / "album"
    want = make_album(album)
    r_fd, w_fd = os.pipe()
    server = subprocess.Popen(
        [*SWARM, "-q", "serve-central", str(album), "--port", "0", "--status-fd", str(w_fd)],
        pass_fds=(w_fd,),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    os.close(w_fd)
    try:
        with os.fdopen(r_fd, "rb") as pipe:
            listening = decode(pipe.readline())  # bounded by the test's timeout
        assert listening.event is Event.LISTENING and listening.webseed
        torrent = tmp_path / "album.torrent"
        made = subprocess.run(
            [*SWARM, "create", str(album), "-o", str(torrent), "--webseed", listening.webseed],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert made.returncode == 0, made.stderr
        out = tmp_path / "out"
        fetched = subprocess.run(
            [*SWARM, "fetch", str(torrent), "-o", str(out), "--no-seed", "--no-dht"]
            + ["--port", "0", "--host", "127.0.0.1"],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert fetched.returncode == 0, fetched.stderr
        got = {
            p.relative_to(out / "album").as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in (out / "album").rglob("*")
            if p.is_file() and not p.name.startswith(".")
        }
        assert got == want
    finally:
        server.terminate()
        server.wait(timeout=20)
