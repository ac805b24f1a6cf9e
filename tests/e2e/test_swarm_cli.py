"""``swarm seed`` and ``swarm fetch`` as real processes through ``swarm tracker``."""

from __future__ import annotations

import hashlib
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from procutil import Proc, wait_for

pytestmark = pytest.mark.e2e


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def make(tmp_path: Path, tracker: str, size: int, piece: str = "32K") -> tuple[Path, Path]:
    src = tmp_path / "src" / "movie.bin"
    src.parent.mkdir()
    src.write_bytes(random.Random(size).randbytes(size))
    torrent = tmp_path / "movie.torrent"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "swarm",
            "-q",
            "create",
            str(src),
            "-o",
            str(torrent),
            "-t",
            tracker,
            "--piece-length",
            piece,
        ],
        check=True,
        timeout=60,
    )
    return src, torrent


def test_one_seed_four_leechers(tmp_path: Path, procs: Callable[..., Proc], tracker: str) -> None:
    src, torrent = make(tmp_path, tracker, 6 * 1024 * 1024 + 777)
    seed = procs(
        "seed", src, "--torrent", torrent, "--host", "127.0.0.1", "--max-upload-rate", "4M"
    )
    seed.wait_line(lambda s: s.startswith("seeding on port"))
    leechers = [
        procs("fetch", torrent, "-o", tmp_path / f"l{i}", "--host", "127.0.0.1") for i in range(4)
    ]
    for p in leechers:
        p.wait_line(lambda s: s.startswith("done:"), timeout=120)
    want = digest(src)
    for i in range(4):
        assert digest(tmp_path / f"l{i}" / src.name) == want
    # SIGTERM: announce stopped, close, exit 0.
    for p in [*leechers, seed]:
        assert p.stop(signal.SIGTERM) == 0
        assert not any("Traceback" in line for line in p.err)


def test_fetch_no_seed_exits_when_verified(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str
) -> None:
    src, torrent = make(tmp_path, tracker, 1024 * 1024)
    procs("seed", src, "--torrent", torrent, "--host", "127.0.0.1").wait_line(
        lambda s: s.startswith("seeding")
    )
    fetch = procs("fetch", torrent, "-o", tmp_path / "out", "--no-seed", "--host", "127.0.0.1")
    assert fetch.wait_exit(timeout=60) == 0
    line = next(s for s in fetch.out if s.startswith("done:"))
    assert "1048576 bytes" in line and " s (" in line
    assert digest(tmp_path / "out" / src.name) == digest(src)


def test_kill_9_then_fetch_again_resumes(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str
) -> None:
    src, torrent = make(tmp_path, tracker, 4 * 1024 * 1024)
    procs(
        "seed", src, "--torrent", torrent, "--host", "127.0.0.1", "--max-upload-rate", "1M"
    ).wait_line(lambda s: s.startswith("seeding"))
    out = tmp_path / "out"
    part = out / (src.name + ".part")
    first = procs("fetch", torrent, "-o", out, "--no-seed", "--host", "127.0.0.1")
    wait_for(lambda: part.exists() and any(part.read_bytes()[:1_500_000]), 30, "some data on disk")
    first.stop(signal.SIGKILL)
    assert not (out / src.name).exists()  # never presented as complete
    second = procs("fetch", torrent, "-o", out, "--no-seed", "--host", "127.0.0.1")
    assert second.wait_exit(timeout=90) == 0
    assert digest(out / src.name) == digest(src)
    assert not part.exists()
    done = next(s for s in second.out if s.startswith("done:"))
    fetched = int(done.split(":")[2].split()[0])
    assert fetched < src.stat().st_size  # only what was missing


def test_seed_refuses_data_that_does_not_match(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str
) -> None:
    src, torrent = make(tmp_path, tracker, 200_000)
    data = bytearray(src.read_bytes())
    data[100] ^= 0xFF
    src.write_bytes(bytes(data))
    seed = procs("seed", src, "--torrent", torrent, "--host", "127.0.0.1")
    assert seed.wait_exit(timeout=60) == 1
    assert (
        len(seed.err) == 1 and seed.err[0].startswith("error: ") and "do not match" in seed.err[0]
    )


def test_a_lying_seed_is_caught_and_counted_in_the_summary(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str
) -> None:
    src, torrent = make(tmp_path, tracker, 1024 * 1024)
    bad = tmp_path / "bad" / src.name
    bad.parent.mkdir()
    data = bytearray(src.read_bytes())
    for i in range(0, len(data), 32 * 1024):
        data[i + 5] ^= 0xFF  # every piece is wrong
    bad.write_bytes(bytes(data))
    liar = procs("seed", bad, "--torrent", torrent, "--host", "127.0.0.1", "--no-verify")
    port = int(liar.wait_line(lambda s: s.startswith("seeding on port")).split()[3].rstrip(";"))
    fetch = procs(
        "fetch",
        torrent,
        "-v",
        "-o",
        tmp_path / "out",
        "--no-seed",
        "--host",
        "127.0.0.1",
        "--peer",
        f"127.0.0.1:{port}",
    )
    wait_for(lambda: any("banning" in s for s in fetch.err), 60, "the liar to be banned")
    honest = procs("seed", src, "--torrent", torrent, "--host", "127.0.0.1")
    honest.wait_line(lambda s: s.startswith("seeding"))
    assert fetch.wait_exit(timeout=90) == 0
    assert digest(tmp_path / "out" / src.name) == digest(src)
    done = next(s for s in fetch.out if s.startswith("done:"))
    assert "pieces failed their hash check, 1 peers banned" in done
