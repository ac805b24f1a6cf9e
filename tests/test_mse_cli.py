"""``swarm seed`` and ``swarm fetch`` as real processes with ``--encryption`` (issue 20): require
against prefer downloads (encrypted), require against off stops at 0% with one notice that
says what to do, bounded in time."""

from __future__ import annotations

import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from procutil import Proc, digest, make_movie, seed_port

pytestmark = pytest.mark.e2e

LOCAL = ("--host", "127.0.0.1", "--port", "0")


def _seed(procs: Callable[..., Proc], src: Path, torrent: Path, mode: str) -> int:
    seed = procs("seed", src, "--torrent", torrent, *LOCAL, "--encryption", mode)
    return seed_port(seed)


def test_fetch_prefer_from_a_seed_that_requires_encryption(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str
) -> None:
    src, torrent = make_movie(tmp_path, tracker, 400_000)
    port = _seed(procs, src, torrent, "require")
    fetch = procs(
        "fetch", torrent, "-o", tmp_path / "out", "--no-seed", *LOCAL, "--peer", f"127.0.0.1:{port}"
    )
    assert fetch.wait_exit(60) == 0
    assert digest(tmp_path / "out" / "movie.bin") == digest(src)
    assert not [line for line in fetch.out if line.startswith("notice:")]


def test_fetch_off_from_a_seed_that_requires_encryption_says_so_once(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str
) -> None:
    src, torrent = make_movie(tmp_path, tracker, 100_000)
    port = _seed(procs, src, torrent, "require")
    fetch = procs(
        "fetch", torrent, "-o", tmp_path / "out", *LOCAL, "--encryption", "off",
        "--peer", f"127.0.0.1:{port}",
    )  # fmt: skip
    line = fetch.wait_line(lambda s: s.startswith("notice:"), timeout=30)
    assert f"peer 127.0.0.1:{port} closed our unencrypted handshake" in line
    assert "run with --encryption prefer" in line
    assert fetch.stop(signal.SIGTERM) == 143
    assert [s for s in fetch.out if s.startswith("notice:")] == [line]
    assert any("stopped at 0.0%" in s for s in fetch.out)
