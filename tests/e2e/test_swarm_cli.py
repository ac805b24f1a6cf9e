"""``swarm seed`` and ``swarm fetch`` as real processes through ``swarm tracker``."""

from __future__ import annotations

import hashlib
import random
import re
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from procutil import Proc, wait_for

from swarm import metainfo

pytestmark = pytest.mark.e2e

LOCAL = ("--host", "127.0.0.1", "--port", "0")  # many on one machine: any free port each


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def fetched_bytes(done: str) -> int:
    """The file's bytes fetched this run, from ``done: NAME: N bytes in ...``."""
    return int(done.split(":")[2].split()[0])


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
    seed = procs("seed", src, "--torrent", torrent, *LOCAL, "--max-upload-rate", "4M")
    seed.wait_line(lambda s: s.startswith("seeding on port"))
    leechers = [procs("fetch", torrent, "-o", tmp_path / f"l{i}", *LOCAL) for i in range(4)]
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
    procs("seed", src, "--torrent", torrent, *LOCAL).wait_line(lambda s: s.startswith("seeding"))
    fetch = procs("fetch", torrent, "-o", tmp_path / "out", "--no-seed", *LOCAL)
    assert fetch.wait_exit(timeout=60) == 0
    line = next(s for s in fetch.out if s.startswith("done:"))
    assert "1048576 bytes" in line and " s (" in line
    assert digest(tmp_path / "out" / src.name) == digest(src)


def test_kill_9_then_fetch_again_resumes(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str
) -> None:
    src, torrent = make(tmp_path, tracker, 4 * 1024 * 1024)
    procs("seed", src, "--torrent", torrent, *LOCAL, "--max-upload-rate", "1M").wait_line(
        lambda s: s.startswith("seeding")
    )
    out = tmp_path / "out"
    part = out / (src.name + ".part")
    first = procs("fetch", torrent, "-o", out, "--no-seed", *LOCAL)
    wait_for(lambda: part.exists() and any(part.read_bytes()[:1_500_000]), 30, "some data on disk")
    first.stop(signal.SIGKILL)
    assert not (out / src.name).exists()  # never presented as complete
    second = procs("fetch", torrent, "-o", out, "--no-seed", *LOCAL)
    assert second.wait_exit(timeout=90) == 0
    assert digest(out / src.name) == digest(src)
    assert not part.exists()
    done = next(s for s in second.out if s.startswith("done:"))
    assert fetched_bytes(done) < src.stat().st_size  # only what was missing


def test_seed_refuses_data_that_does_not_match(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str
) -> None:
    src, torrent = make(tmp_path, tracker, 200_000)
    data = bytearray(src.read_bytes())
    data[100] ^= 0xFF
    src.write_bytes(bytes(data))
    seed = procs("seed", src, "--torrent", torrent, *LOCAL)
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
    liar = procs("seed", bad, "--torrent", torrent, *LOCAL, "--no-verify")
    port = int(liar.wait_line(lambda s: s.startswith("seeding on port")).split()[3].rstrip(";"))
    fetch = procs(
        "fetch",
        torrent,
        "-v",
        "-o",
        tmp_path / "out",
        "--no-seed",
        *LOCAL,
        "--peer",
        f"127.0.0.1:{port}",
    )
    wait_for(lambda: any("banning" in s for s in fetch.err), 60, "the liar to be banned")
    honest = procs("seed", src, "--torrent", torrent, *LOCAL)
    honest.wait_line(lambda s: s.startswith("seeding"))
    assert fetch.wait_exit(timeout=90) == 0
    assert digest(tmp_path / "out" / src.name) == digest(src)
    done = next(s for s in fetch.out if s.startswith("done:"))
    assert re.search(r"; \d+ pieces? failed (its|their) hash check, 1 peer banned$", done)
    # The file's bytes, apart from the corrupt ones received (the liar's pieces) and what
    # went up to peers.
    assert fetched_bytes(done) == src.stat().st_size
    assert re.search(r"; uploaded \d+(\.\d)? \w?i?B; \d+\.\d KiB wasted \(", done), done


def run(*args: object) -> subprocess.CompletedProcess[str]:
    """``python -m swarm ARGS`` to its end."""
    return subprocess.run(
        [sys.executable, "-m", "swarm", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def assert_usage_error(r: subprocess.CompletedProcess[str], code: int, *words: str) -> None:
    assert r.returncode == code, r.stderr
    assert r.stderr.startswith("error: ") and len(r.stderr.splitlines()) == 1, r.stderr
    for word in words:
        assert word in r.stderr, r.stderr


def test_seed_rewrites_its_torrent_only_with_force(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str
) -> None:
    """Like ``create``: an existing PATH.torrent that the options contradict is a usage error
    naming --force; one they agree with is used as it is."""
    src = tmp_path / "movie.bin"
    src.write_bytes(random.Random(3).randbytes(100_000))
    made = tmp_path / "movie.bin.torrent"
    first = procs("seed", src, "-t", tracker, *LOCAL)
    first.wait_line(lambda s: s.startswith("seeding on port"))
    assert first.stop(signal.SIGINT) == 0
    before = made.read_bytes()

    other = "http://127.0.0.1:9/announce"
    assert_usage_error(run("seed", src, "-t", other, *LOCAL), 2, str(made), "--force")
    assert made.read_bytes() == before
    for agreeing in (["-t", tracker], []):
        again = procs("seed", src, *agreeing, *LOCAL)
        again.wait_line(lambda s: s.startswith("seeding on port"))
        assert again.stop(signal.SIGTERM) == 0
        assert made.read_bytes() == before

    forced = procs("seed", src, "-t", other, "--force", *LOCAL)
    forced.wait_line(lambda s: s.startswith("seeding on port"))
    assert forced.stop(signal.SIGTERM) == 0
    assert metainfo.load(made).trackers == [other]

    src.write_bytes(random.Random(4).randbytes(100_001))  # other data: the torrent is stale
    assert_usage_error(run("seed", src, *LOCAL), 2, str(made), "--force")
    src.write_bytes(random.Random(4).randbytes(100_000))  # same size, other bytes
    assert_usage_error(run("seed", src, *LOCAL), 1, "do not match", f"--force makes {made}")
    assert metainfo.load(made).trackers == [other]
    forced = procs("seed", src, "--force", *LOCAL)
    forced.wait_line(lambda s: s.startswith("seeding on port"))
    assert forced.stop(signal.SIGTERM) == 0
