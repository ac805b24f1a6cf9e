"""Faults a user meets, with real ``swarm`` processes: a tracker that dies and comes back
mid-download, a full disk, a read-only output folder, paths and ports that cannot be used, and
a downloader killed with SIGKILL at chosen points. Each must end the way a user expects: the
download completes byte-identical, or the command exits with one ``error: ...`` line (1 for a
failure at run time, 2 for bad input) and never presents partial data under its real name."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import signal
import socket
import subprocess
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from procutil import Proc, digest, free_port, start_seed, wait_for
from procutil import make_movie as make
from procutil import swarm_run as run

pytestmark = pytest.mark.e2e

PIECE = 32 * 1024


def pieces_on_disk(part: Path) -> int:
    """How many pieces of a sparse .part file hold data (random data is never all zero)."""
    try:
        data = part.read_bytes()
    except OSError:
        return 0
    return sum(1 for i in range(0, len(data), PIECE) if any(data[i : i + PIECE]))


def assert_one_line_error(stderr: str | list[str], *words: str) -> str:
    """stderr is exactly one ``error: ...`` line (no traceback) that mentions every word."""
    lines = stderr.splitlines() if isinstance(stderr, str) else stderr
    text = "\n".join(lines)
    assert "Traceback" not in text, text
    assert len(lines) == 1 and lines[0].startswith("error: "), text
    for w in words:
        assert w.lower() in lines[0].lower(), (w, text)
    return lines[0]


def start_tracker(procs: Callable[..., Proc], port: int) -> Proc:
    p = procs(
        "tracker",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--no-udp",
        "--interval",
        "5",
        "--min-interval",
        "1",
    )
    p.wait_line(lambda s: s.startswith("http://"), timeout=20)
    return p


# -- 1. the tracker dies and comes back ------------------------------------------------------


def test_tracker_killed_and_restarted_mid_download(
    tmp_path: Path, procs: Callable[..., Proc]
) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}/announce"
    old = start_tracker(procs, port)
    src, torrent = make(tmp_path, url, 3 * 1024 * 1024)
    n = src.stat().st_size // PIECE
    seed = start_seed(procs, src, torrent, "256K")

    def leecher(i: int) -> Proc:
        return procs(
            "fetch",
            torrent,
            "-o",
            tmp_path / f"l{i}",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--max-upload-rate",
            "256K",
        )

    leechers = [leecher(0), leecher(1)]
    parts = [tmp_path / f"l{i}" / (src.name + ".part") for i in range(3)]
    wait_for(lambda: pieces_on_disk(parts[0]) >= 4, 30, "leecher 0 to make progress")
    old.stop(signal.SIGKILL)
    # Mid-download: neither leecher can have 3 MiB from 768 KiB/s of upload yet.
    assert all(pieces_on_disk(p) < n for p in parts[:2])
    assert not (tmp_path / "l0" / src.name).exists()
    # Stay down until an announce has failed (they come every 5 s), so the retry is exercised.
    wait_for(
        lambda: any("retrying in" in s for p in [seed, *leechers] for s in list(p.err)),
        20,
        "an announce to the dead tracker to fail",
    )
    new = start_tracker(procs, port)
    # Only the new tracker can tell this one where the others are.
    leechers.append(leecher(2))
    for i, p in enumerate(leechers):
        p.wait_line(lambda s: s.startswith("done:"), timeout=60)
        assert digest(tmp_path / f"l{i}" / src.name) == digest(src), i
        assert not parts[i].exists()
    # The swarm formed again on the new tracker: the seed and all three (now seeding) are there.
    wait_for(lambda: tracker_stats(port)["seeders"] == 4, 20, "4 seeders on the new tracker")
    assert new.popen.poll() is None
    for p in [*leechers, seed]:
        assert p.stop(signal.SIGTERM) == 0
        assert not any("Traceback" in line for line in p.err)


def tracker_stats(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/stats", timeout=5) as r:
        return json.loads(r.read())


# -- 2. a full disk ----------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """Mount a tmpfs on *path* (skipping the test if this machine does not allow it)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        text=True,
        timeout=20,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=20)


def assert_nothing_presented_as_complete(folder: Path, name: str) -> None:
    """Only the .part file and the hidden resume file may be in *folder*: never *name*
    itself, nor a half-written temporary file."""
    assert not (folder / name).exists()
    for p in folder.iterdir():
        ok = p.name == name + ".part" or (p.name.startswith(".") and p.name.endswith(".resume"))
        assert ok, p.name


def test_full_disk_is_a_one_line_runtime_error(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str
) -> None:
    src, torrent = make(tmp_path, tracker, 3 * 1024 * 1024)
    start_seed(procs, src, torrent, "0")
    with tmpfs(tmp_path / "small", "size=1M") as out:
        r = run(
            "fetch",
            torrent,
            "-o",
            out,
            "--no-seed",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            timeout=60,
        )
        assert r.returncode == 1, r.stderr
        assert_one_line_error(r.stderr, "no space left", f"{src.name}.part")
        assert_nothing_presented_as_complete(out, src.name)


def _limit_file_size() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, 1024 * 1024))


@pytest.mark.parametrize("existing_part", [False, True], ids=["new", "resumed"])
def test_file_size_limit_is_a_one_line_runtime_error(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str, existing_part: bool
) -> None:
    """RLIMIT_FSIZE (Python ignores SIGXFSZ, so writes fail with EFBIG): without a .part file
    the sparse file cannot be made at full length; with one, the writes past 1 MiB fail."""
    src, torrent = make(tmp_path, tracker, 3 * 1024 * 1024)
    start_seed(procs, src, torrent, "0")
    out = tmp_path / "out"
    if existing_part:
        out.mkdir()
        with open(out / (src.name + ".part"), "wb") as f:
            f.truncate(src.stat().st_size)
    r = run(
        "fetch",
        torrent,
        "-o",
        out,
        "--no-seed",
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        timeout=60,
        preexec_fn=_limit_file_size,
    )
    assert r.returncode == 1, r.stderr
    assert_one_line_error(r.stderr, "too large", f"{src.name}.part")
    assert_nothing_presented_as_complete(out, src.name)


# -- 3. a read-only output folder ---------------------------------------------------------------


def test_read_only_output_folder_is_a_one_line_runtime_error(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str
) -> None:
    # Like a full disk (aria2, wget and curl all report it as a file I/O failure), a folder
    # that cannot be written is a failure at run time: exit 1.
    src, torrent = make(tmp_path, tracker, 256 * 1024)
    with tmpfs(tmp_path / "ro", "ro,size=1M") as out:
        r = run(
            "fetch",
            torrent,
            "-o",
            out,
            "--no-seed",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            timeout=60,
        )
        assert r.returncode == 1, r.stderr
        assert_one_line_error(r.stderr, "read-only")
        assert list(out.iterdir()) == []


# -- 4. paths and ports that cannot be used ------------------------------------------------------


def test_fetch_into_a_regular_file_is_bad_input(tmp_path: Path, tracker: str) -> None:
    src, torrent = make(tmp_path, tracker, 64 * 1024)
    target = tmp_path / "not-a-folder"
    target.write_bytes(b"keep me")
    r = run("fetch", torrent, "-o", target, "--no-seed", "--host", "127.0.0.1", "--port", "0")
    assert r.returncode == 2, r.stderr
    assert_one_line_error(r.stderr, "not a folder")
    assert target.read_bytes() == b"keep me"


def test_seed_a_folder_that_does_not_hold_the_file_is_bad_input(
    tmp_path: Path, tracker: str
) -> None:
    src, torrent = make(tmp_path, tracker, 64 * 1024)
    folder = tmp_path / "elsewhere"
    folder.mkdir()
    (folder / "other.bin").write_bytes(b"x")
    r = run("seed", folder, "--torrent", torrent, "--host", "127.0.0.1", "--port", "0")
    assert r.returncode == 2, r.stderr
    assert_one_line_error(r.stderr, "movie.bin")


def test_seed_a_folder_where_the_torrent_has_a_single_file(tmp_path: Path, tracker: str) -> None:
    src, torrent = make(tmp_path, tracker, 64 * 1024)
    folder = tmp_path / "other" / src.name  # a folder named like the torrent's single file
    folder.mkdir(parents=True)
    (folder / "inside.bin").write_bytes(src.read_bytes())
    r = run("seed", folder, "--torrent", torrent, "--host", "127.0.0.1", "--port", "0")
    # The data the user pointed at is not the torrent's: like data that does not match, exit 1.
    assert r.returncode == 1, r.stderr
    assert_one_line_error(r.stderr, "not a regular file")


@pytest.mark.parametrize("command", ["seed", "fetch"])
def test_peer_port_in_use_is_a_runtime_error(tmp_path: Path, tracker: str, command: str) -> None:
    src, torrent = make(tmp_path, tracker, 64 * 1024)
    args = [src, "--torrent", torrent] if command == "seed" else [torrent, "-o", tmp_path / "out"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run(command, *args, "--host", "127.0.0.1", "--port", port)
    assert r.returncode == 1, r.stderr
    assert_one_line_error(r.stderr, f"port {port}", "in use")


# -- 5. SIGKILL at chosen points, then the same command again ------------------------------------


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.9], ids=["at-start", "at-30%", "at-90%"])
def test_kill_9_at_a_point_then_fetch_again_resumes(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str, fraction: float
) -> None:
    src, torrent = make(tmp_path, tracker, 3 * 1024 * 1024)
    size = src.stat().st_size
    n = size // PIECE
    start_seed(procs, src, torrent, "1M")
    out = tmp_path / "out"
    part = out / (src.name + ".part")
    args = ("fetch", torrent, "-o", out, "--no-seed", "--host", "127.0.0.1", "--port", "0")
    first = procs(*args)
    want = max(1, int(fraction * n))
    if fraction == 0:
        wait_for(part.exists, 30, "the .part file")
    else:
        wait_for(lambda: pieces_on_disk(part) >= want, 30, f"{want} pieces on disk")
    first.stop(signal.SIGKILL)
    had = pieces_on_disk(part)
    assert not (out / src.name).exists()  # never presented as complete
    assert had < n
    second = procs(*args)
    assert second.wait_exit(timeout=60) == 0, second.err
    assert digest(out / src.name) == digest(src)
    assert not part.exists()
    assert not any(p.name.endswith((".resume", ".tmp")) for p in out.iterdir())
    done = next(s for s in second.out if s.startswith("done:"))
    fetched = int(done.split(":")[2].split()[0])
    # Only what was missing (a piece or two may have been half-written when killed).
    assert fetched <= size - max(0, had - 2) * PIECE
