"""The progress bar of ``swarm fetch`` on a terminal: a rate as soon as bytes have come."""

from __future__ import annotations

import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.e2e

FRAME = re.compile(r"(\d+)% down (\S+ \S+)\s+up \S+ \S+\s+peers \d+\s+eta (\S+)")


def swarm(*args: str, **kw: object) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "swarm", *args], **kw)  # type: ignore[call-overload]


def test_the_first_progress_frames_show_a_rate_once_bytes_have_come(tmp_path: Path) -> None:
    data = tmp_path / "data.bin"
    data.write_bytes(os.urandom(3 * 2**20))
    torrent = tmp_path / "data.torrent"
    subprocess.run(
        [sys.executable, "-m", "swarm", "-q", "create", str(data), "-o", str(torrent)],
        check=True,
        timeout=60,
    )
    seed = swarm(
        "seed",
        str(data),
        "--torrent",
        str(torrent),
        "--port",
        "0",
        "--max-upload-rate",
        "1M",
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    master, slave = os.openpty()
    fetch: subprocess.Popen[bytes] | None = None
    try:
        port = ""
        deadline = time.monotonic() + 30
        while not port and time.monotonic() < deadline:
            line = seed.stdout.readline()  # type: ignore[union-attr]
            m = re.search(r"port (\d+)", line)
            port = m.group(1) if m else ""
        assert port, "the seed never said its port"
        out = tmp_path / "out"
        out.mkdir()
        fetch = swarm(
            "fetch",
            str(torrent),
            "-o",
            str(out),
            "--no-seed",
            "--port",
            "0",
            "--peer",
            f"127.0.0.1:{port}",
            stdout=subprocess.DEVNULL,
            stderr=slave,
            env={**os.environ, "COLUMNS": "150"},
        )
        os.close(slave)
        chunks = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not chunk:
                    break
                chunks.append(chunk)
            elif fetch.poll() is not None:
                break
        assert fetch.wait(timeout=30) == 0
    finally:
        os.close(master)
        for p in (seed, fetch):
            if p is not None and p.poll() is None:
                p.kill()
                p.wait(timeout=10)
    text = re.sub(r"\x1b\[[0-9;?]*[a-zA-Z]", "", b"".join(chunks).decode("utf-8", "replace"))
    frames = [(int(pc), down, eta) for pc, down, eta in FRAME.findall(text)]
    moving = [f for f in frames if 0 < f[0] < 100]
    assert moving, text[-2000:]
    stuck = [f for f in moving if f[1] == "0 B/s" or f[2] == "--:--"]
    assert not stuck, f"bytes had come but the bar showed no rate: {stuck}"
