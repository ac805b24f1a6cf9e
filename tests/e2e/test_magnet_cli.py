"""``swarm fetch 'magnet:?...'`` as a user runs it: bad magnets are one line and exit 2; a
swarm seed gives its metadata to a fetch that knows only its address (x.pe) or only a tracker
(tr); the metadata line; NAME.torrent, and a second run that needs no metadata phase."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from procutil import Proc, digest, make_movie, seed_port, start_seed, swarm_run

from swarm import metainfo

pytestmark = pytest.mark.e2e

METADATA_LINE = re.compile(r"^metadata: (\S+), (\d+) bytes, from (\d+) peers? in (\d+\.\d\d) s$")
FETCH = ("--no-seed", "--host", "127.0.0.1", "--port", "0")


@pytest.mark.parametrize(
    "uri",
    [
        "magnet:?dn=film.bin",
        "magnet:?xt=urn:btih:1234",
        "magnet:?xt=urn:btih:" + "!" * 32,
        "magnet:?xt=urn:sha1:" + "a" * 40,
        "magnet:?xt=urn:btmh:1220" + "a" * 64,
    ],
)
def test_a_bad_magnet_is_one_line_and_exit_2(tmp_path: Path, uri: str) -> None:
    r = swarm_run("fetch", uri, "-o", tmp_path / "out", *FETCH)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert not (tmp_path / "out").exists()


def fetch_by_magnet(magnet: str, out: Path) -> subprocess.CompletedProcess[str]:
    return swarm_run("fetch", magnet, "-o", out, *FETCH, timeout=90)


def check_first_run(r: subprocess.CompletedProcess[str], torrent: Path, out: Path) -> None:
    assert r.returncode == 0, r.stderr
    t = metainfo.load(torrent)
    lines = r.stdout.splitlines()
    match = METADATA_LINE.match(lines[0])
    assert match, r.stdout
    assert match[1] == t.name and int(match[2]) == len(t.raw_info) and match[3] == "1"
    assert lines[1].startswith(f"done: {t.name}: {t.length} bytes")
    assert metainfo.load(out / f"{t.name}.torrent").raw_info == t.raw_info
    assert "Traceback" not in r.stderr


def test_swarm_seed_to_swarm_fetch_by_magnet_with_only_x_pe(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str
) -> None:
    src, torrent = make_movie(tmp_path, tracker, 3_000_000)
    seed = start_seed(procs, src, torrent)
    ih = metainfo.load(torrent).info_hash_hex
    magnet = f"magnet:?xt=urn:btih:{ih}&dn=movie.bin&x.pe=127.0.0.1:{seed_port(seed)}"
    out = tmp_path / "out"
    check_first_run(fetch_by_magnet(magnet, out), torrent, out)
    assert digest(out / "movie.bin") == digest(src)
    (out / "movie.bin").unlink()
    again = fetch_by_magnet(magnet, out)  # the .torrent is there: no metadata phase
    assert again.returncode == 0, again.stderr
    assert not any(line.startswith("metadata:") for line in again.stdout.splitlines())
    assert again.stdout.splitlines()[0].startswith("done: movie.bin: 3000000 bytes")
    assert digest(out / "movie.bin") == digest(src)


def test_swarm_seed_to_swarm_fetch_by_magnet_with_only_a_tracker(
    tmp_path: Path, procs: Callable[..., Proc], tracker: str
) -> None:
    src, torrent = make_movie(tmp_path, tracker, 2_000_000)
    start_seed(procs, src, torrent)
    ih = metainfo.load(torrent).info_hash_hex
    magnet = f"magnet:?xt=urn:btih:{ih}&tr={tracker}"
    out = tmp_path / "out"
    check_first_run(fetch_by_magnet(magnet, out), torrent, out)
    assert digest(out / "movie.bin") == digest(src)


def test_a_magnet_with_no_source_at_all_gives_up_with_exit_1(tmp_path: Path) -> None:
    started = time.monotonic()
    magnet = "magnet:?xt=urn:btih:" + "ab" * 20
    r = swarm_run("fetch", magnet, "-o", tmp_path / "out", *FETCH, "--give-up-after", "3")
    assert 3 <= time.monotonic() - started < 30  # after --give-up-after, not the default 30 s
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == [
        "error: no usable tracker and no peer to fetch the metadata from"
    ]


def test_ctrl_c_while_fetching_the_metadata_exits_130_with_one_line(
    tmp_path: Path, procs: Callable[..., Proc]
) -> None:
    with socket.socket() as silent:  # a peer that accepts and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        silent.settimeout(30)
        magnet = "magnet:?xt=urn:btih:" + "cd" * 20 + f"&x.pe=127.0.0.1:{silent.getsockname()[1]}"
        fetch = procs("fetch", magnet, "-o", tmp_path / "out", *FETCH)
        conn, _ = silent.accept()  # the fetch has dialled it: the metadata phase is on
        with conn:
            fetch.popen.send_signal(signal.SIGINT)
            assert fetch.wait_exit(timeout=30) == 130
    assert fetch.out == ["stopped before the metadata was complete; run again to start over"]
    assert not any("Traceback" in line for line in fetch.err)
