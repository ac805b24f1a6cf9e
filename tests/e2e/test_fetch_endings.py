"""Every way a ``swarm fetch`` can end, with real processes: its exit code (0 only when every
piece is verified or when the user ends the seeding after it; 130 for Ctrl-C and 143 for SIGTERM
before that), the line it ends with, what it says about the files it finds at the start
(resuming, already complete, damaged, somebody else's file) and the port it listens on."""

from __future__ import annotations

import random
import re
import signal
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from procutil import Proc, digest, seed_port, start_seed, wait_for
from procutil import make_movie as make
from procutil import swarm_run as run

pytestmark = pytest.mark.e2e

PIECE = 32 * 1024


def fetch_args(torrent: Path, out: Path, port: int, *extra: str) -> list[object]:
    return [
        "fetch",
        torrent,
        "-o",
        out,
        "--host",
        "127.0.0.1",
        "--port",
        "0",
        "--peer",
        f"127.0.0.1:{port}",
        *extra,
    ]


def pieces_on_disk(part: Path) -> int:
    """How many pieces of a sparse .part file hold data (random data is never all zero)."""
    try:
        data = part.read_bytes()
    except OSError:
        return 0
    return sum(1 for i in range(0, len(data), PIECE) if any(data[i : i + PIECE]))


def done_line(lines: list[str]) -> str:
    return next(s for s in lines if s.startswith("done:"))


def fetched_bytes(done: str) -> int:
    """The file's bytes fetched this run, from ``done: NAME: N bytes in ...``."""
    return int(done.split(":")[2].split()[0])


# -- exit codes: interrupted, resumed, already complete -------------------------------------------


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_an_interrupted_download_exits_128_plus_the_signal_and_resumes(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str, sig: int, code: int
) -> None:
    src, torrent = make(tmp_path, tracker, 16 * PIECE)
    slow = seed_port(start_seed(procs, src, torrent, rate="64K"))
    out = tmp_path / "out"
    first = procs(*fetch_args(torrent, out, slow, "--no-seed"))
    wait_for(lambda: pieces_on_disk(out / "movie.bin.part") >= 2, 30, "two pieces on disk")
    assert first.stop(sig) == code
    stopped = [s for s in first.out if s.startswith("stopped at")]
    assert len(stopped) == 1 and re.fullmatch(
        r"stopped at \d+\.\d%; run again to resume", stopped[0]
    )
    assert not any(s.startswith("done:") for s in first.out)
    assert not (out / "movie.bin").exists() and first.err == []

    fast = seed_port(start_seed(procs, src, torrent))
    second = procs(*fetch_args(torrent, out, fast, "--no-seed"))
    assert second.wait_exit(timeout=60) == 0, second.err
    assert digest(out / "movie.bin") == digest(src)
    resuming = next(s for s in second.out if s.startswith("resuming:"))
    have = int(re.fullmatch(r"resuming: (\d+) of 16 pieces already here", resuming)[1])  # type: ignore[index]
    assert 2 <= have < 16
    assert fetched_bytes(done_line(second.out)) == src.stat().st_size - have * PIECE


def test_a_fetch_of_a_complete_download_says_already_complete(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str
) -> None:
    src, torrent = make(tmp_path, tracker, 4 * PIECE + 100)
    port = seed_port(start_seed(procs, src, torrent))
    out = tmp_path / "out"
    assert run(*fetch_args(torrent, out, port, "--no-seed", "-q")).returncode == 0
    r = run(*fetch_args(torrent, out, port, "--no-seed"))
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["done: movie.bin: already complete"]
    assert digest(out / "movie.bin") == digest(src)


def test_ctrl_c_while_seeding_after_the_download_exits_0_with_the_totals(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str
) -> None:
    src, torrent = make(tmp_path, tracker, 8 * PIECE)
    port = seed_port(start_seed(procs, src, torrent))
    fetch = procs(*fetch_args(torrent, tmp_path / "out", port))
    line = fetch.wait_line(lambda s: s.startswith("seeding on port"))
    assert re.fullmatch(r"seeding on port [1-9]\d*; Ctrl-C to stop", line)
    done = done_line(fetch.out)
    assert fetched_bytes(done) == src.stat().st_size and "; uploaded 0 B" in done
    assert fetch.stop(signal.SIGINT) == 0
    totals = fetch.out[-1]
    assert re.fullmatch(
        r"stopped seeding after \d+ s: downloaded 256\.0 KiB, uploaded \d+(\.\d)? \w?i?B", totals
    ), totals
    assert fetch.err == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stopping_a_seed_is_its_normal_end(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str, sig: int
) -> None:
    src, torrent = make(tmp_path, tracker, 2 * PIECE)
    seed = procs("seed", src, "--torrent", torrent, "--host", "127.0.0.1", "--port", "0")
    seed_port(seed)
    assert seed.stop(sig) == 0
    assert seed.out[-1] == "seeded 0 B to peers"


def test_an_interrupted_http_fetch_exits_130(tmp_path: Path, procs: Callable[..., Proc]) -> None:
    src = tmp_path / "src" / "movie.bin"
    src.parent.mkdir()
    src.write_bytes(random.Random(1).randbytes(512 * 1024))
    server = procs(
        "serve-central", src, "--host", "127.0.0.1", "--port", "0", "--max-upload-rate", "64K"
    )
    url = server.wait_line(lambda s: s.strip().startswith("http://") and "movie" in s).strip()
    out = tmp_path / "out"
    fetch = procs("fetch", url, "-o", out)
    wait_for(
        lambda: any(p.stat().st_size > 0 for p in out.glob("*")) if out.exists() else False,
        30,
        "some bytes on disk",
    )
    assert fetch.stop(signal.SIGINT) == 130
    assert fetch.out == ["stopped; run again to resume"]


# -- files already in the output folder -----------------------------------------------------------


def test_a_damaged_complete_download_is_repaired(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str
) -> None:
    src, torrent = make(tmp_path, tracker, 8 * PIECE + 5)
    port = seed_port(start_seed(procs, src, torrent))
    out = tmp_path / "out"
    assert run(*fetch_args(torrent, out, port, "--no-seed", "-q")).returncode == 0
    with open(out / "movie.bin", "r+b") as f:
        f.seek(3 * PIECE + 10)
        f.write(b"oops")
    r = run(*fetch_args(torrent, out, port, "--no-seed"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == f"{out / 'movie.bin'}: 1 of 9 pieces damaged; repairing"
    assert fetched_bytes(lines[-1]) == PIECE and "; 1 damaged piece repaired" in lines[-1]
    assert digest(out / "movie.bin") == digest(src)


def test_a_file_that_is_not_the_torrents_is_overwritten_after_one_line(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str
) -> None:
    src, torrent = make(tmp_path, tracker, 8 * PIECE)
    port = seed_port(start_seed(procs, src, torrent))
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "movie.bin"
    # The first three pieces are the torrent's, the rest somebody else's (and shorter).
    mine.write_bytes(src.read_bytes()[: 3 * PIECE] + b"my own recording" * 1000)
    before = mine.read_bytes()

    r = run(*fetch_args(torrent, out, port, "--no-seed", "--no-overwrite"))
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("error: ") and len(r.stderr.splitlines()) == 1, r.stderr
    assert str(mine) in r.stderr and "5 of 8 pieces differ" in r.stderr
    assert mine.read_bytes() == before
    assert sorted(p.name for p in out.iterdir()) == ["movie.bin"]

    r = run(*fetch_args(torrent, out, port, "--no-seed"))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == (
        f"{mine} exists and 5 of 8 pieces differ: it will be overwritten; --no-overwrite to stop"
    )
    done = lines[-1]
    assert fetched_bytes(done) == 5 * PIECE
    assert "; 5 pieces of the file that was there overwritten" in done
    assert digest(mine) == digest(src)


# -- the port ----------------------------------------------------------------------------------


@pytest.fixture
def port_6881_taken() -> Iterator[list[int]]:
    """6881 held by this test (or somebody else), and the ports of 6882..6890 free now."""
    holder = socket.socket()
    # As the session binds (SO_REUSEADDR): connections in TIME_WAIT do not make a port taken.
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        holder.bind(("127.0.0.1", 6881))
        holder.listen()
    except OSError:
        pass  # in use already: taken all the same
    free = []
    for port in range(6882, 6891):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                s.bind(("127.0.0.1", port))
                free.append(port)
            except OSError:
                pass
    if len(free) < 2:
        holder.close()
        pytest.skip("fewer than two of ports 6882-6890 are free on this machine")
    yield free
    holder.close()


def test_seed_and_fetch_listen_on_6881_or_the_next_free_port(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str, port_6881_taken: list[int]
) -> None:
    src, torrent = make(tmp_path, tracker, 4 * PIECE)
    seed = procs("seed", src, "--torrent", torrent, "--host", "127.0.0.1")
    port = seed_port(seed)
    assert port in port_6881_taken
    fetch = procs("fetch", torrent, "-o", tmp_path / "out", "--host", "127.0.0.1")
    fetch.wait_line(lambda s: s.startswith("done:"))
    line = fetch.wait_line(lambda s: s.startswith("seeding on port"))
    fetch_port = int(line.split()[3].rstrip(";"))
    assert fetch_port in port_6881_taken and fetch_port != port


def test_an_http_fetch_checks_a_file_in_its_way_too(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str
) -> None:
    src, torrent = make(tmp_path, tracker, 4 * PIECE)
    server = procs("serve-central", src, "--host", "127.0.0.1", "--port", "0")
    url = server.wait_line(lambda s: s.strip().startswith("http://") and "movie" in s).strip()
    out = tmp_path / "out"
    out.mkdir()
    mine = out / "movie.bin"
    mine.write_bytes(src.read_bytes()[:-1] + b"!")  # the last piece differs
    r = run("fetch", url, "-o", out, "--torrent", torrent, "--no-overwrite")
    assert r.returncode == 2 and len(r.stderr.splitlines()) == 1, r.stderr
    assert f"{mine} exists and 1 of 4 pieces differ" in r.stderr
    assert mine.read_bytes() != src.read_bytes()

    r = run("fetch", url, "-o", out, "--torrent", torrent)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0] == (
        f"{mine} exists and 1 of 4 pieces differ: it will be overwritten; --no-overwrite to stop"
    )
    assert lines[-1].startswith("done: movie.bin: 131072 bytes in ")
    assert digest(mine) == digest(src)

    r = run("fetch", url, "-o", out, "--torrent", torrent)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines() == ["done: movie.bin: already complete"]
